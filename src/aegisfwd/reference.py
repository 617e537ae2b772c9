"""``ReferenceEngine``: placeholder, being written."""
from __future__ import annotations


class ReferenceEngine:  # pragma: no cover - placeholder
    def __init__(self, topology: object) -> None:
        raise NotImplementedError
