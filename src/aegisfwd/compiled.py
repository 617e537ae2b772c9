"""Compiled topology: placeholder, being written."""
from __future__ import annotations


class CompiledTopology:  # pragma: no cover - placeholder
    pass


def load_compiled(path: object) -> CompiledTopology:  # pragma: no cover - placeholder
    raise NotImplementedError


def compile_topology(topology: object) -> CompiledTopology:  # pragma: no cover - placeholder
    raise NotImplementedError
