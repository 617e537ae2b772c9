"""Groups and connections decided with the compiled engine under a (patched) topology.

The advice's figures come from here: ``Engine.decide_batch`` on one row per distinct (ingress
server, pool, family) group with a sample flow (tier, location and distance do not depend on the
flow), weighted by the group's counts; and on the kept connections for the concurrency peaks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..engine import Engine
from ..evaluation._concurrency import Concurrency
from ..topology import Topology
from ._aggregate import Connections, Counts
from ._moves import only_pools


@dataclass
class GroupOutcome:
    """Per group (positions of ``Counts``): tier, egress location index and distance."""

    index: np.ndarray
    tier: np.ndarray
    location: np.ndarray
    distance: np.ndarray


class ScopeEngine:
    """The compiled engine of a topology reduced to the pools in scope (servers, states and
    distances unchanged, so server indices are those of the log's topology). ``pool_ids=None``:
    ``topology`` is already reduced (``only_pools``)."""

    def __init__(self, topology: Topology, pool_ids: set[str] | None, server_ids: list[str]) -> None:
        self.topology = topology if pool_ids is None else only_pools(topology, pool_ids)
        self.engine = Engine(self.topology)
        if list(self.engine.servers) != list(server_ids):  # pragma: no cover - moves never touch servers
            raise AssertionError("the patched topology lists other servers than the log was resolved with")
        self.pool_index = {p: k for k, p in enumerate(self.engine.pools)}
        self.ip_ids = list(self.engine.ips)

    def _pools(self, counts: Counts, index: np.ndarray) -> np.ndarray:
        table = np.array([self.pool_index.get(p, -1) for p in counts.pool_ids], dtype=np.int64)
        return table[counts.pool[index]]

    def decide_groups(self, counts: Counts, index: np.ndarray) -> GroupOutcome:
        pools = self._pools(counts, index)
        r = self.engine.decide_batch(
            counts.server[index], pools, counts.family[index], counts.sample_flow[index], errors="raise"
        )
        return GroupOutcome(
            index,
            np.asarray(r.tier, np.int64),
            np.asarray(r.location, np.int64),
            np.asarray(r.distance, np.float64),
        )

    def peaks(
        self, counts: Counts, conns: Connections, select: np.ndarray | None = None, resolution_ms: int = 1
    ) -> Concurrency:
        """The concurrency of the kept connections (those of the groups in ``select``) under this
        placement, folded like ``af.evaluate`` does it."""
        conc = Concurrency(resolution_ms)
        rows = np.arange(len(conns)) if select is None else np.flatnonzero(select[conns.group])
        if rows.shape[0] == 0:
            return conc
        g = conns.group[rows]
        r = self.engine.decide_batch(
            counts.server[g], self._pools(counts, g), counts.family[g], conns.flow[rows], errors="raise"
        )
        ip = np.asarray(r.ip, np.int64)
        has = ip >= 0
        pair = ip[has] * (len(conns.origins) + 1) + conns.origin[rows][has]
        uniq, inv = np.unique(pair, return_inverse=True)
        keys = []
        for p in uniq.tolist():
            i, o = divmod(p, len(conns.origins) + 1)
            text, port = conns.origins[o]
            keys.append((self.ip_ids[i], text, port))
        ids = conc.key_ids(keys)
        conc.add_events(ids[inv], conns.start_ns[rows][has], conns.duration_ns[rows][has])
        return conc
