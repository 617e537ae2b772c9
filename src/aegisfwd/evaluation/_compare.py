"""Row-by-row difference between two evaluations of one log (``compare``), mergeable like ``Summary``."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._summary import N_TIERS, TIERS, _add_maps

_NONE = "-"  # egress location of an UNAVAILABLE row in flow keys


@dataclass
class CompareSummary:
    rows_in: int = 0
    rows_both: int = 0  # decided under both topologies
    rejected_a: int = 0
    rejected_b: int = 0
    transitions: dict[tuple[str, str], int] = field(default_factory=dict)  # (tier A, tier B) -> rows
    moved_server: int = 0  # egress server differs (including to/from none)
    moved_location: int = 0  # egress location differs (including to/from none)
    moved_ip: int = 0
    became_unavailable: int = 0
    became_available: int = 0
    distance_rows: int = 0  # rows with an egress under both
    distance_a: float = 0.0
    distance_b: float = 0.0
    distance_added: float = 0.0  # sum of increases
    distance_saved: float = 0.0  # sum of decreases
    rows_farther: int = 0
    rows_closer: int = 0
    changed_flows: dict[tuple[str, str, str], int] = field(
        default_factory=dict
    )  # (ingress, egress A, egress B)
    changed_flow_distance: dict[tuple[str, str, str], float] = field(default_factory=dict)  # sum of B - A
    moved_by_pool: dict[str, int] = field(default_factory=dict)
    distance_unit: str = "km"

    def merge(self, o: CompareSummary) -> CompareSummary:
        return CompareSummary(
            rows_in=self.rows_in + o.rows_in,
            rows_both=self.rows_both + o.rows_both,
            rejected_a=self.rejected_a + o.rejected_a,
            rejected_b=self.rejected_b + o.rejected_b,
            transitions=_add_maps(self.transitions, o.transitions),
            moved_server=self.moved_server + o.moved_server,
            moved_location=self.moved_location + o.moved_location,
            moved_ip=self.moved_ip + o.moved_ip,
            became_unavailable=self.became_unavailable + o.became_unavailable,
            became_available=self.became_available + o.became_available,
            distance_rows=self.distance_rows + o.distance_rows,
            distance_a=self.distance_a + o.distance_a,
            distance_b=self.distance_b + o.distance_b,
            distance_added=self.distance_added + o.distance_added,
            distance_saved=self.distance_saved + o.distance_saved,
            rows_farther=self.rows_farther + o.rows_farther,
            rows_closer=self.rows_closer + o.rows_closer,
            changed_flows=_add_maps(self.changed_flows, o.changed_flows),
            changed_flow_distance=_add_maps(self.changed_flow_distance, o.changed_flow_distance),
            moved_by_pool=_add_maps(self.moved_by_pool, o.moved_by_pool),
            distance_unit=self.distance_unit,
        )

    @property
    def net_distance_change(self) -> float:
        """Sum over rows of (distance B - distance A): negative means B is closer overall."""
        return self.distance_b - self.distance_a

    def top_changed_flows(self, n: int = 20) -> list[dict[str, Any]]:
        items = sorted(self.changed_flows.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
        return [
            {
                "ingress_location": i,
                "egress_a": a,
                "egress_b": b,
                "rows": c,
                "distance_change": self.changed_flow_distance.get((i, a, b), math.nan),
            }
            for (i, a, b), c in items
        ]

    def tier_change(self) -> dict[str, dict[str, int]]:
        """Per tier: rows under A, under B (rows decided by both) and the difference."""
        a = Counter[str]()
        b = Counter[str]()
        for (ta, tb), c in self.transitions.items():
            a[ta] += c
            b[tb] += c
        return {t: {"a": a[t], "b": b[t], "change": b[t] - a[t]} for t in TIERS}

    def to_dict(self, top: int = 20) -> dict[str, Any]:
        return {
            "rows_in": self.rows_in,
            "rows_both": self.rows_both,
            "rejected_a": self.rejected_a,
            "rejected_b": self.rejected_b,
            "tier_change": self.tier_change(),
            "transitions": [{"a": a, "b": b, "rows": c} for (a, b), c in sorted(self.transitions.items())],
            "moved_server": self.moved_server,
            "moved_location": self.moved_location,
            "moved_ip": self.moved_ip,
            "became_unavailable": self.became_unavailable,
            "became_available": self.became_available,
            "distance_unit": self.distance_unit,
            "distance_rows": self.distance_rows,
            "distance_a": self.distance_a,
            "distance_b": self.distance_b,
            "net_distance_change": self.net_distance_change,
            "distance_added": self.distance_added,
            "distance_saved": self.distance_saved,
            "rows_farther": self.rows_farther,
            "rows_closer": self.rows_closer,
            "top_changed_flows": self.top_changed_flows(top),
            "top_moved_pools": sorted(self.moved_by_pool.items(), key=lambda kv: (-kv[1], kv[0]))[:top],
        }


class _Union:
    """One index space over the ids of two models (so A's and B's decisions compare by id)."""

    def __init__(self, a: list[str], b: list[str]) -> None:
        index: dict[str, int] = {}
        for x in list(a) + list(b):
            index.setdefault(x, len(index))
        self.ids = list(index)
        # position -1 (none) maps to -1: arrays carry one extra slot at the end
        self.from_a = np.array([index[x] for x in a] + [-1], dtype=np.int64)
        self.from_b = np.array([index[x] for x in b] + [-1], dtype=np.int64)


class CompareAccumulator:
    def __init__(self, a: Any, b: Any) -> None:
        self.a, self.b = a, b
        self.loc = _Union(a.location_ids, b.location_ids)
        self.srv = _Union(a.server_ids, b.server_ids)
        self.ip = _Union(a.ip_ids, b.ip_ids)
        self.s = CompareSummary(distance_unit=a.distance_unit)
        self.rows_in = 0
        self.trans = np.zeros(N_TIERS * N_TIERS, dtype=np.int64)
        self.flows: Counter[int] = Counter()
        self.flow_dist: dict[int, float] = {}
        self.pools: Counter[int] = Counter()

    @staticmethod
    def _full(n: int, ok: np.ndarray, values: np.ndarray, fill: Any, dtype: Any) -> np.ndarray:
        out = np.full(n, fill, dtype=dtype)
        out[ok] = values
        return out

    def add(
        self, n: int, res_a: Any, dec_a: Any, ok_a: np.ndarray, res_b: Any, dec_b: Any, ok_b: np.ndarray
    ) -> None:
        s = self.s
        s.rejected_a += n - ok_a.shape[0]
        s.rejected_b += n - ok_b.shape[0]
        ta = self._full(n, ok_a, dec_a.tier, 255, np.int64)
        tb = self._full(n, ok_b, dec_b.tier, 255, np.int64)
        both = np.flatnonzero((ta < N_TIERS) & (tb < N_TIERS))
        if both.shape[0] == 0:
            return
        s.rows_both += int(both.shape[0])
        ta, tb = ta[both], tb[both]
        self.trans += np.bincount(ta * N_TIERS + tb, minlength=N_TIERS * N_TIERS)
        la = self.loc.from_a[self._full(n, ok_a, dec_a.location, -1, np.int64)[both]]
        lb = self.loc.from_b[self._full(n, ok_b, dec_b.location, -1, np.int64)[both]]
        sa = self.srv.from_a[self._full(n, ok_a, dec_a.server, -1, np.int64)[both]]
        sb = self.srv.from_b[self._full(n, ok_b, dec_b.server, -1, np.int64)[both]]
        ia = self.ip.from_a[self._full(n, ok_a, dec_a.ip, -1, np.int64)[both]]
        ib = self.ip.from_b[self._full(n, ok_b, dec_b.ip, -1, np.int64)[both]]
        da = self._full(n, ok_a, dec_a.distance, np.nan, np.float64)[both]
        db = self._full(n, ok_b, dec_b.distance, np.nan, np.float64)[both]
        una = ta == 4
        unb = tb == 4
        s.became_unavailable += int((~una & unb).sum())
        s.became_available += int((una & ~unb).sum())
        moved_loc = la != lb
        s.moved_location += int(moved_loc.sum())
        moved_srv = sa != sb
        s.moved_server += int(moved_srv.sum())
        s.moved_ip += int((ia != ib).sum())
        fin = np.isfinite(da) & np.isfinite(db)
        delta = db[fin] - da[fin]
        s.distance_rows += int(fin.sum())
        s.distance_a += float(da[fin].sum())
        s.distance_b += float(db[fin].sum())
        s.distance_added += float(delta[delta > 0].sum())
        s.distance_saved += float(-delta[delta < 0].sum())
        s.rows_farther += int((delta > 0).sum())
        s.rows_closer += int((delta < 0).sum())
        if moved_loc.any():
            ing = self.loc.from_a[res_a.location[both].astype(np.int64)]
            nl = len(self.loc.ids) + 1
            key = ((ing[moved_loc] + 1) * nl + (la[moved_loc] + 1)) * nl + (lb[moved_loc] + 1)
            d = np.where(fin, db - da, np.nan)[moved_loc]
            u, inv = np.unique(key, return_inverse=True)
            counts = np.bincount(inv, minlength=u.shape[0])
            dsum = np.bincount(inv, weights=np.nan_to_num(d, nan=0.0), minlength=u.shape[0])
            for k, c, ds in zip(u.tolist(), counts.tolist(), dsum.tolist(), strict=True):
                self.flows[k] += c
                self.flow_dist[k] = self.flow_dist.get(k, 0.0) + ds
        if moved_srv.any():
            pool = res_a.pool[both][moved_srv].astype(np.int64)
            u, c = np.unique(pool, return_counts=True)
            self.pools.update(dict(zip(u.tolist(), c.tolist(), strict=True)))

    def finish(self) -> CompareSummary:
        s = self.s
        s.rows_in = self.rows_in
        t = self.trans.reshape(N_TIERS, N_TIERS)
        s.transitions = {
            (TIERS[i], TIERS[j]): int(t[i, j]) for i in range(N_TIERS) for j in range(N_TIERS) if t[i, j]
        }
        nl = len(self.loc.ids) + 1

        def name(k: int) -> str:
            return _NONE if k == 0 else self.loc.ids[k - 1]

        for k, c in self.flows.items():
            rest, b = divmod(k, nl)
            i, a = divmod(rest, nl)
            key = (name(i), name(a), name(b))
            s.changed_flows[key] = s.changed_flows.get(key, 0) + c
            s.changed_flow_distance[key] = s.changed_flow_distance.get(key, 0.0) + self.flow_dist[k]
        s.moved_by_pool = {self.a.pool_ids[p]: c for p, c in self.pools.items() if p >= 0}
        return s
