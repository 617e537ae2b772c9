"""aegisfwd: where a connection to the origin must egress from, for dedicated egress IPs (Aegis).

    import aegisfwd as af
    topo = af.load_topology("topology.yaml")
    engine = af.Engine(topo)
    d = engine.decide("lhr01-s001", "acme", 4, flow=0x9E3779B97F4A7C15)

The contract is ``docs/decision.md``; ``docs/`` also documents the topology format, the hashing
scheme and the compiled table layout.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._flowkey import client_flow_key
from ._hashing import HASH_SCHEME_VERSION
from ._loader import load_topology
from ._types import BatchResult, Decision, IdTables, Tier
from ._version import __version__ as __version__
from .compiled import CompiledTopology, load_compiled
from .engine import Engine
from .errors import (
    AegisError,
    BatchInputError,
    CompiledFileError,
    InvalidFamilyError,
    InvalidFlowError,
    LogInputError,
    SharedEngineError,
    SpillError,
    TopologyError,
    TopologyIssue,
    UnknownIdError,
)
from .reference import ReferenceEngine
from .shared_engine import SharedEngine
from .topology import AegisIP, DataCenter, DistanceMatrix, Location, Pool, Topology

__all__ = [
    "HASH_SCHEME_VERSION",
    "AegisError",
    "AegisIP",
    "BatchInputError",
    "BatchResult",
    "CompiledFileError",
    "CompiledTopology",
    "DataCenter",
    "Decision",
    "DistanceMatrix",
    "Engine",
    "IdTables",
    "InvalidFamilyError",
    "InvalidFlowError",
    "Location",
    "LogInputError",
    "Pool",
    "ReferenceEngine",
    "SharedEngine",
    "SharedEngineError",
    "SpillError",
    "Tier",
    "Topology",
    "TopologyError",
    "TopologyIssue",
    "UnknownIdError",
    "advise",
    "client_flow_key",
    "compare",
    "datasets",
    "evaluate",
    "evaluate_dask",
    "load_compiled",
    "load_topology",
]


_LAZY = {
    "datasets": ("datasets", None),
    "evaluate": ("evaluation", "evaluate"),
    "compare": ("evaluation", "compare"),
    "evaluate_dask": ("evaluation._dask", "evaluate_dask"),
    "advise": ("advise", "advise"),
}


def __getattr__(name: str) -> Any:
    # Analysis entry points import pyarrow & co.; load them only when asked so that a proxy
    # embedding the engine needs nothing beyond numpy. (importlib, not ``from . import``: the
    # latter would look the name up on this module again and recurse into __getattr__.)
    if name not in _LAZY:
        raise AttributeError(f"module 'aegisfwd' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(f"{__name__}.{module_name}")
    return module if attribute is None else getattr(module, attribute)
