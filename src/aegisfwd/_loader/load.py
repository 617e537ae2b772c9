"""Validating a topology document into the model, in three passes that report *all* errors at once.

1. **Parse** (``readers``): JSON, YAML or TOML into plain data; duplicate keys are errors.
2. **Shape** (``shape``, pydantic v2, strict): types, required fields, non-empty ids, coordinates.
3. **Cross references** (``checker``): ids, holders, locations, pools, states, addresses, distances.

Only when no pass found anything are the model objects of ``topology.py`` built. Issues are listed
in the order their paths appear in the document.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .._gc import gc_paused
from ..errors import TopologyError, TopologyIssue
from ..topology import Topology
from .checker import Checker
from .paths import Loc, describe, format_path
from .readers import read_document
from .shape import shape_issues

__all__ = ["load_topology", "topology_from_dict"]


def _order_key(data: Any, loc: Loc, cache: dict[int, dict[Any, int]]) -> list[int]:
    """Position of ``loc`` in the document, so that issues are listed in file order."""
    out: list[int] = []
    node = data
    for part in loc:
        if isinstance(node, dict):
            positions = cache.get(id(node))
            if positions is None:
                positions = cache[id(node)] = {(type(k), k): n for n, k in enumerate(node)}
            pos = positions.get((type(part), part))
            out.append(len(node) if pos is None else pos)
            node = None if pos is None else node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            out.append(part)
            node = node[part]
        else:
            out.append(1 << 30)
            node = None
    return out


def topology_from_dict(data: Any, *, source: str | None = None) -> Topology:
    """Validate a parsed topology document and build the model; ``TopologyError`` lists every problem."""
    with gc_paused():
        return _topology_from_dict(data, source)


def _topology_from_dict(data: Any, source: str | None) -> Topology:
    if not isinstance(data, dict):
        raise TopologyError(
            [
                TopologyIssue(
                    "wrong-type",
                    "",
                    f"the document must be a mapping (table) at the top level, got {describe(data)}",
                )
            ],
            source,
        )
    shape = shape_issues(data)
    checker = Checker(data, {loc for loc, _, _ in shape})
    topo = checker.run()
    found = shape + checker.issues
    if found:
        cache: dict[int, dict[Any, int]] = {}
        found.sort(key=lambda t: _order_key(data, t[0], cache))
        raise TopologyError([TopologyIssue(code, format_path(loc), msg) for loc, code, msg in found], source)
    assert topo is not None
    return topo


def load_topology(path: str | os.PathLike[str]) -> Topology:
    """Load and validate a topology file (``.json``, ``.yaml``/``.yml`` or ``.toml``)."""
    path = Path(path)
    return topology_from_dict(read_document(path), source=str(path))
