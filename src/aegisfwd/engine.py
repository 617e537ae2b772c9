"""``af.Engine``: the public compiled engine (dispatches to the C++ core). Placeholder until issue 3."""
from __future__ import annotations

from .reference import ReferenceEngine as Engine  # noqa: F401  (temporary: replaced by the compiled engine)
