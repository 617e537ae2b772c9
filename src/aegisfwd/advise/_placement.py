"""One pool's IPv4 placement and what moving it does to the pool's traffic, on aggregated counts.

The decision chain for a (ingress server, pool, IPv4) group only asks which servers are
*candidates* (up, and holding one of the pool's IPv4 addresses): LOCAL if the ingress server is
one, SAME_DC / SAME_LOCATION if another server of its DC / location is, else REMOTE to the closest
other reachable location with one (rounded distance), else UNAVAILABLE. ``PoolState.decide`` applies
exactly that to every group at once, and ``PoolState.candidate_values`` the effect of adding any one
location, vectorised over all candidate locations (the p-median "add" step). The advice holds both to
the compiled engine: the base and every advised step are re-decided with ``Engine.decide_batch``
(``_exact.py``) and must agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ._layout import Address, Layout
from ._objective import P95, Objective, weighted_quantile_columns

LOCAL, SAME_DC, SAME_LOCATION, REMOTE, UNAVAILABLE = 0, 1, 2, 3, 4


@dataclass
class PoolGroups:
    """The IPv4 groups of one pool: ingress server, its DC and location, weight and rows."""

    server: np.ndarray
    dc: np.ndarray
    location: np.ndarray
    up: np.ndarray  # the ingress server itself is up
    weight: np.ndarray  # float64 (requests or distinct flows)
    rows: np.ndarray  # int64 requests
    index: np.ndarray  # positions in the Counts these came from

    @classmethod
    def select(
        cls, layout: Layout, server: np.ndarray, weight: np.ndarray, rows: np.ndarray, index: np.ndarray
    ) -> PoolGroups:
        s = server.astype(np.int64)
        return cls(
            s,
            layout.server_dc[s],
            layout.server_location[s],
            layout.up[s],
            weight.astype(np.float64),
            rows.astype(np.int64),
            index,
        )

    def __len__(self) -> int:
        return int(self.server.shape[0])

    @cached_property
    def distinct_locations(self) -> tuple[np.ndarray, np.ndarray]:
        """(distinct ingress locations, position of each group's among them)."""
        return np.unique(self.location, return_inverse=True)


@dataclass
class Decided:
    """Per group: tier, added distance (NaN for UNAVAILABLE) and the objective's cost."""

    tier: np.ndarray
    distance: np.ndarray
    cost: np.ndarray

    @property
    def local(self) -> np.ndarray:
        return self.tier == LOCAL


@dataclass
class _Classes:
    far_loc: np.ndarray  # ingress locations with far (REMOTE / UNAVAILABLE) traffic
    wf: np.ndarray  # their weight
    cf: np.ndarray  # their cost
    near_gain: np.ndarray  # per location: weight that becomes LOCAL when it is added
    forwarded: float
    zero_w: float  # weight at cost 0


@dataclass
class PoolState:
    """Where a pool's IPv4 addresses are held, and the candidate servers that follow."""

    layout: Layout
    addresses: list[Address]
    cand: np.ndarray = field(init=False)
    cand_dc: np.ndarray = field(init=False)
    cand_loc: np.ndarray = field(init=False)
    _cache: tuple[Decided, _Classes] | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        self.rebuild()

    def rebuild(self) -> None:
        lay = self.layout
        held = [a.servers for a in self.addresses if a.servers.shape[0]]
        servers = np.unique(np.concatenate(held)) if held else np.empty(0, np.int64)
        self.cand = servers[lay.up[servers]]
        self.cand_dc = np.bincount(lay.server_dc[self.cand], minlength=len(lay.dc_ids))
        self.cand_loc = np.bincount(lay.server_location[self.cand], minlength=len(lay.location_ids))
        self._cache = None

    def copy(self) -> PoolState:
        return PoolState(
            self.layout, [Address(a.address, a.servers, a.holders, a.new) for a in self.addresses]
        )

    # ---- the decision on aggregated groups ------------------------------------------------------
    def remote_distance(self, locations: np.ndarray) -> np.ndarray:
        """Distance to the closest other reachable location with a candidate (inf: none)."""
        has = np.flatnonzero(self.cand_loc > 0)
        if has.shape[0] == 0 or locations.shape[0] == 0:
            return np.full(locations.shape[0], np.inf)
        uniq, inv = np.unique(locations, return_inverse=True)
        return self.layout.remote[np.ix_(uniq, has)].min(axis=1)[inv]

    def decide(self, g: PoolGroups) -> Decided:
        cand = self.cand
        if cand.shape[0]:
            pos = np.minimum(np.searchsorted(cand, g.server), cand.shape[0] - 1)
            local = cand[pos] == g.server
        else:
            local = np.zeros(len(g), dtype=bool)
        same_dc = (self.cand_dc[g.dc] - local) > 0
        same_loc = (self.cand_loc[g.location] - self.cand_dc[g.dc]) > 0
        uniq, inv = g.distinct_locations
        remote = self.remote_distance(uniq)[inv]
        tier = np.where(
            local,
            LOCAL,
            np.where(
                same_dc,
                SAME_DC,
                np.where(same_loc, SAME_LOCATION, np.where(np.isfinite(remote), REMOTE, UNAVAILABLE)),
            ),
        ).astype(np.int64)
        distance = np.where(tier <= SAME_LOCATION, 0.0, np.where(tier == REMOTE, remote, np.nan))
        cost = np.where(tier == UNAVAILABLE, self.layout.unavailable_cost, distance)
        return Decided(tier, distance, cost)

    # ---- adding a location ------------------------------------------------------------------------
    def move_dcs(self, g: PoolGroups, location: int) -> list[int]:
        """The DCs an "add ``location``" move makes holders: those of the location where the pool's
        traffic arrives (and that have an up server), else its DC with the most up servers. Adding
        more DCs of the location would change nothing for this log."""
        lay = self.layout
        dcs = lay.location_dcs(location)
        with_traffic = sorted({int(d) for d in g.dc[g.location == location].tolist()})
        chosen = [d for d in with_traffic if lay.dc_up[d] > 0]
        if chosen:
            return chosen
        ups = [int(lay.dc_up[d]) for d in dcs]
        if not ups or max(ups) == 0:
            return []
        return [dcs[int(np.argmax(ups))]]

    def _classes(self, g: PoolGroups, decided: Decided) -> _Classes:
        """What every candidate's evaluation shares, once per placement (the lazy greedy evaluates
        one candidate at a time)."""
        cached = self._cache
        if cached is not None and cached[0] is decided:
            return cached[1]
        w = g.weight
        far = decided.tier >= REMOTE
        # Far groups by ingress location: they share one cost per location.
        far_loc, inv = np.unique(g.location[far], return_inverse=True)
        wf = np.bincount(inv, weights=w[far], minlength=far_loc.shape[0])
        cf = np.zeros(far_loc.shape[0])
        cf[inv] = decided.cost[far]
        # Groups at the candidate location that become LOCAL: their server is up (their DC is then
        # one of the move's DCs) and not a candidate yet.
        near = (~decided.local) & g.up
        near_gain = np.zeros(len(self.layout.location_ids))
        np.add.at(near_gain, g.location[near], w[near])
        c = _Classes(far_loc, wf, cf, near_gain, float(w[~decided.local].sum()), float(w.sum() - wf.sum()))
        self._cache = (decided, c)
        return c

    def candidate_values(
        self, g: PoolGroups, decided: Decided, objective: Objective, locations: np.ndarray
    ) -> list[tuple[float, float]]:
        """The objective's value after adding each of ``locations`` (each alone) as holder."""
        primary, second = self.candidate_arrays(g, decided, objective, locations)
        return list(zip(primary.tolist(), second.tolist(), strict=True))

    def candidate_arrays(
        self, g: PoolGroups, decided: Decided, objective: Objective, locations: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``candidate_values`` as two arrays (primary, tie-break cost), one entry per location."""
        lay = self.layout
        locations = np.asarray(locations, dtype=np.int64)
        if locations.shape[0] == 0:
            return np.empty(0), np.empty(0)
        k = self._classes(g, decided)
        far_loc, wf, cf = k.far_loc, k.wf, k.cf
        new_cost = np.minimum(cf[:, None], lay.remote[np.ix_(far_loc, locations)])  # far classes x candidates
        new_cost[far_loc[:, None] == locations[None, :]] = 0.0  # the candidate's own location is served there
        forwarded = k.forwarded - k.near_gain[locations]
        zero_w = k.zero_w
        total = (wf[:, None] * new_cost).sum(axis=0)
        if objective.metric == "forwarded":
            return forwarded, total
        if objective.metric == "mean":
            return total, forwarded
        values = np.vstack([new_cost, np.zeros((1, locations.shape[0]))])
        p95 = weighted_quantile_columns(values, np.append(wf, zero_w), P95)
        return p95, total

    # ---- changing the placement ------------------------------------------------------------------
    def address_at(self, location: int) -> int | None:
        """An address already held at ``location`` (adding DCs there uses no new location)."""
        for k, a in enumerate(self.addresses):
            if a.servers.shape[0] and (self.layout.server_location[a.servers] == location).any():
                return k
        return None

    def add(self, address: int, location: int, dcs: list[int]) -> None:
        lay = self.layout
        a = self.addresses[address]
        all_dcs = list(lay.location_dcs(location))
        names = (lay.location_ids[location],) if sorted(dcs) == all_dcs else tuple(lay.dc_ids[d] for d in dcs)
        a.servers = np.union1d(a.servers, lay.holders_servers(dcs))
        a.holders = a.holders + tuple(n for n in names if n not in a.holders)
        self.rebuild()

    def remove(self, address: int, location: int, holder_location: dict[str, int]) -> None:
        """Stop holding ``address`` at ``location`` (every holder entry there)."""
        lay = self.layout
        a = self.addresses[address]
        a.servers = a.servers[lay.server_location[a.servers] != location]
        a.holders = tuple(h for h in a.holders if holder_location.get(h) != location)
        self.rebuild()
