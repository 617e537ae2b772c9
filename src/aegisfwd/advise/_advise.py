"""``af.advise``: read a log once, find the best placement moves per pool, and hold every advised
figure to the compiled engine."""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import AegisError
from ..evaluation._summary import CONNECTION_LIMIT
from ..topology import Pool, Topology
from ._aggregate import Counts, aggregate
from ._exact import GroupOutcome, ScopeEngine
from ._greedy import Step, greedy
from ._layout import MAX_LOCATIONS_PER_IPV4, Layout
from ._milp import AUTO_MAX_VARIABLES, MAX_VARIABLES, optimum
from ._moves import Move, _like, apply_moves, holder_locations, only_pools, write_topology
from ._objective import P95, Objective, weighted_quantile
from ._placement import PoolGroups, PoolState

TIERS = ("LOCAL", "SAME_DC", "SAME_LOCATION", "REMOTE", "UNAVAILABLE")
# Placeholder addresses for "new-address" moves when none are given: the documentation ranges
# (RFC 5737), then the reserved 240.0.0.0/4 (RFC 1112 "future use"): never routable, so a patch
# written with them cannot be deployed by mistake.
_PLACEHOLDER_NETS = ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "240.0.0.0/4")


class AdviceError(AegisError, ValueError):
    """Advice asked for something the inputs cannot give (a compiled file, an unknown zone...)."""


@dataclass
class PoolFigures:
    """What a pool's decided rows look like under one placement (all families)."""

    rows: int
    tiers: dict[str, int]
    distance_rows: int  # rows with an egress
    distance_sum: float
    mean_distance: float
    p95_distance: float
    peak: int = 0  # largest concurrency over (egress IP, origin IP:port) of the pool
    peak_key: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "tiers": self.tiers,
            "distance_rows": self.distance_rows,
            "distance_sum": self.distance_sum,
            "mean_distance": self.mean_distance,
            "p95_distance": self.p95_distance,
            "peak_concurrency": self.peak,
            "peak_key": self.peak_key,
        }


@dataclass
class AdvisedMove:
    rank: int
    pool: str
    step: int
    move: Move
    before: PoolFigures
    after: PoolFigures
    gain: tuple[float, float]

    def tier_delta(self) -> dict[str, int]:
        return {t: self.after.tiers.get(t, 0) - self.before.tiers.get(t, 0) for t in TIERS}

    def share_delta(self) -> dict[str, float]:
        n = max(self.before.rows, 1)
        return {t: d / n for t, d in self.tier_delta().items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "pool": self.pool,
            "step": self.step,
            "move": self.move.to_dict(),
            "description": self.move.describe(),
            "tier_delta_rows": self.tier_delta(),
            "tier_delta_share": self.share_delta(),
            "distance_sum_delta": self.after.distance_sum - self.before.distance_sum,
            "mean_distance_delta": _nan_none(self.after.mean_distance - self.before.mean_distance),
            "p95_distance_delta": _nan_none(self.after.p95_distance - self.before.p95_distance),
            "peak_concurrency_after": self.after.peak,
            "peak_key_after": self.after.peak_key,
            "peak_share_of_limit_after": self.after.peak / CONNECTION_LIMIT,
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
        }


@dataclass
class UnusedHolder:
    pool: str
    address: str
    location: str

    def to_dict(self) -> dict[str, str]:
        return {"pool": self.pool, "address": self.address, "location": self.location}


@dataclass
class ConcurrencyAdvice:
    pool: str
    egress_ip: str
    origin: str
    peak: int
    addresses_needed: int  # in total, sharing the load evenly, to stay under the threshold
    locations: list[str]  # where this address's connections to this origin egress

    def to_dict(self) -> dict[str, Any]:
        return {
            "pool": self.pool,
            "egress_ip": self.egress_ip,
            "origin": self.origin,
            "peak": self.peak,
            "share_of_limit": self.peak / CONNECTION_LIMIT,
            "addresses_needed": self.addresses_needed,
            "additional_addresses": max(self.addresses_needed - 1, 0),
            "locations": self.locations,
            "within_location_limit": len(self.locations) <= MAX_LOCATIONS_PER_IPV4,
        }


