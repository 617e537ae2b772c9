"""Reading, validating and writing topology documents (``docs/topology-format.md``).

One job per module: ``readers`` (JSON / YAML / TOML files into plain data), ``shape`` (the strict
pydantic schema), ``addresses`` (one Aegis IP entry), ``checker`` (cross references, one method per
section), ``load`` (the three passes together, issues in file order), ``serialise`` (a ``Topology``
back into a document), ``codes`` (every issue code) and ``paths`` (where an issue is).
"""

from __future__ import annotations

from .codes import ERROR_CODES
from .load import load_topology, topology_from_dict
from .paths import format_path
from .serialise import topology_to_dict

__all__ = [
    "ERROR_CODES",
    "format_path",
    "load_topology",
    "topology_from_dict",
    "topology_to_dict",
]
