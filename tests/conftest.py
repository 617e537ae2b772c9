"""Test configuration: hypothesis profiles, and a private compiled-file cache.

``HYPOTHESIS_PROFILE=ci`` (the default) keeps property tests quick enough for every run;
``HYPOTHESIS_PROFILE=dev`` searches harder, for use before a release or after touching the engines.
``deadline=None`` everywhere: a first example compiles a topology and would trip the deadline.

The commands that decide from a topology file cache its compiled tables in the user cache directory;
the tests (and the subprocesses they start) use a temporary one instead, removed at exit.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

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

if not os.environ.get("AEGISFWD_CACHE_DIR"):
    _CACHE = tempfile.mkdtemp(prefix="aegisfwd-test-cache-")
    atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
    os.environ["AEGISFWD_CACHE_DIR"] = _CACHE
