"""The decision rules in plain Python: what ``ReferenceEngine`` runs and ``explain`` traces.

It reads the validated ``Topology`` model only (never the compiled tables), in the canonical index
order of ``topology.py``, and answers with the hashing scheme of ``_hashing.py``. Its decision
procedure, ``decide_request``, is written to be read next to SPEC "The decision":

    1. LOCAL          the ingress server is a candidate
    2. SAME_DC        another server of the ingress DC is a candidate
    3. SAME_LOCATION  a server in another DC of the ingress location is a candidate
    4. REMOTE         the closest reachable other location with a candidate (ties: listed first)
    5. UNAVAILABLE    no candidate anywhere

A *candidate* holds at least one *applicable* IP (the request's pool and family) and is ``up``.
Among the candidates of the rule that applies, rendezvous hashing on the flow picks the server;
among the applicable IPs it holds, rendezvous hashing picks the IP.

Where SPEC is silent, this is what every engine does (the compiled ``Engine`` is tested to match):

* SAME_DC excludes the ingress server itself; SAME_LOCATION means servers of the ingress location
  outside the ingress DC. The ingress server's own state matters for LOCAL only (it can be a
  candidate only when up); a draining or down ingress is otherwise answered normally.
* REMOTE looks at every *other* location, even one at distance 0 (same coordinates); the reported
  distance is the rounded matrix value from the ingress location (row) to the egress location
  (column), in ``distance_unit``.
* A location without any server, or whose holders are all out of service, is skipped like one
  without holders; an unreachable (``null``) location is never chosen even if it is the only one.
* Bools are not ids, indices, families or flows (``True`` is not server 1). Numpy integers are.
* In a batch, a bad flow key (negative Python int, ``>= 2**64``, null) makes the row bad like a
  bad server, pool or family: ``INVALID`` under ``errors="mark"``. Under ``errors="raise"`` the
  first bad *row* raises (see ``_inputs.py`` for the accepted input kinds and broadcasting).
* ``set_state`` targets a server (id or index), DC or location (id); ``set_states`` replaces all
  states at once. Neither touches the topology's ``server_states``, which only set the initial
  states.

``ReferenceModel`` only precomputes plain lookups (holders of an IP as server-index ranges,
applicable IPs per (pool, family), locations by distance) so that one decision on a 60k-server
topology takes microseconds to a millisecond; ``decide_request`` optionally records a trace, which
``explain`` (``_explain.py``) formats, so the explanation is the decision itself, not a retelling.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _hashing as hashing
from ._types import Decision, Tier
from .topology import STATE_CODES, Topology

__all__ = ["ReferenceModel", "decide_request", "model_of", "topology_of"]

UP = STATE_CODES["up"]


def topology_of(obj: object) -> Topology:
    """The ``Topology`` behind ``obj``: a Topology itself, or anything with a ``.topology`` one
    (a ``CompiledTopology`` compiled in this process). Otherwise ``TypeError``."""
    if isinstance(obj, Topology):
        return obj
    inner = getattr(obj, "topology", None)
    if isinstance(inner, Topology):
        return inner
    if inner is None and hasattr(obj, "topology"):
        raise TypeError(
            f"{type(obj).__name__} carries no Topology model (loaded from a file?): the reference "
            "engine needs the model; pass the Topology, e.g. load_topology(path)"
        )
    raise TypeError(f"expected a Topology or a compiled topology built from one, got {type(obj).__name__}")


class ReferenceModel:
    """Plain-Python facts of one topology, in canonical index order (no server states)."""

    def __init__(self, topology: Topology) -> None:
        t = topology
        self.topology = t
        self.location_ids: tuple[str, ...] = t.location_ids
        self.dc_ids: tuple[str, ...] = t.dc_ids
        self.server_ids: tuple[str, ...] = t.server_ids
        self.pool_ids: tuple[str, ...] = t.pool_ids
        self.ip_ids: tuple[str, ...] = tuple(ip.address for _, ip in t.ordered_ips)
        self.location_lookup: dict[str, int] = dict(t.location_index)
        self.dc_lookup: dict[str, int] = dict(t.dc_index)
        self.server_lookup: dict[str, int] = dict(t.server_index)
        self.pool_lookup: dict[str, int] = dict(t.pool_index)

        # Tree: every DC and location is a contiguous range [first, end) of server indices.
        self.dc_servers: tuple[tuple[int, int], ...] = t.dc_server_ranges
        self.location_servers: tuple[tuple[int, int], ...] = t.location_server_ranges
        self.dc_location: list[int] = [t.location_index[dc.location] for dc in t.ordered_data_centers]
        self.server_dc: list[int] = [d for d, (a, b) in enumerate(self.dc_servers) for _ in range(a, b)]
        self.server_location: list[int] = [self.dc_location[d] for d in self.server_dc]

        # Stable keys (docs/hashing.md): from ids and addresses, never from positions.
        self.server_key: list[int] = [hashing.server_key(s) for s in self.server_ids]
        self.ip_key: list[int] = [hashing.ip_key(ip.network) for _, ip in t.ordered_ips]

        # Holders of each IP as merged server ranges (a DC or location holder is its whole range);
        # applicable IPs of each (pool, family).
        named_range = {
            name: t.holder_range(name) for name in (*self.server_ids, *self.dc_ids, *self.location_ids)
        }
        merged: dict[tuple[str, ...], tuple[tuple[int, int], ...]] = {}  # many IPs share a holder list
        for _, ip in t.ordered_ips:
            if ip.holders not in merged:
                merged[ip.holders] = merge_ranges(named_range[h] for h in ip.holders)
        self.ip_holders: list[tuple[tuple[int, int], ...]] = [merged[ip.holders] for _, ip in t.ordered_ips]
        self.ip_family: list[int] = [ip.family for _, ip in t.ordered_ips]
        self.applicable: dict[tuple[int, int], tuple[int, ...]] = {}
        for i, (p, ip) in enumerate(t.ordered_ips):
            self.applicable.setdefault((p, ip.family), ())
            self.applicable[(p, ip.family)] += (i,)

        # Distances (rounded, NaN = unreachable) and, per location, every reachable other location
        # sorted by (distance, position in `locations`): the order in which REMOTE looks.
        self.distance: list[list[float]] = t.distance_matrix().tolist()
        self.distance_unit: str = t.distance_unit
        n = len(self.location_ids)
        self.nearest: list[tuple[int, ...]] = [
            tuple(
                sorted(
                    (m for m in range(n) if m != loc and not math.isnan(self.distance[loc][m])),
                    key=lambda m, loc=loc: (self.distance[loc][m], m),  # type: ignore[misc]
                )
            )
            for loc in range(n)
        ]
        self.unreachable: list[tuple[int, ...]] = [
            tuple(m for m in range(n) if m != loc and math.isnan(self.distance[loc][m])) for loc in range(n)
        ]
        self._holder_locations: dict[tuple[tuple[int, int], ...], frozenset[int]] = {}

    # ---- facts used by the decision -----------------------------------------------------------
    def applicable_ips(self, pool: int, family: int) -> tuple[int, ...]:
        """IP indices in ``pool`` with ``family`` (SPEC "applicable")."""
        return self.applicable.get((pool, family), ())

    def holds(self, server: int, ip: int) -> bool:
        return any(a <= server < b for a, b in self.ip_holders[ip])

    def locations_with_holders(self, ips: tuple[int, ...]) -> frozenset[int]:
        """Locations where at least one of ``ips`` has a holder (memoised: it only lets REMOTE
        skip, without looking at their servers, the locations that cannot have a candidate)."""
        ranges = merge_ranges(r for ip in ips for r in self.ip_holders[ip])
        found = self._holder_locations.get(ranges)
        if found is None:
            found = frozenset(
                loc
                for loc, (first, end) in enumerate(self.location_servers)
                if any(a < end and first < b for a, b in ranges)
            )
            self._holder_locations[ranges] = found
        return found

    def holders_in(self, ips: Sequence[int], first: int, end: int) -> list[int]:
        """Servers in ``[first, end)`` that hold at least one of ``ips``, ascending."""
        found: set[int] = set()
        for ip in ips:
            for a, b in self.ip_holders[ip]:
                found.update(range(max(a, first), min(b, end)))
        return sorted(found)


def merge_ranges(ranges: Any) -> tuple[tuple[int, int], ...]:
    """Sorted, disjoint, non-touching ``[first, end)`` ranges covering the same servers."""
    merged: list[list[int]] = []
    for a, b in sorted(r for r in ranges if r[0] < r[1]):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return tuple((a, b) for a, b in merged)


_MODELS: weakref.WeakKeyDictionary[Topology, ReferenceModel] = weakref.WeakKeyDictionary()
_MODELS_LOCK = threading.Lock()


def model_of(topology: Topology) -> ReferenceModel:
    """The (cached) ``ReferenceModel`` of a topology; ``explain`` callers share it."""
    with _MODELS_LOCK:
        model = _MODELS.get(topology)
        if model is None:
            model = _MODELS[topology] = ReferenceModel(topology)
        return model


# ---------------------------------------------------------------------------------------------
# The decision (SPEC "The decision", "Which candidate, and which IP", "Result")
# ---------------------------------------------------------------------------------------------
def decide_request(
    m: ReferenceModel,
    states: Sequence[int] | np.ndarray,
    server: int,
    pool: int,
    family: int,
    flow: int,
    trace: list[tuple[Any, ...]] | None = None,
) -> Decision:
    """Decide one request given as indices, under per-server ``states`` (0 up, 1 draining, 2 down).

    When ``trace`` is a list, every rule tried is appended to it as a tuple (see ``_explain.py``).
    """
    ips = m.applicable_ips(pool, family)
    ingress_dc = m.server_dc[server]
    ingress_loc = m.server_location[server]

    def holders(first: int, end: int, exclude: tuple[int, int] = (0, 0)) -> list[int]:
        return [s for s in m.holders_in(ips, first, end) if not exclude[0] <= s < exclude[1]]

    def up(servers: list[int]) -> list[int]:
        return [s for s in servers if states[s] == UP]

    def choose(tier: Tier, candidates: list[int], distance: float) -> Decision:
        target = hashing.rendezvous(hashing.server_flow_hash(flow), candidates, m.server_key)
        held = [i for i in ips if m.holds(target, i)]
        ip = hashing.rendezvous(hashing.ip_flow_hash(flow), held, m.ip_key)
        if trace is not None:
            trace.append(("choose", tier, candidates, target, held, ip))
        dc = m.server_dc[target]
        loc = m.server_location[target]
        return Decision(
            tier,
            m.server_ids[target],
            m.dc_ids[dc],
            m.location_ids[loc],
            m.ip_ids[ip],
            distance,
            target,
            dc,
            loc,
            ip,
        )

    if trace is not None:
        trace.append(("applicable", ips))

    # 1. LOCAL: the ingress server is a candidate.
    held_here = holders(server, server + 1)
    if trace is not None:
        trace.append(("rule", Tier.LOCAL, held_here, up(held_here)))
    if up(held_here):
        return choose(Tier.LOCAL, up(held_here), 0.0)

    # 2. SAME_DC: another server of the ingress DC is a candidate.
    in_dc = holders(*m.dc_servers[ingress_dc], exclude=(server, server + 1))
    if trace is not None:
        trace.append(("rule", Tier.SAME_DC, in_dc, up(in_dc)))
    if up(in_dc):
        return choose(Tier.SAME_DC, up(in_dc), 0.0)

    # 3. SAME_LOCATION: a server in another DC of the ingress location is a candidate.
    in_loc = holders(*m.location_servers[ingress_loc], exclude=m.dc_servers[ingress_dc])
    if trace is not None:
        trace.append(("rule", Tier.SAME_LOCATION, in_loc, up(in_loc)))
    if up(in_loc):
        return choose(Tier.SAME_LOCATION, up(in_loc), 0.0)

    # 4. REMOTE: the closest other location that has a candidate. `nearest` lists the reachable
    #    ones by (distance, position in `locations`); unreachable (null) ones are never in it.
    if trace is not None:
        trace.append(("remote", m.unreachable[ingress_loc]))
    with_holders = m.locations_with_holders(ips)
    for other in m.nearest[ingress_loc]:
        distance = m.distance[ingress_loc][other]
        if other not in with_holders:  # no server there holds an applicable IP
            if trace is not None:
                trace.append(("location", other, distance, [], []))
            continue
        there = holders(*m.location_servers[other])
        if trace is not None:
            trace.append(("location", other, distance, there, up(there)))
        if up(there):
            return choose(Tier.REMOTE, up(there), distance)

    # 5. UNAVAILABLE: no candidate anywhere; the caller fails closed.
    if trace is not None:
        trace.append(("unavailable",))
    return Decision(Tier.UNAVAILABLE, None, None, None, None, math.nan)
