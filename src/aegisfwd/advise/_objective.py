"""What a placement is judged by: forwarded share, mean added distance or its p95, by requests or flows.

Every objective is a cost to minimise, written as a pair compared lexicographically: the chosen
metric first, a second one to break its ties (a move that leaves the p95 where it is but brings
traffic closer is still worth taking). Costs per row: a row's added distance (0 for LOCAL, SAME_DC
and SAME_LOCATION, the location distance for REMOTE) and, for UNAVAILABLE rows, ``unavailable_cost``
(twice the largest distance of the topology), so that serving a row at all always counts first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METRICS = ("forwarded", "mean", "p95")
WEIGHTS = ("requests", "flows")
P95 = 0.95


@dataclass(frozen=True)
class Objective:
    metric: str = "mean"
    weight: str = "requests"

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"objective must be one of {', '.join(METRICS)}, got {self.metric!r}")
        if self.weight not in WEIGHTS:
            raise ValueError(f"weight must be one of {', '.join(WEIGHTS)}, got {self.weight!r}")

    @property
    def submodular(self) -> bool:
        """Whether a move's gain can only shrink as other moves are made (lazy re-evaluation is exact)."""
        return self.metric != "p95"

    def value(self, weights: np.ndarray, local: np.ndarray, cost: np.ndarray) -> tuple[float, float]:
        """(primary, tie-break) cost of one placement: weights, LOCAL flags and costs per group."""
        forwarded = float(weights[~local].sum())
        total_cost = float(np.dot(weights, cost))
        if self.metric == "forwarded":
            return forwarded, total_cost
        if self.metric == "mean":
            return total_cost, forwarded
        return weighted_quantile(cost, weights, P95), total_cost


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The smallest value v such that rows with a value <= v weigh at least ``q`` of the total
    (the "inverted CDF" quantile of the rows, each group counted ``weight`` times)."""
    w = np.asarray(weights, dtype=np.float64)
    total = w.sum()
    if total <= 0:
        return 0.0
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(w[order])
    k = int(np.searchsorted(cum, q * total - 1e-9 * total, side="left"))
    return float(np.asarray(values)[order[min(k, order.shape[0] - 1)]])


def weighted_quantile_columns(values: np.ndarray, weights: np.ndarray, q: float) -> np.ndarray:
    """``weighted_quantile`` of every column of ``values`` (rows x columns) with per-row weights
    (one vector for all columns, or a matrix of the same shape)."""
    if values.shape[0] == 0:
        return np.zeros(values.shape[1])
    w = np.broadcast_to(np.asarray(weights, dtype=np.float64).reshape(values.shape[0], -1), values.shape)
    order = np.argsort(values, axis=0, kind="stable")
    v = np.take_along_axis(values, order, axis=0)
    cum = np.cumsum(np.take_along_axis(w, order, axis=0), axis=0)
    total = cum[-1]
    target = q * total - 1e-9 * total
    k = (cum < target[None, :]).sum(axis=0)
    k = np.minimum(k, values.shape[0] - 1)
    out = v[k, np.arange(values.shape[1])]
    return np.where(total > 0, out, 0.0)
