"""What the page shows for a scope (every row, or one pool's): tier mix, forwarding, distance, the
flows between locations, the busiest egress IPs, and what changed against the baseline.

Definitions follow ``aegisfwd evaluate``'s summary: *forwarded* rows egress from another server than
the ingress (SAME_DC, SAME_LOCATION, REMOTE); the mean added distance is over the rows that egress
somewhere (LOCAL and in-location tiers add 0).

Every figure is a sum over rows (``Totals``), so after a change the totals of the previous version are
updated from the re-decided rows alone: their old answers subtracted, their new ones added. A state
change that touches a tenth of a million rows then costs a tenth of a full pass. Distances are summed
as integer thousandths (they are rounded to three decimals), so the updated sums are exact.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._types import Tier
from .session import Decided, Session

TIERS: tuple[str, ...] = ("LOCAL", "SAME_DC", "SAME_LOCATION", "REMOTE", "UNAVAILABLE")
FORWARDED = [int(Tier.SAME_DC), int(Tier.SAME_LOCATION), int(Tier.REMOTE)]
MAX_LINES = 400  # flows drawn on the map
TOP_IPS = 10
TOP_CHANGES = 15
# Baseline totals kept per scope (about 1.4 MB each on the world: the location-pair matrix and the
# rows per IP); every-row scope is never dropped.
BASELINE_SCOPES = 16


@dataclass
class Totals:
    """Additive figures of a set of rows: ``add(rows, sign=-1)`` takes rows out again."""

    tiers: np.ndarray  # int64[6]: the five tiers, then INVALID
    flows: np.ndarray  # int64[L, L + 1]: ingress location x (egress location + 1; 0 = nowhere)
    ip_rows: np.ndarray  # int64[I]
    distance_milli: int  # sum of distances, in thousandths
    distance_rows: int  # rows that egress somewhere
    changed: int  # rows whose egress server or IP differs from the baseline
    moved_location: int  # rows whose egress location differs from the baseline
    transitions: np.ndarray  # int64[6, 6]: baseline tier x tier, over changed rows

    @classmethod
    def empty(cls, n_loc: int, n_ips: int) -> Totals:
        return cls(
            np.zeros(6, np.int64),
            np.zeros((n_loc, n_loc + 1), np.int64),
            np.zeros(n_ips, np.int64),
            0,
            0,
            0,
            0,
            np.zeros((6, 6), np.int64),
        )

    def add(self, d: Decided, base: Decided, ingress_location: np.ndarray, sign: int = 1) -> None:
        n_loc = self.flows.shape[0]
        tier = np.minimum(d.tier, 5).astype(np.int64)
        self.tiers += sign * np.bincount(tier, minlength=6)
        key = ingress_location.astype(np.int64) * (n_loc + 1) + (d.location.astype(np.int64) + 1)
        self.flows += sign * np.bincount(key, minlength=self.flows.size).reshape(self.flows.shape)
        self.ip_rows += sign * np.bincount(d.ip.astype(np.int64) + 1, minlength=self.ip_rows.shape[0] + 1)[1:]
        egress = d.ip >= 0
        self.distance_milli += sign * int(np.rint(d.distance[egress] * 1000).astype(np.int64).sum())
        self.distance_rows += sign * int(egress.sum())
        ch = (d.server != base.server) | (d.ip != base.ip)
        self.changed += sign * int(ch.sum())
        self.moved_location += sign * int((d.location != base.location).sum())
        pair = np.minimum(base.tier[ch], 5).astype(np.int64) * 6 + tier[ch]
        self.transitions += sign * np.bincount(pair, minlength=36).reshape(6, 6)

    def copy(self) -> Totals:
        return Totals(
            self.tiers.copy(),
            self.flows.copy(),
            self.ip_rows.copy(),
            self.distance_milli,
            self.distance_rows,
            self.changed,
            self.moved_location,
            self.transitions.copy(),
        )


def totals_of(session: Session, d: Decided, sl: slice) -> Totals:
    t = Totals.empty(len(session.location_ids), len(session.ip_ids))
    base = session.baseline
    t.add(
        Decided(d.ingress[sl], d.tier[sl], d.server[sl], d.location[sl], d.ip[sl], d.distance[sl]),
        Decided(
            base.ingress[sl],
            base.tier[sl],
            base.server[sl],
            base.location[sl],
            base.ip[sl],
            base.distance[sl],
        ),
        session.rows.location[sl],
    )
    return t


class _Cache:
    """Per session: the baseline totals per scope, and the current totals of every row at one version."""

    def __init__(self) -> None:
        self.baseline: dict[int | None, Totals] = {}
        self.current: tuple[int, Totals] | None = None


_CACHES: weakref.WeakKeyDictionary[Session, _Cache] = weakref.WeakKeyDictionary()


def _current_totals(session: Session, cache: _Cache, pool: int | None) -> Totals:
    rows = session.rows
    if pool is not None:
        return totals_of(session, session.current, rows.pool_slice(pool))
    if session.current is session.baseline:
        return cache.baseline[None]
    have = cache.current
    change = session.last_change
    if have is not None and have[0] == session.version:
        return have[1]
    if (
        have is not None
        and change is not None
        and change[0] == session.version
        and have[0] == session.version - 1
    ):
        _, pos, before = change
        t = have[1]  # owned by the cache: updated in place
        base = session.baseline.take(pos)
        loc = rows.location[pos]
        t.add(before, base, loc, sign=-1)
        t.add(session.current.take(pos), base, loc, sign=1)
    else:
        t = totals_of(session, session.current, slice(0, len(rows)))
    cache.current = (session.version, t)
    return t


def summarize(session: Session, pool: int | None = None) -> dict[str, Any]:
    """The summary of the current what-if for ``pool`` (``None``: every row). Call under ``session.lock``."""
    cache = _CACHES.setdefault(session, _Cache())
    rows = session.rows
    sl = rows.pool_slice(pool) if pool is not None else slice(0, len(rows))
    n = sl.stop - sl.start
    base = cache.baseline.pop(pool, None)
    if base is None:
        base = totals_of(session, session.baseline, sl)
    cache.baseline[pool] = base  # most recently used last
    while len(cache.baseline) > BASELINE_SCOPES:
        cache.baseline.pop(next(k for k in cache.baseline if k is not None))
    cur = _current_totals(session, cache, pool)
    n_loc = len(session.location_ids)
    loc_ids = session.location_ids

    # Map lines: forwarding between locations, biggest first (either now or in the baseline).
    remote = cur.flows[:, 1:].copy()
    base_remote = base.flows[:, 1:].copy()
    np.fill_diagonal(remote, 0)
    np.fill_diagonal(base_remote, 0)
    both = np.maximum(remote, base_remote).ravel()
    nz = np.flatnonzero(both)
    order = nz[np.argsort(-both[nz], kind="stable")][:MAX_LINES]
    r, b = remote.ravel(), base_remote.ravel()
    lines = [[loc_ids[k // n_loc], loc_ids[k % n_loc], int(r[k]), int(b[k])] for k in order.tolist()]

    # Per location: rows entering, rows leaving from it, rows kept inside, rows that found no egress.
    ingress_rows = cur.flows.sum(axis=1)
    egress_rows = cur.flows[:, 1:].sum(axis=0)
    local_rows = np.diagonal(cur.flows[:, 1:])
    per_loc = {
        loc_ids[k]: [int(ingress_rows[k]), int(egress_rows[k]), int(local_rows[k]), int(cur.flows[k, 0])]
        for k in np.flatnonzero(ingress_rows + egress_rows).tolist()
    }

    # Busiest egress IPs (rows per IP: the load a placement puts on each address).
    top_ip = np.argsort(-cur.ip_rows, kind="stable")[:TOP_IPS]
    ips = [
        {
            "ip": session.ip_ids[i],
            "rows": int(cur.ip_rows[i]),
            "baseline_rows": int(base.ip_rows[i]),
            "share": int(cur.ip_rows[i]) / n if n else 0.0,
        }
        for i in top_ip.tolist()
        if cur.ip_rows[i] > 0
    ]

    transitions = [
        {"from": TIERS[a], "to": TIERS[b_], "rows": int(cur.transitions[a, b_])}
        for a, b_ in zip(*np.nonzero(cur.transitions[:5, :5]), strict=True)
        if a != b_
    ]
    transitions.sort(key=lambda x: -x["rows"])
    delta = (cur.flows - base.flows).ravel()
    nzd = np.flatnonzero(delta)
    top = nzd[np.argsort(-np.abs(delta[nzd]), kind="stable")][:TOP_CHANGES]
    flow_changes = [
        [loc_ids[k // (n_loc + 1)], loc_ids[k % (n_loc + 1) - 1] if k % (n_loc + 1) else None, int(delta[k])]
        for k in top.tolist()
    ]

    def tier_dict(c: np.ndarray) -> dict[str, int]:
        return {name: int(c[i]) for i, name in enumerate(TIERS)}

    def mean_distance(t: Totals) -> float | None:
        return round(t.distance_milli / 1000 / t.distance_rows, 3) if t.distance_rows else None

    fwd = int(cur.tiers[FORWARDED].sum())
    base_fwd = int(base.tiers[FORWARDED].sum())
    return {
        "version": session.version,
        "scope": {"pool": session.pool_ids[pool] if pool is not None else None, "rows": n},
        "tiers": tier_dict(cur.tiers),
        "baseline_tiers": tier_dict(base.tiers),
        "forwarded_rows": fwd,
        "forwarded_share": fwd / n if n else 0.0,
        "baseline_forwarded_share": base_fwd / n if n else 0.0,
        "distance_unit": session.compiled.distance_unit,
        "mean_added_distance": mean_distance(cur),
        "baseline_mean_added_distance": mean_distance(base),
        "added_distance_sum": cur.distance_milli / 1000,
        "lines": lines,
        "lines_rows_drawn": int(r[order].sum()),
        "lines_rows_total": int(remote.sum()),
        "locations": per_loc,
        "egress_ips": ips,
        "changed": {
            "rows_changed_egress": cur.changed,
            "rows_changed_location": cur.moved_location,
            "tier_transitions": transitions,
            "flow_changes": flow_changes,
        },
        "states_changed": int((session.states != session.base_states).sum()),
        "moves": [
            {
                "address": session.ip_ids[int(session.ip_start[m.pool_index]) + m.ip_position],
                "pool": session.pool_ids[m.pool_index],
                "before": list(m.before),
                "after": list(m.after),
                "locations": list(m.locations),
            }
            for m in session.moves
        ],
        "timings_ms": {k: round(v, 2) for k, v in session.timings.items()},
    }


__all__ = ["TIERS", "Totals", "summarize", "totals_of"]
