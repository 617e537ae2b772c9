"""Benchmark workloads: a topology and a batch of requests, each derived deterministically from the world.

``world``
    ``world(seed)`` and ``requests(topo, n, seed)`` as they are: 80% IPv4, Zipf pools,
    about 78% of rows end REMOTE (each IPv4 address sits in 1-4 locations).
``ipv6-heavy``
    The same topology; 90% of rows ask for IPv6, and pools are drawn (same Zipf law, in pool order)
    among the 60% of pools that own an IPv6 range. IPv6 ranges are held everywhere, so rows end mostly
    LOCAL: the cheap end of the chain.
``scarce-ipv4``
    The world with every IPv4 address held in exactly one location (the location of its first holder,
    by every server there); IPv6 unchanged. IPv4 rows end mostly REMOTE with a whole location's servers
    as candidates: the expensive end (long rendezvous, many candidate locations to rank).

Every workload is a pure function of ``(n, seed)``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from ..datasets import Requests, requests, world
from ..topology import AegisIP, Pool, Topology

__all__ = ["IPV6_HEAVY_SHARE", "WORKLOADS", "Workload", "make", "scarce_ipv4_topology"]

IPV6_HEAVY_SHARE = 0.9


@dataclass(frozen=True)
class Workload:
    """A named topology with a batch of requests (index columns, ``datasets.Requests``)."""

    name: str
    topology: Topology
    requests: Requests
    seed: int

    def __len__(self) -> int:
        return len(self.requests)

    @property
    def columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        r = self.requests
        return (r.server, r.pool, r.family, r.flow)

    def head(self, m: int) -> Workload:
        """The same workload restricted to its first ``m`` requests."""
        r = self.requests
        m = min(int(m), len(r))
        return Workload(
            self.name, self.topology, Requests(r.server[:m], r.pool[:m], r.family[:m], r.flow[:m]), self.seed
        )


def _world(n: int, seed: int) -> Workload:
    topo = world(seed)
    return Workload("world", topo, requests(topo, n, seed), seed)


def _ipv6_heavy(n: int, seed: int) -> Workload:
    topo = world(seed)
    v6_pools = np.array(
        [p for p, pool in enumerate(topo.pools) if any(ip.family == 6 for ip in pool.ips)], np.int32
    )
    # Draw with the datasets sampler on the sub-world of IPv6 pools, then map back to world indices.
    sub = Topology(
        topo.locations, topo.data_centers, tuple(topo.pools[p] for p in v6_pools.tolist()), topo.server_states
    )
    r = requests(sub, n, seed)
    rng = np.random.default_rng([seed, 6])
    family = np.where(rng.random(n) < IPV6_HEAVY_SHARE, 6, 4).astype(np.uint8)
    return Workload("ipv6-heavy", topo, Requests(r.server, v6_pools[r.pool], family, r.flow), seed)


@functools.lru_cache(maxsize=2)
def scarce_ipv4_topology(seed: int = 0) -> Topology:
    """The world of ``seed`` with every IPv4 address held by all servers of one location only."""
    topo = world(seed)
    location_of = {dc.id: dc.location for dc in topo.data_centers}
    location_of.update({s: dc.location for dc in topo.data_centers for s in dc.servers})
    location_of.update({loc: loc for loc in topo.location_ids})

    def scarce(ip: AegisIP) -> AegisIP:
        if ip.family != 4 or not ip.holders:
            return ip
        return AegisIP(ip.network, (location_of[ip.holders[0]],))

    pools = tuple(Pool(p.id, tuple(scarce(ip) for ip in p.ips)) for p in topo.pools)
    return Topology(topo.locations, topo.data_centers, pools, topo.server_states, topo.zones, topo.distances)


def _scarce_ipv4(n: int, seed: int) -> Workload:
    topo = scarce_ipv4_topology(seed)
    return Workload("scarce-ipv4", topo, requests(topo, n, seed), seed)


_BUILDERS = {"world": _world, "ipv6-heavy": _ipv6_heavy, "scarce-ipv4": _scarce_ipv4}
WORKLOADS: tuple[str, ...] = tuple(_BUILDERS)


def make(name: str, n: int, seed: int = 0) -> Workload:
    """Workload ``name`` (one of ``WORKLOADS``) with ``n`` requests."""
    try:
        build = _BUILDERS[name]
    except KeyError:
        raise ValueError(f"unknown workload {name!r}: expected one of {', '.join(WORKLOADS)}") from None
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return build(int(n), int(seed))
