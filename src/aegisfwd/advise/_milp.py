"""The exact optimum of a small scope with a MILP (scipy.optimize.milp, which runs HiGHS).

For one pool: choose at most ``steps`` locations to add (each "add" or "extend" exactly as the
greedy would make it), at most ``slots`` of them new locations for an address (the free places
under the four-location limit, four per new address allowed), minimising the objective's primary
cost. Mean added distance is the uncapacitated facility-location / p-median form: every class of
far traffic (its ingress location) is served by its current answer or by one chosen location, and
only by a chosen one; forwarded share is additive over locations. The p95 has no such linear form
here and is not solved exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._objective import Objective
from ._placement import REMOTE, Decided, PoolGroups, PoolState

# Largest model solved when asked (variables), and when not asked (``exact=None``: small scopes only).
MAX_VARIABLES = 200_000
AUTO_MAX_VARIABLES = 5_000


@dataclass
class Optimum:
    value: float  # the primary cost at the optimum
    locations: list[int]
    variables: int
    status: str


def optimum(
    state: PoolState,
    groups: PoolGroups,
    decided: Decided,
    objective: Objective,
    steps: int,
    slots: int,
    *,
    max_variables: int = MAX_VARIABLES,
    time_limit_s: float = 30.0,
) -> Optimum | None:
    """The optimal primary cost after at most ``steps`` location additions (``None``: p95, or too large)."""
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_array

    if objective.metric == "p95":
        return None
    lay = state.layout
    w = groups.weight
    cands = np.flatnonzero(lay.location_up > 0)
    uses_slot = np.array([state.address_at(int(c)) is None for c in cands], dtype=bool)
    far = decided.tier >= REMOTE
    far_loc, inv = np.unique(groups.location[far], return_inverse=True)
    wf = np.bincount(inv, weights=w[far], minlength=far_loc.shape[0])
    cf = np.zeros(far_loc.shape[0])
    cf[inv] = decided.cost[far]
    near = (~decided.local) & groups.up
    near_gain = np.zeros(len(lay.location_ids))
    np.add.at(near_gain, groups.location[near], w[near])
    base_forwarded = float(w[~decided.local].sum())
    base_total = float(np.dot(w, decided.cost))

    if objective.metric == "forwarded":
        n_y = cands.shape[0]
        c = -near_gain[cands]
        rows = [np.ones(n_y), uses_slot.astype(float)]
        a = np.vstack(rows)
        res = milp(
            c,
            integrality=np.ones(n_y),
            bounds=Bounds(0, 1),
            constraints=[LinearConstraint(a, -np.inf, [steps, slots])],
            options={"time_limit": time_limit_s},
        )
        if res.x is None:
            return Optimum(float("nan"), [], n_y, res.message)
        chosen = cands[res.x > 0.5].tolist()
        return Optimum(
            base_forwarded + float(res.fun), chosen, n_y, "optimal" if res.status == 0 else res.message
        )

    # Mean added distance: y_L (choose L) and x_(class, L) (class served by L) for the pairs where
    # L would serve the class better than it is served now.
    cost = np.minimum(cf[:, None], lay.remote[np.ix_(far_loc, cands)])
    cost[far_loc[:, None] == cands[None, :]] = 0.0
    ci, lj = np.nonzero(cost < cf[:, None])
    n_y, n_x = cands.shape[0], ci.shape[0]
    if n_y + n_x > max_variables:
        return None
    # Minimise sum of weight x (cost with L - current cost) over chosen assignments.
    c = np.concatenate([np.zeros(n_y), wf[ci] * (cost[ci, lj] - cf[ci])])
    n = n_y + n_x
    k = np.arange(n_x)
    # each class served by at most one added location: sum_L x_(c,L) <= 1
    a1 = coo_array((np.ones(n_x), (ci, n_y + k)), shape=(far_loc.shape[0], n))
    # x_(c,L) <= y_L
    a2 = coo_array(
        (
            np.concatenate([np.ones(n_x), -np.ones(n_x)]),
            (np.concatenate([k, k]), np.concatenate([n_y + k, lj])),
        ),
        shape=(n_x, n),
    )
    a3 = coo_array(
        (
            np.concatenate([np.ones(n_y), uses_slot.astype(float)]),
            (np.concatenate([np.zeros(n_y, int), np.ones(n_y, int)]), np.concatenate([np.arange(n_y)] * 2)),
        ),
        shape=(2, n),
    )
    constraints = [
        LinearConstraint(a1.tocsr(), -np.inf, 1),
        LinearConstraint(a2.tocsr(), -np.inf, 0),
        LinearConstraint(a3.tocsr(), -np.inf, [steps, slots]),
    ]
    integrality = np.concatenate([np.ones(n_y), np.zeros(n_x)])
    res = milp(
        c,
        integrality=integrality,
        bounds=Bounds(0, 1),
        constraints=constraints,
        options={"time_limit": time_limit_s},
    )
    if res.x is None:
        return Optimum(float("nan"), [], n, res.message)
    chosen = cands[res.x[:n_y] > 0.5].tolist()
    return Optimum(base_total + float(res.fun), chosen, n, "optimal" if res.status == 0 else res.message)
