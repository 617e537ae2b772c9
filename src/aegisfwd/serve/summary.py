"""What the page shows for a scope (every row, or one pool's): tier mix, forwarding, distance, the
flows between locations, the busiest egress IPs, and what changed against the baseline.

Definitions follow ``aegisfwd evaluate``'s summary: *forwarded* rows egress from another server than
the ingress (SAME_DC, SAME_LOCATION, REMOTE); the mean added distance is over the rows that egress
somewhere (LOCAL and in-location tiers add 0). Everything is a handful of ``np.bincount`` passes over
the scope's rows, a few milliseconds per million rows.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._types import Tier
from .session import Decided, Session

TIERS: tuple[str, ...] = ("LOCAL", "SAME_DC", "SAME_LOCATION", "REMOTE", "UNAVAILABLE")
FORWARDED = (Tier.SAME_DC, Tier.SAME_LOCATION, Tier.REMOTE)
MAX_LINES = 400  # flows drawn on the map (the rest are summed in "other")
TOP_IPS = 10
TOP_CHANGES = 15


def _tier_counts(tier: np.ndarray) -> np.ndarray:
    # INVALID (255) cannot occur for loaded rows (they were checked at load); clip to be safe.
    return np.bincount(np.minimum(tier, 5), minlength=6)[:5]


def _flow_matrix(ingress_location: np.ndarray, d: Decided, sl: slice, n_loc: int) -> np.ndarray:
    """rows[i, j + 1]: rows entering at location i that egress at location j; column 0: nowhere."""
    key = ingress_location.astype(np.int64) * (n_loc + 1) + (d.location[sl].astype(np.int64) + 1)
    return np.bincount(key, minlength=n_loc * (n_loc + 1)).reshape(n_loc, n_loc + 1)


def _distance(d: Decided, sl: slice) -> tuple[float, int]:
    egress = d.ip[sl] >= 0
    dist = d.distance[sl]
    return float(dist[egress].sum()) if egress.any() else 0.0, int(egress.sum())


def _num(x: float) -> float | None:
    return None if math.isnan(x) or math.isinf(x) else round(x, 3)


def summarize(session: Session, pool: int | None = None) -> dict[str, Any]:
    """The summary of the current what-if for ``pool`` (``None``: every row). Call under ``session.lock``."""
    rows = session.rows
    sl = rows.pool_slice(pool) if pool is not None else slice(0, len(rows))
    cur, base = session.current, session.baseline
    n = sl.stop - sl.start
    n_loc = len(session.location_ids)
    loc_ids = session.location_ids

    tiers = _tier_counts(cur.tier[sl])
    base_tiers = _tier_counts(base.tier[sl])
    ing = rows.location[sl]
    flows = _flow_matrix(ing, cur, sl, n_loc)
    base_flows = _flow_matrix(ing, base, sl, n_loc) if cur is not base else flows
    dsum, drows = _distance(cur, sl)
    bsum, brows = _distance(base, sl)

    # Map lines: forwarding between locations, biggest first (either now or in the baseline).
    remote = flows[:, 1:].copy()
    base_remote = base_flows[:, 1:].copy()
    np.fill_diagonal(remote, 0)
    np.fill_diagonal(base_remote, 0)
    both = np.maximum(remote, base_remote)
    nz = np.flatnonzero(both)
    order = nz[np.argsort(-both.ravel()[nz], kind="stable")][:MAX_LINES]
    lines = [[loc_ids[k // n_loc], loc_ids[k % n_loc], int(remote.ravel()[k]), int(base_remote.ravel()[k])]
             for k in order.tolist()]
    drawn = int(remote.ravel()[order].sum())

    # Per location: rows entering, rows leaving from it, rows kept inside, rows that found no egress.
    ingress_rows = flows.sum(axis=1)
    egress_rows = flows[:, 1:].sum(axis=0)
    local_rows = np.diagonal(flows[:, 1:])
    unavailable = flows[:, 0]
    per_loc = {}
    for k in np.flatnonzero(ingress_rows + egress_rows).tolist():
        per_loc[loc_ids[k]] = [int(ingress_rows[k]), int(egress_rows[k]), int(local_rows[k]), int(unavailable[k])]

    # Busiest egress IPs (rows per IP: the load a placement puts on each address).
    n_ips = len(session.ip_ids)
    ip_rows = np.bincount(cur.ip[sl].astype(np.int64) + 1, minlength=n_ips + 1)[1:]
    base_ip_rows = np.bincount(base.ip[sl].astype(np.int64) + 1, minlength=n_ips + 1)[1:]
    top_ip = np.argsort(-ip_rows, kind="stable")[:TOP_IPS]
    ips = [{"ip": session.ip_ids[i], "rows": int(ip_rows[i]), "baseline_rows": int(base_ip_rows[i]),
            "share": ip_rows[i] / n if n else 0.0} for i in top_ip.tolist() if ip_rows[i] > 0]

    # Against the baseline: rows whose egress (server or address) changed, tier transitions, and the
    # location flows that grew or shrank most.
    if cur is base:
        changed = moved_location = 0
        transitions: list[dict[str, Any]] = []
        flow_changes: list[list[Any]] = []
    else:
        ch = (cur.server[sl] != base.server[sl]) | (cur.ip[sl] != base.ip[sl])
        changed = int(ch.sum())
        moved_location = int((cur.location[sl] != base.location[sl]).sum())
        t = np.bincount(np.minimum(base.tier[sl][ch], 5).astype(np.int64) * 6 + np.minimum(cur.tier[sl][ch], 5),
                        minlength=36).reshape(6, 6)
        transitions = [{"from": TIERS[a], "to": TIERS[b], "rows": int(t[a, b])}
                       for a, b in zip(*np.nonzero(t[:5, :5])) if a != b]
        transitions.sort(key=lambda x: -x["rows"])
        delta = flows - base_flows
        nzd = np.flatnonzero(delta)
        top = nzd[np.argsort(-np.abs(delta.ravel()[nzd]), kind="stable")][:TOP_CHANGES]
        flow_changes = [[loc_ids[k // (n_loc + 1)], loc_ids[k % (n_loc + 1) - 1] if k % (n_loc + 1) else None,
                         int(delta.ravel()[k])] for k in top.tolist()]

    def tier_dict(c: np.ndarray) -> dict[str, int]:
        return {name: int(c[i]) for i, name in enumerate(TIERS)}

    fwd = int(tiers[[int(t) for t in FORWARDED]].sum())
    base_fwd = int(base_tiers[[int(t) for t in FORWARDED]].sum())
    return {
        "version": session.version,
        "scope": {"pool": session.pool_ids[pool] if pool is not None else None, "rows": n},
        "tiers": tier_dict(tiers),
        "baseline_tiers": tier_dict(base_tiers),
        "forwarded_rows": fwd,
        "forwarded_share": fwd / n if n else 0.0,
        "baseline_forwarded_share": base_fwd / n if n else 0.0,
        "distance_unit": session.compiled.distance_unit,
        "mean_added_distance": _num(dsum / drows) if drows else None,
        "baseline_mean_added_distance": _num(bsum / brows) if brows else None,
        "added_distance_sum": _num(dsum),
        "lines": lines,
        "lines_rows_drawn": drawn,
        "lines_rows_total": int(remote.sum()),
        "locations": per_loc,
        "egress_ips": ips,
        "changed": {
            "rows_changed_egress": changed,
            "rows_changed_location": moved_location,
            "tier_transitions": transitions,
            "flow_changes": flow_changes,
        },
        "states_changed": len(session.changed_states()),
        "moves": [{"address": session.ip_ids[int(session.ip_start[m.pool_index]) + m.ip_position],
                   "pool": session.pool_ids[m.pool_index], "before": list(m.before), "after": list(m.after),
                   "locations": list(m.locations)} for m in session.moves],
        "timings_ms": {k: round(v, 2) for k, v in session.timings.items()},
    }