@dataclass
class GreedyGap:
    pool: str
    greedy_value: float
    optimal_value: float
    base_value: float
    optimal_locations: list[str]
    status: str

    @property
    def gap(self) -> float:
        """(greedy - optimum) / optimum of the primary cost (0: the greedy is optimal)."""
        if self.optimal_value == 0:
            return 0.0 if abs(self.greedy_value) < 1e-9 else math.inf
        return (self.greedy_value - self.optimal_value) / abs(self.optimal_value)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pool": self.pool,
            "greedy_value": self.greedy_value,
            "optimal_value": self.optimal_value,
            "base_value": self.base_value,
            "gap": self.gap,
            "optimal_locations": self.optimal_locations,
            "status": self.status,
        }


@dataclass
class Advice:
    """The result of ``advise``: ranked moves, holders that served nothing, concurrency advice."""

    moves: list[AdvisedMove]
    base: dict[str, PoolFigures]
    unused_holders: list[UnusedHolder]
    concurrency: list[ConcurrencyAdvice]
    gaps: list[GreedyGap]
    objective: Objective
    topology: Topology
    counts: Counts
    distance_unit: str
    elapsed_s: float
    timings: dict[str, float] = field(default_factory=dict)

    def patched(self, top: int | None = None) -> Topology:
        """The topology with the advised moves applied (the first ``top`` by rank, each pool's
        earlier steps included)."""
        return apply_moves(self.topology, self.moves_to_apply(top))

    def moves_to_apply(self, top: int | None = None) -> list[Move]:
        chosen = self.moves if top is None else self.moves[:top]
        # A pool's step k builds on its steps before k: apply in step order.
        return [m.move for m in sorted(chosen, key=lambda m: (m.pool, m.step))]

    def write_patch(self, path: str | Path, top: int | None = None) -> Path:
        write_topology(self.patched(top), path)
        return Path(path)

    def to_dict(self) -> dict[str, Any]:
        c = self.counts
        return {
            "objective": {"metric": self.objective.metric, "weight": self.objective.weight},
            "distance_unit": self.distance_unit,
            "rows_in": c.rows_in,
            "rows_decided": c.rows_decided,
            "rows_rejected": c.rows_rejected,
            "rows_out_of_scope": c.rows_out_of_scope,
            "input_errors": c.input_errors,
            "moves": [m.to_dict() for m in self.moves],
            "pools": {p: f.to_dict() for p, f in self.base.items()},
            "unused_holders": [u.to_dict() for u in self.unused_holders],
            "concurrency": [a.to_dict() for a in self.concurrency],
            "greedy_vs_optimum": [g.to_dict() for g in self.gaps],
            "elapsed_s": round(self.elapsed_s, 3),
            "timings_s": {k: round(v, 3) for k, v in self.timings.items()},
        }

    def print(self, console: Any = None, *, top: int = 20) -> None:
        from ._output import print_advice

        print_advice(self, console, top=top)

    def __repr__(self) -> str:
        return f"Advice({len(self.moves)} moves over {len(self.base)} pools; {self.elapsed_s:.2f} s)"


def _nan_none(x: float) -> float | None:
    return None if isinstance(x, float) and math.isnan(x) else x


def _as_topology(topology: Any) -> Topology:
    if isinstance(topology, Topology):
        return topology
    topo = getattr(topology, "topology", None)
    if isinstance(topo, Topology):
        return topo
    if isinstance(topology, (str, Path)):
        from ..compiled import MAGIC

        p = Path(topology)
        with open(p, "rb") as f:
            if f.read(len(MAGIC)) == MAGIC:
                raise AdviceError(
                    f"{p}: advice needs the topology file (YAML/JSON/TOML), not a compiled "
                    "file: a compiled file does not keep the holder lists a patch rewrites"
                )
        from .._loader import load_topology

        return load_topology(p)
    raise AdviceError(f"advice needs a Topology or a topology file, got {type(topology).__name__}")


