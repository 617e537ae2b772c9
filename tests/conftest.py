"""Test configuration: hypothesis profiles.

``HYPOTHESIS_PROFILE=ci`` (the default) keeps property tests quick enough for every run;
``HYPOTHESIS_PROFILE=dev`` searches harder, for use before a release or after touching the engines.
``deadline=None`` everywhere: a first example compiles a topology and would trip the deadline.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile(
    "dev",
    deadline=None,
    max_examples=500,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
