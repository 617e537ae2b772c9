"""The parts of a topology a placement move touches, as arrays: servers, DCs, locations, states,
distances, and where each pool's IPv4 addresses are held.

Read from the compiled tables (``docs/compiled-format.md``), so distances are the rounded values
the engine compares, unreachable pairs are NaN, and holder ranges are the merged server ranges the
engine uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..compiled import CompiledTopology
from ..topology import MAX_IPV4_LOCATIONS

# The documented limit, under the name advise exports (topology.MAX_IPV4_LOCATIONS).
MAX_LOCATIONS_PER_IPV4 = MAX_IPV4_LOCATIONS


@dataclass
class Address:
    """One IPv4 address of a pool: its text, the servers that hold it and their locations."""

    address: str
    servers: np.ndarray  # int64 server indices (sorted, unique)
    holders: tuple[str, ...]  # as written in the topology (servers, DCs, locations)
    new: bool = False  # proposed by a move, not in the topology yet

    def locations(self, layout: Layout) -> set[int]:
        return set(np.unique(layout.server_location[self.servers]).tolist())


class Layout:
    """Servers, DCs, locations and distances of a compiled topology (moves never change them)."""

    def __init__(self, compiled: CompiledTopology, states: np.ndarray | None = None) -> None:
        a = compiled.arrays
        self.compiled = compiled
        self.location_ids: list[str] = list(compiled.locations)
        self.dc_ids: list[str] = list(compiled.dcs)
        self.server_ids: list[str] = list(compiled.servers)
        self.pool_ids: list[str] = list(compiled.pools)
        self.ip_ids: list[str] = list(compiled.ips)
        self.server_dc = np.asarray(a["server_dc"], dtype=np.int64)
        self.server_location = np.asarray(a["server_location"], dtype=np.int64)
        self.dc_location = np.asarray(a["dc_location"], dtype=np.int64)
        self.dc_server_start = np.asarray(a["dc_server_start"], dtype=np.int64)
        self.location_dc_start = np.asarray(a["location_dc_start"], dtype=np.int64)
        st = np.asarray(a["server_initial_state"] if states is None else states, dtype=np.uint8)
        self.up = st == 0
        self.dc_up = np.bincount(self.server_dc[self.up], minlength=len(self.dc_ids)).astype(np.int64)
        self.location_up = np.bincount(self.server_location[self.up], minlength=len(self.location_ids))
        d = np.array(a["location_distance"], dtype=np.float64).reshape(len(self.location_ids), -1)
        self.distance = d  # NaN = unreachable; the diagonal is 0
        # For REMOTE: another location only, unreachable never; inf marks both.
        far = np.where(np.isnan(d), np.inf, d)
        np.fill_diagonal(far, np.inf)
        self.remote = far
        finite = d[np.isfinite(d)]
        # UNAVAILABLE costs more than any REMOTE answer: twice the largest distance (1 when there is none).
        self.unavailable_cost = float(2 * finite.max()) if finite.size and finite.max() > 0 else 1.0
        self.distance_unit = str(compiled.distance_unit)
        self._ip_pool = np.asarray(a["ip_pool"], dtype=np.int64)
        self._ip_family = np.asarray(a["ip_family"], dtype=np.int64)
        self._ip_holder_start = np.asarray(a["ip_holder_start"], dtype=np.int64)
        self._ip_holder_ranges = np.asarray(a["ip_holder_ranges"], dtype=np.int64).reshape(-1, 2)
        order = np.argsort(self._ip_pool, kind="stable")
        starts = np.searchsorted(self._ip_pool[order], np.arange(len(self.pool_ids) + 1))
        self._pool_ips = [order[starts[p] : starts[p + 1]] for p in range(len(self.pool_ids))]
        self.pool_index = {p: k for k, p in enumerate(self.pool_ids)}

    def location_dcs(self, loc: int) -> range:
        return range(int(self.location_dc_start[loc]), int(self.location_dc_start[loc + 1]))

    def dc_servers(self, dc: int) -> np.ndarray:
        return np.arange(self.dc_server_start[dc], self.dc_server_start[dc + 1], dtype=np.int64)

    def ip_servers(self, ip: int) -> np.ndarray:
        rows = self._ip_holder_ranges[self._ip_holder_start[ip] : self._ip_holder_start[ip + 1]]
        if rows.shape[0] == 0:
            return np.empty(0, np.int64)
        return np.concatenate([np.arange(f, e, dtype=np.int64) for f, e in rows])

    def ipv4_indices(self, pool: int) -> list[int]:
        return [int(i) for i in self._pool_ips[pool] if self._ip_family[i] == 4]

    def ipv4_addresses(self, pool: int, holders: dict[str, tuple[str, ...]]) -> list[Address]:
        """The pool's IPv4 addresses in the order of the topology file."""
        return [
            Address(self.ip_ids[i], self.ip_servers(i), holders.get(self.ip_ids[i], ()))
            for i in self.ipv4_indices(pool)
        ]

    def holders_servers(self, dcs: list[int]) -> np.ndarray:
        if not dcs:
            return np.empty(0, np.int64)
        return np.concatenate([self.dc_servers(d) for d in dcs])
