"""Placement advice: where a pool's dedicated IPv4 addresses should be held so that less traffic is
forwarded and forwarded traffic travels less.

    import aegisfwd as af
    advice = af.advise("logs/", "topology.yaml", zones=["example.com"], steps=3)
    advice.print()
    advice.write_patch("patched.yaml")

The parts are usable on their own (the what-if explorer uses them): ``aggregate`` turns a log into
counts per (ingress server, pool, family); ``Move`` / ``apply_moves`` change a ``Topology``;
``ScopeEngine`` decides aggregated counts under any topology with the compiled engine;
``PoolState`` evaluates moves on the counts without recompiling. See ``docs/advise.md``.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from ._advise import (
    Advice,
    AdviceError,
    AdvisedMove,
    ConcurrencyAdvice,
    GreedyGap,
    PoolFigures,
    UnusedHolder,
    advise,
    figures,
    scope_pools,
)
from ._aggregate import Connections, Counts, aggregate
from ._exact import GroupOutcome, ScopeEngine
from ._greedy import Step, greedy
from ._layout import MAX_LOCATIONS_PER_IPV4, Address, Layout
from ._moves import Move, MoveError, apply_moves, holder_locations, write_topology
from ._objective import METRICS, WEIGHTS, Objective, weighted_quantile
from ._placement import PoolGroups, PoolState

__all__ = [
    "MAX_LOCATIONS_PER_IPV4",
    "METRICS",
    "WEIGHTS",
    "Address",
    "Advice",
    "AdviceError",
    "AdvisedMove",
    "ConcurrencyAdvice",
    "Connections",
    "Counts",
    "GreedyGap",
    "GroupOutcome",
    "Layout",
    "Move",
    "MoveError",
    "Objective",
    "PoolFigures",
    "PoolGroups",
    "PoolState",
    "ScopeEngine",
    "Step",
    "UnusedHolder",
    "advise",
    "aggregate",
    "apply_moves",
    "figures",
    "greedy",
    "holder_locations",
    "scope_pools",
    "weighted_quantile",
    "write_topology",
]


class _CallableModule(types.ModuleType):
    """``af.advise(...)`` must work whether ``aegisfwd.advise`` names this package or the function:
    importing the package (``from aegisfwd.advise import Move``) binds the package to the attribute
    ``aegisfwd.advise``, hiding the lazily exported function, so the package calls it."""

    def __call__(self, *args: Any, **kwargs: Any) -> Advice:
        return advise(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