def scope_pools(topology: Topology, pools: Iterable[str] | None, zones: Iterable[str] | None) -> list[str]:
    """Pool ids in scope: the given pools and the pools of the given zones; by default every pool
    with an IPv4 address."""
    known = {p.id for p in topology.pools}
    out: list[str] = []
    for p in pools or ():
        if p not in known:
            raise AdviceError(f"unknown pool {p!r}")
        out.append(p)
    for z in zones or ():
        if z not in topology.zones:
            raise AdviceError(f"unknown zone {z!r} (not in the topology's zones)")
        out.append(topology.zones[z])
    if pools is None and zones is None:
        out = [p.id for p in topology.pools if any(ip.family == 4 for ip in p.ips)]
    return list(dict.fromkeys(out))


def _scoped(topology: Topology, scope: set[str]) -> Topology:
    """Every pool and zone kept (so the log resolves as under the full topology) but only the pools
    in scope keep their addresses: compiles much faster than the whole world."""
    return _like(
        topology, tuple(p if p.id in scope else Pool(p.id, ()) for p in topology.pools), dict(topology.zones)
    )


def _placeholders(topology: Topology, given: Iterable[str] | None) -> Any:
    used_cache: list[set[str]] = []

    def used_addresses() -> set[str]:  # every address of the topology, built on first need
        if not used_cache:
            used_cache.append({ip.address for p in topology.pools for ip in p.ips})
        return used_cache[0]

    if given is not None:
        used = used_addresses()
        pool = []
        for a in given:
            try:
                net = ipaddress.IPv4Address(a)
            except ValueError:
                raise AdviceError(f"new address {a!r} is not an IPv4 address") from None
            if str(net) in used:
                raise AdviceError(f"new address {a} is already in the topology")
            pool.append(str(net))
        it = iter(pool)

        def next_given() -> str:
            try:
                return next(it)
            except StopIteration:  # pragma: no cover - the budget is the number given
                raise AdviceError("more new addresses were needed than given") from None

        return next_given, len(pool)

    def gen() -> Iterable[str]:
        for net in _PLACEHOLDER_NETS:
            for h in ipaddress.IPv4Network(net).hosts():
                if str(h) not in used_addresses():
                    yield str(h)

    g = iter(gen())

    def next_placeholder() -> str:
        try:
            return next(g)
        except StopIteration:  # pragma: no cover - 2^28 placeholders
            raise AdviceError("no placeholder address left: give addresses") from None

    return next_placeholder, None


def figures(counts: Counts, out: GroupOutcome, rows_index: np.ndarray) -> PoolFigures:
    """Tier counts and distances of the groups ``rows_index`` (positions into ``out.index``)."""
    tier = out.tier[rows_index]
    rows = counts.rows[out.index[rows_index]]
    dist = out.distance[rows_index]
    tiers = {t: int(rows[tier == k].sum()) for k, t in enumerate(TIERS)}
    has = tier < 4
    n = int(rows[has].sum())
    s = float(np.dot(rows[has], dist[has]))
    return PoolFigures(
        int(rows.sum()),
        tiers,
        n,
        s,
        s / n if n else math.nan,
        weighted_quantile(dist[has], rows[has], P95) if n else math.nan,
    )


