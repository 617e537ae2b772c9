"""NumPy peer: the forwarding chain vectorised over a batch of requests.

Written the way a data engineer fluent in NumPy would: the topology becomes a few flat arrays (server
ranges of DCs and locations, each (pool, family) group's holder ranges merged into disjoint server
ranges, a prefix sum of "server is up"), and every step of the chain is a whole-column operation.
Ragged per-row work (the group's ranges, the candidate servers of the chosen scope, the group's IPs) is
flattened with ``np.repeat`` and reduced per row with ``ufunc.reduceat``.

``computes="full"`` gives every column of the engine's result: the egress server and IP are chosen by
exact rendezvous (``docs/hashing.md``) with the hash written in uint64 NumPy arithmetic, so it agrees
with ``ReferenceEngine`` bit for bit. ``computes="tier+location"`` stops after the tier and the egress
location (and distance), the same work as the DuckDB peer, for an equal-work comparison with it.

Single-threaded (NumPy releases the GIL in its loops but runs each on one core). Rows are processed in
chunks so that the flattened per-row work stays in a bounded amount of memory.
"""

from __future__ import annotations

import copy

import numpy as np

from aegisfwd._hashing import IP_FLOW_SALT, SERVER_FLOW_SALT, ip_key, server_key

LOCAL, SAME_DC, SAME_LOCATION, REMOTE, UNAVAILABLE = 0, 1, 2, 3, 4
_NO_RANK = np.iinfo(np.int32).max
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)


def mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finalizer on a uint64 array (multiplication wraps modulo 2**64, as in C)."""
    x = x ^ (x >> _S30)
    x *= _M1
    x ^= x >> _S27
    x *= _M2
    x ^= x >> _S31
    return x


def _csr(lists: list[np.ndarray], dtype: str | type = np.int64) -> tuple[np.ndarray, np.ndarray]:
    """(start, flat) with list k at ``flat[start[k]:start[k+1]]``."""
    start = np.zeros(len(lists) + 1, np.int64)
    np.cumsum([len(x) for x in lists], out=start[1:])
    flat = np.concatenate(lists).astype(dtype) if lists else np.empty(0, dtype)
    return start, flat


def _expand(first: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows with ``count[r]`` items starting at ``first[r]``: (row of each item, item position)."""
    rows = np.repeat(np.arange(len(count)), count)
    offset = np.arange(rows.size) - np.repeat(np.cumsum(count) - count, count)
    return rows, np.repeat(first, count) + offset


