"""Greedy placement with lazy re-evaluation (the classic p-median "add" heuristic, CELF style).

Each step takes the move with the largest gain of the objective. For the submodular objectives
(forwarded share, mean added distance: a location's gain can only shrink as other locations are
added) the gains of the previous steps are upper bounds: only the top of a max-heap is re-evaluated
until one stays on top (Minoux's accelerated greedy; Leskovec et al.'s CELF). The p95 is not
submodular, so every candidate is re-evaluated at every step. When every address of the pool is at
the four-location limit and no new address may be added, a step also weighs swaps: one location of
an address given up for another.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._layout import MAX_LOCATIONS_PER_IPV4, Address
from ._moves import Move
from ._objective import Objective
from ._placement import PoolGroups, PoolState

Value = tuple[float, float]


def gain_of(before: Value, after: Value) -> Value:
    return (before[0] - after[0], before[1] - after[1])


def positive(gain: Value, scale: Value) -> bool:
    """Strictly better, lexicographically, beyond floating-point noise of sums of ``scale``."""
    t0 = 1e-9 * (1.0 + abs(scale[0]))
    t1 = 1e-9 * (1.0 + abs(scale[1]))
    if gain[0] > t0:
        return True
    return abs(gain[0]) <= t0 and gain[1] > t1


def better(a: Value, b: Value, scale: Value) -> bool:
    return positive(gain_of(b, a), scale)


@dataclass
class Step:
    move: Move
    value_before: Value
    value_after: Value  # predicted on the aggregated counts


@dataclass
class _Option:
    value: Value
    location: int
    swap: tuple[int, int] | None = None  # (address, location given up)


def greedy(
    state: PoolState,
    groups: PoolGroups,
    objective: Objective,
    steps: int,
    *,
    pool_id: str,
    new_addresses: int,
    next_address: Callable[[], str],
    holder_location: dict[str, int],
    lazy: bool = True,
) -> list[Step]:
    """Up to ``steps`` moves for one pool, best first; stops when no move improves the objective."""
    lay = state.layout
    candidates = np.flatnonzero(lay.location_up > 0)
    out: list[Step] = []
    budget = new_addresses
    heap: list[_Entry] = []  # (-gain0, -gain1, location, step of evaluation, value)
    decided = state.decide(groups)
    value = objective.value(groups.weight, decided.local, decided.cost)
    use_lazy = lazy and objective.submodular
    for step in range(steps):
        has_room = budget > 0 or any(len(a.locations(lay)) < MAX_LOCATIONS_PER_IPV4 for a in state.addresses)
        best: _Option | None = None
        if has_room and use_lazy:
            if not heap:  # first step (or after a fallback): evaluate every candidate once
                v0, v1 = state.candidate_arrays(groups, decided, objective, candidates)
                g0, g1 = value[0] - v0, value[1] - v1
                t0, t1 = 1e-9 * (1.0 + abs(value[0])), 1e-9 * (1.0 + abs(value[1]))
                keep = np.flatnonzero((g0 > t0) | ((np.abs(g0) <= t0) & (g1 > t1)))  # positive(), vectorised
                heap = [
                    (-a, -b, loc, step, (c, d))
                    for a, b, loc, c, d in zip(
                        g0[keep].tolist(),
                        g1[keep].tolist(),
                        candidates[keep].tolist(),
                        v0[keep].tolist(),
                        v1[keep].tolist(),
                        strict=False,
                    )
                ]
                heapq.heapify(heap)
            best = _lazy_pop(heap, state, groups, decided, objective, value, step)
        else:
            heap = []
            usable = (
                candidates
                if has_room
                else np.array(
                    [c for c in candidates.tolist() if state.address_at(c) is not None], dtype=np.int64
                )
            )
            vals = state.candidate_values(groups, decided, objective, usable)
            for loc, v in zip(usable.tolist(), vals, strict=True):
                if best is None or better(v, best.value, value):
                    best = _Option(v, loc)
            if not has_room:
                swap = _best_swap(state, groups, objective, candidates, holder_location)
                if swap is not None and (best is None or better(swap.value, best.value, value)):
                    best = swap
        if best is None or not positive(gain_of(value, best.value), value):
            break
        move, budget = _make_move(state, groups, best, pool_id, budget, next_address, holder_location)
        if move is None:
            break
        out.append(Step(move, value, best.value))
        decided = state.decide(groups)
        value = objective.value(groups.weight, decided.local, decided.cost)
        if not use_lazy:
            heap = []
    return out


_Entry = tuple[float, float, int, int, Value]
# Stale entries re-evaluated together (one vectorised call); after this many in one step, all of them.
_CHUNK = 16


def _entry(value: Value, v: Value, loc: int, step: int) -> _Entry:
    g = gain_of(value, v)
    return (-g[0], -g[1], loc, step, v)


def _lazy_pop(
    heap: list[_Entry],
    state: PoolState,
    groups: PoolGroups,
    decided: Any,
    objective: Objective,
    value: Value,
    step: int,
) -> _Option | None:
    """The best candidate of this step: re-evaluate stale heap tops (bounds from earlier steps) until
    a freshly evaluated one is on top. Stale tops are taken a chunk at a time, and all at once when
    many are stale (ties make CELF pop long runs), so the cost stays a few vectorised calls. A
    candidate without a positive gain is dropped: under submodularity it never gains again."""
    first = True
    while heap:
        top = heap[0]
        if top[3] == step:
            return _Option(top[4], top[2])
        if first:  # a chunk of stale tops
            batch: list[int] = []
            while heap and heap[0][3] != step and len(batch) < _CHUNK:
                batch.append(heapq.heappop(heap)[2])
            first = False
        else:  # still stale: every remaining candidate at once, and a fresh heap
            batch = [e[2] for e in heap]
            heap.clear()
        locs = np.array(batch, dtype=np.int64)
        v0, v1 = state.candidate_arrays(groups, decided, objective, locs)
        g0, g1 = value[0] - v0, value[1] - v1
        t0, t1 = 1e-9 * (1.0 + abs(value[0])), 1e-9 * (1.0 + abs(value[1]))
        keep = np.flatnonzero((g0 > t0) | ((np.abs(g0) <= t0) & (g1 > t1)))  # positive(), vectorised
        for a, b, loc, c, d in zip(
            g0[keep].tolist(),
            g1[keep].tolist(),
            locs[keep].tolist(),
            v0[keep].tolist(),
            v1[keep].tolist(),
            strict=False,
        ):
            heap.append((-a, -b, loc, step, (c, d)))
        heapq.heapify(heap)
    return None


def _best_swap(
    state: PoolState,
    groups: PoolGroups,
    objective: Objective,
    candidates: np.ndarray,
    holder_location: dict[str, int],
) -> _Option | None:
    lay = state.layout
    best: _Option | None = None
    base = state.decide(groups)
    scale = objective.value(groups.weight, base.local, base.cost)
    for k, a in enumerate(state.addresses):
        locs = a.locations(lay)
        for m in sorted(locs):
            trial = state.copy()
            trial.remove(k, m, holder_location)
            d = trial.decide(groups)
            usable = np.array([c for c in candidates.tolist() if c not in locs], dtype=np.int64)
            vals = trial.candidate_values(groups, d, objective, usable)
            for loc, v in zip(usable.tolist(), vals, strict=True):
                if best is None or better(v, best.value, scale):
                    best = _Option(v, loc, (k, m))
    return best


def _make_move(
    state: PoolState,
    groups: PoolGroups,
    opt: _Option,
    pool_id: str,
    budget: int,
    next_address: Callable[[], str],
    holder_location: dict[str, int],
) -> tuple[Move | None, int]:
    lay = state.layout
    loc = opt.location
    dcs = state.move_dcs(groups, loc)
    if not dcs:
        return None, budget
    all_dcs = list(lay.location_dcs(loc))
    names = (lay.location_ids[loc],) if sorted(dcs) == all_dcs else tuple(lay.dc_ids[d] for d in dcs)
    if opt.swap is not None:
        k, m = opt.swap
        addr = state.addresses[k].address
        state.remove(k, m, holder_location)
        state.add(k, loc, dcs)
        return Move("swap", pool_id, addr, lay.location_ids[loc], names, lay.location_ids[m]), budget
    held = state.address_at(loc)
    if held is not None:
        state.add(held, loc, dcs)
        return Move("extend", pool_id, state.addresses[held].address, lay.location_ids[loc], names), budget
    room = [
        (len(a.locations(lay)), i)
        for i, a in enumerate(state.addresses)
        if len(a.locations(lay)) < MAX_LOCATIONS_PER_IPV4
    ]
    if room:
        k = min(room)[1]
        state.add(k, loc, dcs)
        return Move("add", pool_id, state.addresses[k].address, lay.location_ids[loc], names), budget
    text = next_address()
    state.addresses.append(Address(text, np.empty(0, np.int64), (), new=True))
    state.add(len(state.addresses) - 1, loc, dcs)
    return Move("new-address", pool_id, text, lay.location_ids[loc], names), budget - 1