def advise(
    source: Any,
    topology: Any,
    *,
    pools: Iterable[str] | None = None,
    zones: Iterable[str] | None = None,
    steps: int = 3,
    objective: str = "mean",
    weight: str = "requests",
    new_addresses: int = 1,
    addresses: Iterable[str] | None = None,
    exact: bool | None = None,
    concurrency: bool = True,
    threshold: float = 0.8,
    columns: Mapping[str, str | None] | None = None,
    batch_rows: int | None = None,
    threads: int | None = None,
    counts: Counts | None = None,
) -> Advice:
    """Placement advice for the IPv4 addresses of ``pools`` / ``zones`` (default: every pool with one),
    from the log ``source`` (read like ``af.evaluate``).

    Per pool, up to ``steps`` moves (add a location to an address, extend one where it is held, a new
    address, or a swap at the four-location limit), chosen greedily for ``objective`` (``"forwarded"``,
    ``"mean"`` or ``"p95"``) weighted by ``weight`` (``"requests"`` or ``"flows"``). ``new_addresses``
    new addresses may be proposed per pool; ``addresses`` gives them (else documentation-range
    placeholders). ``exact``: also solve the optimum with a MILP (default: when the scope is one pool).
    ``concurrency`` keeps the timed rows to give the peak per (egress IP, origin) after every move and
    to advise addresses where a peak is above ``threshold`` of the 40,000 limit.
    """
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    if steps < 0:
        raise AdviceError("steps must be >= 0")
    if not 0 < threshold <= 1:
        raise AdviceError("threshold must be in (0, 1]")
    obj = Objective(objective, weight)
    topo = _as_topology(topology)
    topo = _like(topo, topo.pools, dict(topo.zones))  # distances computed once for every patched copy
    scope = scope_pools(topo, pools, zones)
    scope_set = set(scope)
    scoped = _scoped(topo, scope_set)
    if counts is None:
        kw: dict[str, Any] = {} if batch_rows is None else {"batch_rows": batch_rows}
        counts = aggregate(
            source,
            scoped,
            pools=scope,
            columns=columns,
            count_flows=(weight == "flows"),
            connections=concurrency,
            threads=threads,
            **kw,
        )
    timings["read"] = time.perf_counter() - t0

    t = time.perf_counter()
    reduced = only_pools(topo, scope_set)  # moves are applied to this small copy
    base_engine = ScopeEngine(reduced, None, counts.server_ids)
    layout = Layout(base_engine.engine.compiled)
    pool_of = np.array(counts.pool_ids, dtype=object)
    in_scope = np.array([p in scope_set for p in counts.pool_ids], dtype=bool)
    sel = np.flatnonzero(in_scope[counts.pool]) if len(counts) else np.empty(0, np.int64)
    base_out = base_engine.decide_groups(counts, sel)
    timings["base"] = time.perf_counter() - t

    # Which groups belong to which pool (positions into base_out).
    group_pool = pool_of[counts.pool[sel]] if sel.shape[0] else np.empty(0, dtype=object)
    by_pool: dict[str, np.ndarray] = {}
    if sel.shape[0]:
        order = np.argsort(counts.pool[sel], kind="stable")
        pcodes = counts.pool[sel][order]
        cuts = np.flatnonzero(np.diff(pcodes)) + 1
        for part in np.split(order, cuts):
            by_pool[str(group_pool[part[0]])] = part
    base = {p: figures(counts, base_out, by_pool[p]) for p in scope if p in by_pool}

    t = time.perf_counter()
    holder_names = {ip.address: ip.holders for p in topo.pools if p.id in scope_set for ip in p.ips}
    loc_index = {lid: k for k, lid in enumerate(layout.location_ids)}
    holder_loc = {k: loc_index[v] for k, v in holder_locations(topo).items()}
    next_address, given = _placeholders(topo, addresses)
    budget = new_addresses if given is None else min(new_addresses, given)
    weights = counts.weights(weight)
    plans: dict[str, list[Step]] = {}
    states: dict[str, tuple[PoolState, PoolGroups]] = {}
    for p in scope:
        if p not in by_pool:
            continue
        idx = base_out.index[by_pool[p]]
        v4 = idx[counts.family[idx] == 4]
        if v4.shape[0] == 0:
            continue
        pidx = layout.pool_index[p]
        groups = PoolGroups.select(layout, counts.server[v4], weights[v4], counts.rows[v4], v4)
        state = PoolState(layout, layout.ipv4_addresses(pidx, holder_names))
        states[p] = (state.copy(), groups)
        plan = greedy(
            state,
            groups,
            obj,
            steps,
            pool_id=p,
            new_addresses=budget,
            next_address=next_address,
            holder_location=holder_loc,
        )
        if plan:
            plans[p] = plan
    timings["greedy"] = time.perf_counter() - t

    # Every step re-decided by the compiled engine: step k of every pool in one patched topology.
    t = time.perf_counter()
    conns = counts.connections if concurrency else None
    ip_pool = {ip.address: p.id for p in topo.pools if p.id in scope_set for ip in p.ips}
    for plan in plans.values():
        for s in plan:
            ip_pool.setdefault(s.move.address, s.move.pool)
    peaks_by_step: dict[int, dict[str, tuple[int, str]]] = {}
    base_peaks: list[dict[str, Any]] = []
    conc_advice: list[ConcurrencyAdvice] = []
    if conns is not None and len(conns):
        conc = base_engine.peaks(counts, conns)
        base_peaks = conc.peaks()
        peaks_by_step[0] = _pool_peaks(base_peaks, ip_pool)
        conc_advice = _concurrency_advice(base_engine, counts, conns, base_peaks, ip_pool, threshold)
    for p, f in base.items():
        f.peak, f.peak_key = peaks_by_step.get(0, {}).get(p, (0, ""))

    advised: list[AdvisedMove] = []
    max_steps = max((len(v) for v in plans.values()), default=0)
    previous = {p: base[p] for p in plans}
    for k in range(1, max_steps + 1):
        moves = [s.move for plan in plans.values() for s in plan[:k]]
        pools_k = [p for p, plan in plans.items() if len(plan) >= k]
        eng = ScopeEngine(apply_moves(reduced, moves), None, counts.server_ids)
        parts = np.concatenate([by_pool[p] for p in pools_k])
        out_k = eng.decide_groups(counts, base_out.index[parts])
        peaks_k: dict[str, tuple[int, str]] = {}
        if conns is not None and len(conns):
            select = np.zeros(len(counts), dtype=bool)
            select[base_out.index[parts]] = True
            peaks_k = _pool_peaks(eng.peaks(counts, conns, select).peaks(), ip_pool)
        offset = 0
        for p in pools_k:
            n = by_pool[p].shape[0]
            fig = figures(counts, out_k, np.arange(offset, offset + n))
            offset += n
            fig.peak, fig.peak_key = peaks_k.get(p, (0, ""))
            step = plans[p][k - 1]
            _check_prediction(p, k, step, out_k, np.arange(offset - n, offset), counts, weights, layout, obj)
            advised.append(
                AdvisedMove(
                    0,
                    p,
                    k,
                    step.move,
                    previous[p],
                    fig,
                    (step.value_before[0] - step.value_after[0], step.value_before[1] - step.value_after[1]),
                )
            )
            previous[p] = fig
    timings["exact"] = time.perf_counter() - t

    # Rank: by gain, a pool's later steps never before its earlier ones.
    key: dict[tuple[str, int], tuple[float, float]] = {}
    for m in sorted(advised, key=lambda m: (m.pool, m.step)):
        prev = key.get((m.pool, m.step - 1))
        key[(m.pool, m.step)] = m.gain if prev is None else min(prev, m.gain)
    advised.sort(key=lambda m: (-key[(m.pool, m.step)][0], -key[(m.pool, m.step)][1], m.pool, m.step))
    for r, m in enumerate(advised, 1):
        m.rank = r

    t = time.perf_counter()
    gaps: list[GreedyGap] = []
    limit = MAX_VARIABLES if exact else AUTO_MAX_VARIABLES
    if exact is None:
        exact = len(scope) == 1
    if exact and obj.metric != "p95":
        for p, (state, groups) in states.items():
            gap = _gap(p, state, groups, obj, steps, budget, plans.get(p, []), limit)
            if gap is not None:
                gaps.append(gap)
    timings["milp"] = time.perf_counter() - t

    unused = _unused_holders(topo, scope_set, counts, layout)
    return Advice(
        advised,
        base,
        unused,
        conc_advice,
        gaps,
        obj,
        topo,
        counts,
        layout.distance_unit,
        time.perf_counter() - t0,
        timings,
    )