def _segment_winner(rows: np.ndarray, w: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Position (into the flat arrays) of the largest ``(w, key)`` of each run of equal ``rows``.

    ``rows`` is non-decreasing and keys are distinct within a run, so each run has exactly one winner.
    """
    starts = np.flatnonzero(np.concatenate(([True], rows[1:] != rows[:-1])))
    lengths = np.diff(np.append(starts, rows.size))
    top = w == np.repeat(np.maximum.reduceat(w, starts), lengths)
    k = np.where(top, key, np.uint64(0))
    top &= key == np.repeat(np.maximum.reduceat(k, starts), lengths)
    return np.flatnonzero(top)


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for a, b in sorted(ranges):
        if a >= b:
            continue
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


class NumpyPeer:
    """``decide_batch(server, pool, family, flow)`` on index columns, vectorised with NumPy."""

    name = "peer.numpy"

    def __init__(self, topology, computes: str = "full", chunk: int = 1 << 15) -> None:
        if computes not in ("full", "tier+location"):
            raise ValueError(f"computes must be 'full' or 'tier+location', got {computes!r}")
        self.computes = computes
        self.chunk = int(chunk)
        t = topology
        dcs = np.array(t.dc_server_ranges, np.int64).reshape(-1, 2)
        self.server_dc = np.repeat(np.arange(len(dcs), dtype=np.int32), dcs[:, 1] - dcs[:, 0])
        locs = np.array(t.location_server_ranges, np.int64).reshape(-1, 2)
        self.dc_first, self.dc_end = dcs[:, 0], dcs[:, 1]
        self.loc_first, self.loc_end = locs[:, 0], locs[:, 1]
        li = t.location_index
        self.dc_location = np.array([li[dc.location] for dc in t.ordered_data_centers], np.int32)
        self.server_location = self.dc_location[self.server_dc]
        self.server_key = np.array([server_key(s) for s in t.server_ids], np.uint64)
        up = t.initial_states() == 0
        self.up = up
        self.up_before = np.concatenate(([0], np.cumsum(up, dtype=np.int64)))  # up servers in [0, s)

        # IPs in index order, each with its holder names merged into disjoint server ranges.
        range_of: dict[str, tuple[int, int]] = {}

        def ranges(holders: tuple[str, ...]) -> list[tuple[int, int]]:
            out = []
            for h in holders:
                r = range_of.get(h)
                if r is None:
                    r = range_of[h] = t.holder_range(h)
                out.append(r)
            return _merge(out)

        n_groups = 2 * len(t.pools)
        group_ip_lists: list[list[int]] = [[] for _ in range(n_groups)]
        group_ranges: list[list[tuple[int, int]]] = [[] for _ in range(n_groups)]
        ip_ranges: list[np.ndarray] = []
        ip_keys = []
        merged_cache: dict[tuple[str, ...], list[tuple[int, int]]] = {}
        for i, (p, ip) in enumerate(t.ordered_ips):
            g = 2 * p + (ip.family == 6)
            group_ip_lists[g].append(i)
            merged = merged_cache.get(ip.holders)
            if merged is None:
                merged = merged_cache[ip.holders] = ranges(ip.holders)
            group_ranges[g].extend(merged)
            ip_ranges.append(np.array(merged, np.int64).reshape(-1, 2))
            ip_keys.append(ip_key(ip.network))
        self.ip_key = np.array(ip_keys, np.uint64)
        self.ip_range_start, flat = _csr(ip_ranges)
        self.ip_range = flat.reshape(-1, 2)
        self.group_ip_start, self.group_ips = _csr([np.array(x, np.int64) for x in group_ip_lists])

        # Each group's merged ranges (groups with the same ranges share one copy).
        n_loc = len(t.locations)
        interned: dict[tuple[tuple[int, int], ...], int] = {}
        group_set = np.empty(n_groups, np.int64)
        for g, rs in enumerate(group_ranges):
            group_set[g] = interned.setdefault(tuple(_merge(rs)), len(interned))
        sets = [np.array(k, np.int64).reshape(-1, 2) for k in interned]
        set_start, flat = _csr(sets)
        set_range = flat.reshape(-1, 2)
        # ... and the locations where a set has an up server, found for all sets at once: every range
        # meets the locations between the one holding its first server and the one holding its last.
        owner = np.repeat(np.arange(len(sets)), np.diff(set_start))
        a, b = set_range[:, 0], set_range[:, 1]
        first_loc = np.searchsorted(self.loc_end, a, side="right")
        last_loc = np.searchsorted(self.loc_first, b, side="left") - 1
        meet, loc = _expand(first_loc, np.maximum(last_loc - first_loc + 1, 0))
        lo = np.maximum(a[meet], self.loc_first[loc])
        hi = np.minimum(b[meet], self.loc_end[loc])
        ok = (hi > lo) & (self.up_before[np.maximum(hi, lo)] > self.up_before[lo])
        pairs = np.unique(owner[meet[ok]] * n_loc + loc[ok])
        set_loc_start = np.searchsorted(pairs // n_loc, np.arange(len(sets) + 1))
        set_locs = pairs % n_loc

        counts = np.diff(set_start)[group_set]
        self.group_range_start = np.concatenate(([0], np.cumsum(counts)))
        self.group_range = set_range[_expand(set_start[group_set], counts)[1]]
        counts = np.diff(set_loc_start)[group_set]
        self.group_loc_start = np.concatenate(([0], np.cumsum(counts)))
        self.group_locs = set_locs[_expand(set_loc_start[group_set], counts)[1]]

        # Distances and, per ingress location, every reachable other location ranked by (distance, index).
        self.distance = t.distance_matrix()
        d = np.where(np.isnan(self.distance), np.inf, self.distance)
        np.fill_diagonal(d, np.inf)
        order = np.lexsort((np.broadcast_to(np.arange(n_loc), d.shape), d), axis=1)
        self.rank = np.full((n_loc, n_loc), _NO_RANK, np.int32)
        rows = np.arange(n_loc)[:, None]
        self.rank[rows, order] = np.arange(n_loc, dtype=np.int32)[None, :]
        self.rank[~np.isfinite(d)] = _NO_RANK
        self.order = order.astype(np.int32)
        self.n_ips = len(ip_keys)

    def with_computes(self, computes: str) -> NumpyPeer:
        """The same tables (shared, not copied) computing ``computes``."""
        if computes not in ("full", "tier+location"):
            raise ValueError(f"computes must be 'full' or 'tier+location', got {computes!r}")
        other = copy.copy(self)
        other.computes = computes
        return other

    # ---- helpers over a chunk ------------------------------------------------------------------
    def _count_up(self, rows, pos, lo, hi, n):
        """Up candidates per row: servers in the row's group ranges (flattened) within [lo, hi)."""
        a = np.maximum(self.group_range[pos, 0], lo[rows])
        b = np.minimum(self.group_range[pos, 1], hi[rows])
        c = np.where(b > a, self.up_before[np.maximum(a, b)] - self.up_before[a], 0)
        return np.bincount(rows, weights=c, minlength=n) > 0

    def _choose_server(self, g, lo, hi, flow):
        """Rendezvous over the up servers of each row's group ranges within [lo, hi)."""
        rows, pos = _expand(self.group_range_start[g], np.diff(self.group_range_start)[g])
        a = np.maximum(self.group_range[pos, 0], lo[rows])
        b = np.minimum(self.group_range[pos, 1], hi[rows])
        length = np.maximum(b - a, 0)
        srows, server = _expand(a, length)
        srows = rows[srows]
        keep = self.up[server]
        srows, server = srows[keep], server[keep]
        h = mix64(flow ^ np.uint64(SERVER_FLOW_SALT))
        key = self.server_key[server]
        return server[_segment_winner(srows, mix64(h[srows] ^ key), key)]

    def _choose_ip(self, g, target, flow):
        """Rendezvous over the group's IPs that ``target`` holds."""
        rows, pos = _expand(self.group_ip_start[g], np.diff(self.group_ip_start)[g])
        ip = self.group_ips[pos]
        pairs, rpos = _expand(self.ip_range_start[ip], np.diff(self.ip_range_start)[ip])
        t = target[rows[pairs]]
        inside = (self.ip_range[rpos, 0] <= t) & (t < self.ip_range[rpos, 1])
        held = np.bincount(pairs, weights=inside, minlength=rows.size) > 0
        rows, ip = rows[held], ip[held]
        h = mix64(flow ^ np.uint64(IP_FLOW_SALT))
        key = self.ip_key[ip]
        return ip[_segment_winner(rows, mix64(h[rows] ^ key), key)]

    def _decide_chunk(self, server, pool, family, flow, out, sl) -> None:
        n = server.size
        server = server.astype(np.int64)
        g = 2 * pool.astype(np.int64) + (family == 6)
        dc = self.server_dc[server]
        loc = self.server_location[server]

        rows, pos = _expand(self.group_range_start[g], np.diff(self.group_range_start)[g])
        local = self._count_up(rows, pos, server, server + 1, n)
        same_dc = self._count_up(rows, pos, self.dc_first[dc], self.dc_end[dc], n)
        same_loc = self._count_up(rows, pos, self.loc_first[loc], self.loc_end[loc], n)
        tier = np.select([local, same_dc, same_loc], [LOCAL, SAME_DC, SAME_LOCATION], UNAVAILABLE)
        egress_loc = np.where(tier < UNAVAILABLE, loc, -1)
        distance = np.where(tier < UNAVAILABLE, 0.0, np.nan)

        # REMOTE: the group's locations with an up candidate, nearest first by (distance, index).
        rest = np.flatnonzero(tier == UNAVAILABLE)
        if rest.size:
            gr = g[rest]
            rrows, lpos = _expand(self.group_loc_start[gr], np.diff(self.group_loc_start)[gr])
            if rrows.size:
                rank = self.rank[loc[rest][rrows], self.group_locs[lpos]]
                best = np.full(rest.size, _NO_RANK, np.int32)
                np.minimum.at(best, rrows, rank)
                found = best != _NO_RANK
                hit = rest[found]
                m = self.order[loc[hit], best[found]]
                tier[hit] = REMOTE
                egress_loc[hit] = m
                distance[hit] = self.distance[loc[hit], m]

        out["tier"][sl] = tier
        out["location"][sl] = egress_loc
        out["distance"][sl] = distance
        if self.computes != "full":
            return

        target = np.where(tier == LOCAL, server, -1)
        for t, lo, hi in (
            (SAME_DC, self.dc_first[dc], self.dc_end[dc]),
            (SAME_LOCATION, self.loc_first[loc], self.loc_end[loc]),
            (REMOTE, self.loc_first[np.maximum(egress_loc, 0)], self.loc_end[np.maximum(egress_loc, 0)]),
        ):
            idx = np.flatnonzero(tier == t)
            if idx.size:
                target[idx] = self._choose_server(g[idx], lo[idx], hi[idx], flow[idx])
        decided = np.flatnonzero(target >= 0)
        ip = np.full(n, -1, np.int64)
        if decided.size:
            ip[decided] = self._choose_ip(g[decided], target[decided], flow[decided])
        has = target >= 0
        out["server"][sl] = target
        out["dc"][sl] = np.where(has, self.server_dc[np.maximum(target, 0)], -1)
        out["ip"][sl] = ip

    def decide_batch(
        self, server: np.ndarray, pool: np.ndarray, family: np.ndarray, flow: np.ndarray
    ) -> dict[str, np.ndarray]:
        n = len(server)
        out = {"tier": np.empty(n, np.uint8), "location": np.empty(n, np.int32), "distance": np.empty(n)}
        if self.computes == "full":
            out.update({k: np.empty(n, np.int32) for k in ("server", "dc", "ip")})
        flow = np.asarray(flow, np.uint64)
        for start in range(0, n, self.chunk):
            sl = slice(start, min(n, start + self.chunk))
            self._decide_chunk(server[sl], pool[sl], family[sl], flow[sl], out, sl)
        return out
