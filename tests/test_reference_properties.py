"""Properties of ``ReferenceEngine`` on random topologies (docs/decision.md: "The chain", "Which candidate").

The oracle here is deliberately naive and independent of ``reference.py``: it expands holder names
through the dataclasses (no index ranges), computes distances from coordinates or the matrix in its
own location order, and evaluates the rules as set comprehensions.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from strategies import apply_states, is_valid_request, request_lists, requests, states, topologies

import aegisfwd as af
from aegisfwd import _hashing as h
from aegisfwd._explain import explain_request
from aegisfwd.geo import haversine_km, round_distance
from aegisfwd.reference import ReferenceEngine
from aegisfwd.topology import STATE_NAMES

Tier = af.Tier


# ---- a naive oracle ----------------------------------------------------------------------------------
class Oracle:
    def __init__(self, topo: af.Topology, codes: Any) -> None:
        self.topo = topo
        self.dc_of = {s: dc.id for dc in topo.data_centers for s in dc.servers}
        self.loc_of_dc = {dc.id: dc.location for dc in topo.data_centers}
        self.loc_of = {s: self.loc_of_dc[d] for s, d in self.dc_of.items()}
        self.state = {s: STATE_NAMES[int(c)] for s, c in zip(topo.server_ids, codes, strict=True)}
        self.listed = [loc.id for loc in topo.locations]

    def expand(self, holder: str) -> set[str]:
        return {s for s in self.dc_of if holder in (s, self.dc_of[s], self.loc_of[s])}

    def distance(self, a: str, b: str) -> float | None:
        """Rounded distance a -> b; None when unreachable."""
        if a == b:
            return 0.0
        t = self.topo
        if t.distances is not None:
            order = list(t.distances.locations)
            v = t.distances.matrix[order.index(a)][order.index(b)]
            return None if v is None else round_distance(v)
        la = next(loc for loc in t.locations if loc.id == a)
        lb = next(loc for loc in t.locations if loc.id == b)
        return round_distance(haversine_km(la.lat, la.lon, lb.lat, lb.lon))  # type: ignore[arg-type]

    def applicable(self, pool: str, family: int) -> list[af.AegisIP]:
        return [ip for p in self.topo.pools if p.id == pool for ip in p.ips if ip.family == family]

    def candidates(self, pool: str, family: int) -> set[str]:
        return {
            s
            for ip in self.applicable(pool, family)
            for hd in ip.holders
            for s in self.expand(hd)
            if self.state[s] == "up"
        }

    def tiers(self, ingress: str, pool: str, family: int) -> dict[Tier, set[str]]:
        c = self.candidates(pool, family)
        dc, loc = self.dc_of[ingress], self.loc_of[ingress]
        return {
            Tier.LOCAL: c & {ingress},
            Tier.SAME_DC: {s for s in c if self.dc_of[s] == dc and s != ingress},
            Tier.SAME_LOCATION: {s for s in c if self.loc_of[s] == loc and self.dc_of[s] != dc},
            Tier.REMOTE: {
                s for s in c if self.loc_of[s] != loc and self.distance(loc, self.loc_of[s]) is not None
            },
        }


def best(flow_hash: int, keys: dict[Any, int]) -> Any:
    return max(keys, key=lambda k: (h.weight(flow_hash, keys[k]), keys[k]))


def to_id(topo: af.Topology, kind: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    return (topo.server_ids if kind == "server" else topo.pool_ids)[int(value)]


def engine_with(topo: af.Topology, codes: Any) -> ReferenceEngine:
    ref = ReferenceEngine(topo)
    apply_states(ref, codes)
    return ref


@st.composite
def worlds(draw: Any, invalid: bool = False, max_size: int = 25) -> tuple[af.Topology, np.ndarray, list[Any]]:
    topo = draw(topologies())
    return topo, draw(states(topo)), draw(request_lists(topo, invalid=invalid, max_size=max_size))


# ---- the rules ------------------------------------------------------------------------------------------------
@given(worlds())
def test_decision_is_the_first_rule_that_applies(world: tuple[af.Topology, np.ndarray, list[Any]]) -> None:
    topo, codes, rows = world
    ref = engine_with(topo, codes)
    oracle = Oracle(topo, codes)
    for server, pool, family, flow in rows:
        d = ref.decide(server, pool, family, flow)
        ingress, pool_id = to_id(topo, "server", server), to_id(topo, "pool", pool)
        tiers = oracle.tiers(ingress, pool_id, family)
        if d.tier == Tier.UNAVAILABLE:
            assert not any(tiers.values())
            assert (d.server, d.ip, d.server_index) == (None, None, -1) and math.isnan(d.distance)
            continue
        for earlier in Tier:
            if earlier >= d.tier:
                break
            assert not tiers[earlier], f"{earlier.name} applies but {d.tier.name} was chosen"
        pool_candidates = tiers[d.tier]
        if d.tier == Tier.REMOTE:
            here = oracle.loc_of[ingress]
            with_candidates = {oracle.loc_of[s] for s in pool_candidates}
            nearest = min(
                with_candidates, key=lambda loc: (oracle.distance(here, loc), oracle.listed.index(loc))
            )
            assert d.location == nearest
            assert d.distance == oracle.distance(here, nearest)
            pool_candidates = {s for s in pool_candidates if oracle.loc_of[s] == nearest}
        else:
            assert d.distance == 0.0
        assert d.server in pool_candidates
        assert d.server == best(h.server_flow_hash(flow), {s: h.server_key(s) for s in pool_candidates})
        assert (d.dc, d.location) == (oracle.dc_of[d.server], oracle.loc_of[d.server])
        held = {
            ip.address: h.ip_key(ip.network)
            for ip in oracle.applicable(pool_id, family)
            if any(d.server in oracle.expand(hd) for hd in ip.holders)
        }
        assert d.ip == best(h.ip_flow_hash(flow), held)
        # Indices agree with the ids in the engine's tables.
        assert ref.servers[d.server_index] == d.server and ref.ips[d.ip_index] == d.ip
        assert ref.dcs[d.dc_index] == d.dc and ref.locations[d.location_index] == d.location


@given(worlds())
def test_explain_reaches_the_same_decision(world: tuple[af.Topology, np.ndarray, list[Any]]) -> None:
    topo, codes, rows = world
    ref = engine_with(topo, codes)
    for server, pool, family, flow in rows[:5]:
        text, decision = explain_request(topo, codes, server, pool, family, flow)
        assert decision == ref.decide(server, pool, family, flow)
        assert ref.explain(server, pool, family, flow) == text
        assert text.splitlines()[-1].startswith(f"result: {decision.tier.name}")
        assert "1. LOCAL" in text


# ---- batches ----------------------------------------------------------------------------------------------------
@given(worlds(invalid=True))
def test_decide_batch_equals_decide_row_by_row(world: tuple[af.Topology, np.ndarray, list[Any]]) -> None:
    topo, codes, rows = world
    ref = engine_with(topo, codes)
    columns = [list(c) for c in zip(*rows, strict=True)] if rows else [[], [], [], []]
    r = ref.decide_batch(*columns, errors="mark")
    assert len(r) == len(rows)
    for i, row in enumerate(rows):
        if is_valid_request(topo, row):
            assert r.decision(i) == ref.decide(*row)
        else:
            assert r.tier[i] == Tier.INVALID
            assert (r.server[i], r.dc[i], r.location[i], r.ip[i]) == (-1, -1, -1, -1) and math.isnan(
                r.distance[i]
            )
    bad = [i for i, row in enumerate(rows) if not is_valid_request(topo, row)]
    if bad:
        with pytest.raises(ValueError, match=f"row {bad[0]}\\)"):
            ref.decide_batch(*columns)
    else:
        assert ref.decide_batch(*columns).equals(r)


@given(worlds(max_size=15))
def test_batch_of_numpy_and_arrow_columns_equals_lists(
    world: tuple[af.Topology, np.ndarray, list[Any]],
) -> None:
    import pyarrow as pa

    topo, codes, rows = world
    ref = engine_with(topo, codes)
    ids = [(to_id(topo, "server", s), to_id(topo, "pool", p), f, fl) for s, p, f, fl in rows]
    servers, pools, families, flows = (list(c) for c in zip(*ids, strict=True)) if ids else ([], [], [], [])
    from_lists = ref.decide_batch(servers, pools, families, flows)
    signed = np.array(flows, dtype=np.uint64).view(np.int64)  # hashes as they come from Arrow/pandas
    from_arrow = ref.decide_batch(
        pa.array(servers, type=pa.string()).dictionary_encode(),
        pa.array(pools, type=pa.large_string()),
        pa.array(families, type=pa.int8()),
        pa.array(signed, type=pa.int64()),
    )
    from_numpy = ref.decide_batch(
        np.array([topo.server_index[s] for s in servers], dtype=np.int64),
        np.array(pools, dtype=object),
        np.array(families, dtype=np.uint8),
        signed,
    )
    assert from_lists.equals(from_arrow) and from_lists.equals(from_numpy)


# ---- consistency under change -----------------------------------------------------------------------------------
@given(st.data())
def test_marking_the_chosen_server_out_of_service_moves_only_its_flows(data: Any) -> None:
    topo, codes, rows = data.draw(worlds(max_size=40))
    ref = engine_with(topo, codes)
    before = [ref.decide(*row) for row in rows]
    chosen = [d.server for d in before if d.server is not None]
    assume(chosen)
    victim = data.draw(st.sampled_from(chosen))
    ref.set_state(victim, data.draw(st.sampled_from(("draining", "down"))))
    for row, old in zip(rows, before, strict=True):
        new = ref.decide(*row)
        if old.server == victim:
            assert new.server != victim
        else:
            assert new == old


@given(st.data())
def test_bringing_a_server_back_restores_exactly_the_old_answers(data: Any) -> None:
    topo, codes, rows = data.draw(worlds(max_size=30))
    ref = engine_with(topo, codes)
    before = [ref.decide(*row) for row in rows]
    target = data.draw(st.sampled_from(topo.server_ids))
    old_state = ref.get_state(target)
    ref.set_state(target, "down")
    ref.set_state(target, old_state)
    assert [ref.decide(*row) for row in rows] == before


@st.composite
def with_unrelated_additions(draw: Any) -> tuple[af.Topology, af.Topology]:
    """A topology and a copy that adds a location (with a DC and servers) and servers in a DC that
    no holder names, none of them holding anything; distances to the new location are arbitrary."""
    topo = draw(topologies())
    named = {hd for p in topo.pools for ip in p.ips for hd in ip.holders}
    dcs = list(topo.data_centers)
    free = [k for k, dc in enumerate(dcs) if dc.id not in named and dc.location not in named]
    if free:
        k = draw(st.sampled_from(free))
        extra = tuple(f"new-{k}-{j}" for j in range(draw(st.integers(1, 3))))
        dcs[k] = dataclasses.replace(dcs[k], servers=dcs[k].servers + extra)
    dcs.append(af.DataCenter("NEWDC", "NEWLOC", ("new-s1", "new-s2")))
    distances = topo.distances
    if distances is None:
        new_loc = af.Location(
            "NEWLOC", None, draw(st.sampled_from((0.0, 0.5, 40.0))), draw(st.sampled_from((0.0, 1.0)))
        )
    else:
        new_loc = af.Location("NEWLOC")
        n = len(distances.locations)
        value = st.sampled_from((None, 0.0, 1.0, 2.5, 1000.0))
        rows = [row + (draw(value),) for row in distances.matrix]
        rows.append(tuple(draw(value) for _ in range(n)) + (0.0,))
        distances = af.DistanceMatrix(distances.unit, distances.locations + ("NEWLOC",), tuple(rows))
    position = draw(st.integers(0, len(topo.locations)))  # anywhere in the listing order
    locations = topo.locations[:position] + (new_loc,) + topo.locations[position:]
    bigger = af.Topology(
        locations, tuple(dcs), topo.pools, dict(topo.server_states), dict(topo.zones), distances
    )
    return topo, bigger


@given(with_unrelated_additions(), st.data())
def test_adding_unrelated_servers_dcs_locations_moves_nothing(
    pair: tuple[af.Topology, af.Topology], data: Any
) -> None:
    topo, bigger = pair
    rows = data.draw(request_lists(topo, max_size=30))
    by_id = [(to_id(topo, "server", s), to_id(topo, "pool", p), f, fl) for s, p, f, fl in rows]
    a, b = ReferenceEngine(topo), ReferenceEngine(bigger)
    for row in by_id:
        da, db = a.decide(*row), b.decide(*row)
        assert (da.tier, da.server, da.dc, da.location, da.ip) == (
            db.tier,
            db.server,
            db.dc,
            db.location,
            db.ip,
        )
        assert da.distance == db.distance or (math.isnan(da.distance) and math.isnan(db.distance))


@given(topologies())
def test_recompiling_moves_nothing(topo: af.Topology) -> None:
    # A second model of an equal topology (through the loader's round trip) answers identically.
    again = af.Topology.from_dict(topo.to_dict())
    a, b = ReferenceEngine(topo), ReferenceEngine(again)
    servers = list(topo.server_ids) * len(topo.pool_ids)
    pools = [p for p in topo.pool_ids for _ in topo.server_ids]
    for family in (4, 6):
        assert a.decide_batch(servers, pools, family, 12345).equals(
            b.decide_batch(servers, pools, family, 12345)
        )


# ---- load -------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_candidates", [2, 5, 10])
def test_load_spreads_evenly_over_candidates(n_candidates: int) -> None:
    servers = [f"edge-{k:02d}" for k in range(n_candidates)]
    topo = af.Topology.from_dict(
        {
            "locations": [{"id": "L", "lat": 0, "lon": 0}, {"id": "M", "lat": 1, "lon": 1}],
            "data_centers": [
                {"id": "L1", "location": "L", "servers": ["ingress"]},
                {"id": "M1", "location": "M", "servers": servers},
            ],
            "pools": [
                {
                    "id": "p",
                    "ips": [
                        {"address": "192.0.2.1", "holders": ["M1"]},
                        {"address": "192.0.2.2", "holders": ["M"]},
                    ],
                }
            ],
        }
    )
    ref = ReferenceEngine(topo)
    flows = np.arange(20000, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)  # deterministic, well spread
    r = ref.decide_batch("ingress", "p", 4, flows)
    assert set(r.tier.tolist()) == {Tier.REMOTE}
    per_server = np.bincount(r.server, minlength=len(ref.servers))[1:]
    assert per_server.max() / per_server.mean() < 1.3
    per_ip = np.bincount(r.ip, minlength=2)
    assert per_ip.max() / per_ip.mean() < 1.1
    # Sequential flow keys spread as well (mix64 first).
    r = ref.decide_batch("ingress", "p", 4, np.arange(20000))
    per_server = np.bincount(r.server, minlength=len(ref.servers))[1:]
    assert per_server.max() / per_server.mean() < 1.3


# ---- states --------------------------------------------------------------------------------------------------------------
@given(st.data())
def test_set_state_sequences_match_a_plain_model(data: Any) -> None:
    topo = data.draw(topologies())
    ref = ReferenceEngine(topo)
    model = {s: STATE_NAMES[c] for s, c in zip(topo.server_ids, topo.initial_states(), strict=True)}
    dc_of = {s: dc.id for dc in topo.data_centers for s in dc.servers}
    loc_of = {s: next(dc.location for dc in topo.data_centers if dc.id == d) for s, d in dc_of.items()}
    targets = list(topo.server_ids) + [dc.id for dc in topo.data_centers] + [loc.id for loc in topo.locations]
    for _ in range(data.draw(st.integers(1, 8))):
        target = data.draw(st.sampled_from(targets))
        state = data.draw(st.sampled_from(("up", "draining", "down")))
        ref.set_state(target, state)
        for s in model:
            if target in (s, dc_of[s], loc_of[s]):
                model[s] = state
    assert [ref.get_state(s) for s in topo.server_ids] == [model[s] for s in topo.server_ids]
    assert ref.states.tolist() == [("up", "draining", "down").index(model[s]) for s in topo.server_ids]


@given(topologies())
def test_file_states_most_specific_entry_wins(topo: af.Topology) -> None:
    ref = ReferenceEngine(topo)
    dc_of = {s: dc.id for dc in topo.data_centers for s in dc.servers}
    loc_of_dc = {dc.id: dc.location for dc in topo.data_centers}
    for s in topo.server_ids:
        entries = topo.server_states
        expected = entries.get(s, entries.get(dc_of[s], entries.get(loc_of_dc[dc_of[s]], "up")))
        assert ref.get_state(s) == expected


@given(topologies())
def test_strategy_topologies_are_valid_for_the_loader(topo: af.Topology) -> None:
    again = af.Topology.from_dict(topo.to_dict())
    assert again.server_ids == topo.server_ids and again.location_ids == topo.location_ids
    assert np.array_equal(again.distance_matrix(), topo.distance_matrix(), equal_nan=True)


@given(st.data())
def test_requests_strategy_rows_decide(data: Any) -> None:
    topo = data.draw(topologies())
    ref = ReferenceEngine(topo)
    row = data.draw(requests(topo, invalid=True))
    if is_valid_request(topo, row):
        assert ref.decide(*row).tier in set(Tier) - {Tier.INVALID}
    else:
        with pytest.raises(ValueError, match="unknown|invalid"):
            ref.decide(*row)