def _check_prediction(
    pool: str,
    k: int,
    step: Step,
    out: GroupOutcome,
    rows_index: np.ndarray,
    counts: Counts,
    weights: np.ndarray,
    layout: Layout,
    obj: Objective,
) -> None:
    """The greedy's predicted value must be what the compiled engine decides (else a bug here)."""
    idx = out.index[rows_index]
    v4 = counts.family[idx] == 4
    tier = out.tier[rows_index][v4]
    dist = out.distance[rows_index][v4]
    cost = np.where(tier == 4, layout.unavailable_cost, dist)
    value = obj.value(weights[idx][v4].astype(np.float64), tier == 0, cost)
    want = step.value_after
    for a, b in zip(value, want, strict=True):
        if not math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6):  # pragma: no cover - a bug, never input
            raise AssertionError(
                f"advice for pool {pool!r} step {k}: predicted {want}, the engine gives {value}"
            )


def _pool_peaks(peaks: list[dict[str, Any]], ip_pool: dict[str, str]) -> dict[str, tuple[int, str]]:
    out: dict[str, tuple[int, str]] = {}
    for pk in peaks:  # largest first
        p = ip_pool.get(pk["egress_ip"])
        if p is not None and p not in out:
            out[p] = (int(pk["peak"]), f"{pk['egress_ip']} -> {pk['origin']}")
    return out


