"""Pure-Python peer: the forwarding chain written the way a proxy developer would first write it.

Dicts and sets keyed by ids, straight from the topology model: an IP's holders are kept as the set of
names the file gives (servers, DCs, locations), and "does server s hold IP x" is three set lookups.
No precomputed candidate lists, no interning. It computes the **full** decision (tier, egress server,
DC, location, IP, distance) with the engine's hashing scheme (``aegisfwd._hashing``, docs/hashing.md),
so it must agree with ``ReferenceEngine`` on every column.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Sequence

import numpy as np

from aegisfwd._hashing import ip_flow_hash, ip_key, server_flow_hash, server_key, weight
from aegisfwd.topology import canonical_ip_text

LOCAL, SAME_DC, SAME_LOCATION, REMOTE, UNAVAILABLE = 0, 1, 2, 3, 4

# (tier, server id, dc id, location id, ip text, distance); ids are None when UNAVAILABLE.
Answer = tuple[int, "str | None", "str | None", "str | None", "str | None", float]


class _IP:
    __slots__ = ("_text", "holders", "index", "key", "network")

    def __init__(
        self, network: ipaddress.IPv4Network | ipaddress.IPv6Network, index: int, holders: frozenset[str]
    ) -> None:
        self.network = network
        self.index = index
        self.key = ip_key(network)
        self.holders = holders
        self._text: str | None = None

    @property
    def text(self) -> str:
        """Canonical text form, made on first use (``ipaddress`` formatting is slow)."""
        if self._text is None:
            self._text = canonical_ip_text(self.network)
        return self._text


class PurePythonPeer:
    """``decide(server_id, pool_id, family, flow)`` with dicts and sets; ``decide_batch`` on indices."""

    name = "peer.python"
    computes = "full"

    def __init__(self, topology) -> None:
        t = topology
        self.server_dc: dict[str, str] = {}
        self.server_location: dict[str, str] = {}
        self.dc_servers: dict[str, list[str]] = {}
        self.location_dcs: dict[str, list[str]] = {loc.id: [] for loc in t.locations}
        for dc in t.ordered_data_centers:
            self.dc_servers[dc.id] = list(dc.servers)
            self.location_dcs[dc.location].append(dc.id)
            for s in dc.servers:
                self.server_dc[s] = dc.id
                self.server_location[s] = dc.location
        self.up: set[str] = {
            s for s, st in zip(t.server_ids, t.initial_states().tolist(), strict=True) if st == 0
        }
        self.key: dict[str, int] = {s: server_key(s) for s in t.server_ids}
        self.location_rank = {lid: i for i, lid in enumerate(t.location_ids)}

        dc_location = {dc.id: dc.location for dc in t.data_centers}
        # (pool, family) -> applicable IPs, and the locations where any of them has a holder.
        self.ips: dict[tuple[str, int], list[_IP]] = {}
        self.holder_locations: dict[tuple[str, int], frozenset[str]] = {}
        self.pools: set[str] = set()
        by_holders: dict[tuple[str, ...], tuple[frozenset[str], frozenset[str]]] = {}
        index = 0
        for pool in t.pools:
            self.pools.add(pool.id)
            for ip in pool.ips:
                g = (pool.id, ip.network.version)
                names, where = by_holders.get(ip.holders) or by_holders.setdefault(
                    ip.holders,
                    (
                        frozenset(ip.holders),
                        frozenset(self.server_location.get(h) or dc_location.get(h) or h for h in ip.holders),
                    ),
                )
                self.ips.setdefault(g, []).append(_IP(ip.network, index, names))
                index += 1
                self.holder_locations[g] = self.holder_locations.get(g, frozenset()) | where
        # distance[a][b], rounded as docs/decision.md says; unreachable pairs are left out.
        ids = t.location_ids
        matrix = t.distance_matrix().tolist()
        self.distance: dict[str, dict[str, float]] = {
            a: {b: d for b, d in zip(ids, row, strict=True) if not math.isnan(d)}
            for a, row in zip(ids, matrix, strict=True)
        }
        # Index tables for the batch interface.
        self._server_ids: Sequence[str] = t.server_ids
        self._pool_ids: Sequence[str] = t.pool_ids
        self._server_index, self._dc_index, self._location_index = (
            t.server_index,
            t.dc_index,
            t.location_index,
        )

    # ---- one decision ---------------------------------------------------------------------
    def _holds(self, server: str, ip: _IP) -> bool:
        h = ip.holders
        return server in h or self.server_dc[server] in h or self.server_location[server] in h

    def _is_candidate(self, server: str, ips: list[_IP]) -> bool:
        return server in self.up and any(self._holds(server, ip) for ip in ips)

    def decide(self, server: str, pool: str, family: int, flow: int) -> Answer:
        """(tier, egress server, DC, location, IP text, distance) for one request given by ids."""
        tier, target, ip, distance = self._decide(server, pool, family, flow)
        if target is None or ip is None:
            return (tier, None, None, None, None, distance)
        return (tier, target, self.server_dc[target], self.server_location[target], ip.text, distance)

    def _decide(
        self, server: str, pool: str, family: int, flow: int
    ) -> tuple[int, str | None, _IP | None, float]:
        if server not in self.server_dc:
            raise ValueError(f"unknown server: {server!r}")
        if pool not in self.pools:
            raise ValueError(f"unknown pool: {pool!r}")
        if family not in (4, 6):
            raise ValueError(f"invalid address family {family!r}")
        ips = self.ips.get((pool, family), [])
        dc = self.server_dc[server]
        location = self.server_location[server]
        distance = 0.0

        if self._is_candidate(server, ips):
            tier, candidates = LOCAL, [server]
        else:
            tier = SAME_DC
            candidates = [s for s in self.dc_servers[dc] if s != server and self._is_candidate(s, ips)]
            if not candidates:
                tier = SAME_LOCATION
                candidates = [
                    s
                    for other in self.location_dcs[location]
                    if other != dc
                    for s in self.dc_servers[other]
                    if self._is_candidate(s, ips)
                ]
            if not candidates:
                tier = REMOTE
                reachable = self.distance[location]
                places = [
                    m
                    for m in self.holder_locations.get((pool, family), ())
                    if m != location and m in reachable
                ]
                places.sort(key=lambda m: (reachable[m], self.location_rank[m]))
                for m in places:
                    candidates = [
                        s
                        for d in self.location_dcs[m]
                        for s in self.dc_servers[d]
                        if self._is_candidate(s, ips)
                    ]
                    if candidates:
                        distance = reachable[m]
                        break
            if not candidates:
                return (UNAVAILABLE, None, None, math.nan)

        h = server_flow_hash(flow)
        target = max(candidates, key=lambda s: (weight(h, self.key[s]), self.key[s]))
        hi = ip_flow_hash(flow)
        ip = max(
            (x for x in ips if self._holds(target, x)),
            key=lambda x: (weight(hi, x.key), x.key),
        )
        return (tier, target, ip, distance)

    # ---- a batch of index columns -----------------------------------------------------------
    def decide_batch(
        self, server: np.ndarray, pool: np.ndarray, family: np.ndarray, flow: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Decide every row of index columns; returns the engine's columns (indices, -1 = none)."""
        n = len(server)
        out_tier = np.empty(n, np.uint8)
        out_server, out_dc, out_location, out_ip = (np.full(n, -1, np.int32) for _ in range(4))
        out_distance = np.empty(n, np.float64)
        sid, pid = self._server_ids, self._pool_ids
        server_index, dc_index, location_index = self._server_index, self._dc_index, self._location_index
        for row, (s, p, f, fl) in enumerate(
            zip(server.tolist(), pool.tolist(), family.tolist(), flow.tolist(), strict=True)
        ):
            tier, target, ip, d = self._decide(sid[s], pid[p], f, fl)
            out_tier[row] = tier
            out_distance[row] = d
            if target is not None and ip is not None:
                out_server[row] = server_index[target]
                out_dc[row] = dc_index[self.server_dc[target]]
                out_location[row] = location_index[self.server_location[target]]
                out_ip[row] = ip.index
        return {
            "tier": out_tier,
            "server": out_server,
            "dc": out_dc,
            "location": out_location,
            "ip": out_ip,
            "distance": out_distance,
        }