def _concurrency_advice(
    engine: ScopeEngine,
    counts: Counts,
    conns: Any,
    peaks: list[dict[str, Any]],
    ip_pool: dict[str, str],
    threshold: float,
) -> list[ConcurrencyAdvice]:
    limit = threshold * CONNECTION_LIMIT
    hot = [pk for pk in peaks if pk["peak"] > limit]
    if not hot:
        return []
    # Where each hot key's connections egress: re-decide the kept connections once.
    g = conns.group
    r = engine.engine.decide_batch(
        counts.server[g], engine._pools(counts, g), counts.family[g], conns.flow, errors="raise"
    )
    ip = np.asarray(r.ip, np.int64)
    loc = np.asarray(r.location, np.int64)
    locations = list(engine.engine.locations)
    out = []
    for pk in hot:
        ip_i = engine.ip_ids.index(pk["egress_ip"])
        origin_rows = [
            k
            for k, (text, port) in enumerate(conns.origins)
            if (f"[{text}]:{port}" if ":" in text else f"{text}:{port}") == pk["origin"]
        ]
        rows = (ip == ip_i) & np.isin(conns.origin, origin_rows)
        used, n = np.unique(loc[rows], return_counts=True)
        order = np.argsort(-n, kind="stable")
        out.append(
            ConcurrencyAdvice(
                ip_pool.get(pk["egress_ip"], ""),
                pk["egress_ip"],
                pk["origin"],
                int(pk["peak"]),
                math.ceil(pk["peak"] / limit),
                [locations[i] for i in used[order].tolist()],
            )
        )
    return out


def _gap(
    pool: str,
    state: PoolState,
    groups: PoolGroups,
    obj: Objective,
    steps: int,
    budget: int,
    plan: list[Step],
    max_variables: int,
) -> GreedyGap | None:
    if any(s.move.kind == "swap" for s in plan):
        return None  # the MILP models additions only
    lay = state.layout
    decided = state.decide(groups)
    base_value = obj.value(groups.weight, decided.local, decided.cost)[0]
    slots = sum(max(MAX_LOCATIONS_PER_IPV4 - len(a.locations(lay)), 0) for a in state.addresses)
    slots += MAX_LOCATIONS_PER_IPV4 * budget
    opt = optimum(state, groups, decided, obj, steps, slots, max_variables=max_variables)
    if opt is None:
        return None
    greedy_value = plan[-1].value_after[0] if plan else base_value
    return GreedyGap(
        pool, greedy_value, opt.value, base_value, [lay.location_ids[i] for i in opt.locations], opt.status
    )


def _unused_holders(topo: Topology, scope: set[str], counts: Counts, layout: Layout) -> list[UnusedHolder]:
    """(address, location) holder pairs of the pools in scope through which no decided row egressed."""
    where = holder_locations(topo)
    out = []
    for p in topo.pools:
        if p.id not in scope:
            continue
        for ip in p.ips:
            if ip.family != 4:
                continue
            for loc in dict.fromkeys(where[h] for h in ip.holders):
                if counts.egress_rows.get((ip.address, loc), 0) == 0:
                    out.append(UnusedHolder(p.id, ip.address, loc))
    return out
