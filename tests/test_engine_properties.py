"""Property tests: the compiled ``Engine`` answers exactly as ``ReferenceEngine`` on random
topologies, states and requests, on every C++ kernel this machine runs (scalar and batch calls,
``errors="mark"`` rows, exceptions), and keeps the consistent-hashing promises of docs/decision.md."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import apply_states, is_valid_request, request_lists, requests, states, topologies

import aegisfwd as af
from aegisfwd import _hashing
from aegisfwd.engine import available_isas

ISAS = available_isas()


def outcome(call, *args, **kwargs):
    """The result of a call, or the exception it raised as (class, message)."""
    try:
        return call(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - any exception must match the reference's
        return (type(exc), str(exc))


def engines(topo, codes, isa):
    ref = af.ReferenceEngine(topo)
    eng = af.Engine(topo, isa=isa)
    apply_states(ref, codes)
    eng.set_states(codes)
    assert (eng.states == ref.states).all()
    return ref, eng


def same_outcome(got, expected) -> None:
    if isinstance(expected, af.BatchResult):
        assert isinstance(got, af.BatchResult), got
        same_batch(got, expected)
    else:
        assert got == expected


def same_batch(a: af.BatchResult, b: af.BatchResult) -> None:
    for name in ("tier", "server", "dc", "location", "ip", "distance"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        assert np.array_equal(x, y, equal_nan=(name == "distance")), (name, x, y)


@pytest.mark.parametrize("isa", ISAS)
@given(data=st.data())
def test_scalar_decisions_equal_reference(isa, data):
    topo = data.draw(topologies())
    ref, eng = engines(topo, data.draw(states(topo)), isa)
    for _ in range(12):
        request = data.draw(requests(topo, invalid=True))
        expected = outcome(ref.decide, *request)
        got = outcome(eng.decide, *request)
        assert got == expected, request
        if isinstance(expected, af.Decision):
            assert expected == got  # Decision.__eq__ both ways
            assert hash(got) == hash(expected)
            assert repr(got) == repr(expected)
            assert got.to_decision() == expected
            s, p, fam, flow = request
            s = topo.server_index[s] if isinstance(s, str) else int(s)
            p = topo.pool_index[p] if isinstance(p, str) else int(p)
            tier, server, dc, loc, ip, dist = eng.decide_indices(s, p, fam, flow)
            assert (tier, server, dc, loc, ip) == (
                int(expected.tier),
                expected.server_index,
                expected.dc_index,
                expected.location_index,
                expected.ip_index,
            )
            assert dist == expected.distance or (math.isnan(dist) and math.isnan(expected.distance))


@pytest.mark.parametrize("isa", ISAS)
@given(data=st.data())
def test_batch_decisions_equal_reference(isa, data):
    topo = data.draw(topologies())
    ref, eng = engines(topo, data.draw(states(topo)), isa)
    rows = data.draw(request_lists(topo, invalid=True, max_size=40))
    columns = [list(c) for c in zip(*rows, strict=True)] if rows else [[], [], [], []]
    threads = data.draw(st.sampled_from([None, 1, 2]))
    # errors="mark": bad rows come back INVALID, the rest decided.
    expected = ref.decide_batch(*columns, errors="mark")
    got = eng.decide_batch(*columns, errors="mark", threads=threads)
    same_batch(got, expected)
    # errors="raise": the same exception as the reference, or the same result.
    same_outcome(outcome(eng.decide_batch, *columns, threads=threads), outcome(ref.decide_batch, *columns))
    assert isinstance(outcome(eng.decide_batch, *columns), af.BatchResult) == all(
        is_valid_request(topo, r) for r in rows
    )


@pytest.mark.parametrize("isa", ISAS)
@given(data=st.data())
def test_numpy_index_batches_take_the_direct_path(isa, data):
    """int32/int32/uint8/uint64 arrays go straight to the core, which range-checks every row."""
    topo = data.draw(topologies())
    ref, eng = engines(topo, data.draw(states(topo)), isa)
    n = data.draw(st.integers(0, 60))
    n_s, n_p = len(topo.server_ids), len(topo.pool_ids)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    servers = rng.integers(-2, n_s + 2, n).astype(np.int32)
    pools = rng.integers(-2, n_p + 2, n).astype(np.int32)
    families = rng.choice(np.array([4, 6, 4, 6, 0, 5], dtype=np.uint8), n)
    flows = rng.integers(0, 2**64, n, dtype=np.uint64)
    same_batch(
        eng.decide_batch(servers, pools, families, flows, errors="mark"),
        ref.decide_batch(servers, pools, families, flows, errors="mark"),
    )
    same_outcome(
        outcome(eng.decide_batch, servers, pools, families, flows),
        outcome(ref.decide_batch, servers, pools, families, flows),
    )


@given(data=st.data())
def test_only_flows_on_a_removed_candidate_move(data):
    """docs/decision.md: when a candidate becomes ineligible, only the flows that were on it move."""
    topo = data.draw(topologies(min_servers=2))
    eng = af.Engine(topo)
    eng.set_states(np.zeros(len(topo.server_ids), dtype=np.uint8))
    n = 300
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    servers = rng.integers(0, len(topo.server_ids), n).astype(np.int32)
    pools = rng.integers(0, len(topo.pool_ids), n).astype(np.int32)
    families = rng.choice(np.array([4, 6], dtype=np.uint8), n)
    flows = rng.integers(0, 2**64, n, dtype=np.uint64)
    before = eng.decide_batch(servers, pools, families, flows)
    victim = data.draw(st.integers(0, len(topo.server_ids) - 1))
    eng.set_state(victim, data.draw(st.sampled_from(["down", "draining"])))
    after = eng.decide_batch(servers, pools, families, flows)
    # A row whose egress server was not the victim, and whose rule still applies with the same
    # candidate set minus the victim, keeps its answer; rows served by the victim move.
    moved = before.server != after.server
    assert not (after.server == victim).any()
    same_tier = before.tier == after.tier
    assert not (
        moved
        & same_tier
        & (before.server != victim)
        & (before.tier <= 3)
        & (before.location == after.location)
    ).any()


def test_rendezvous_keys_decide_not_positions():
    """The chosen server only depends on (flow, candidate keys): reordering ids moves nothing."""
    doc = {
        "locations": [{"id": "A", "lat": 0, "lon": 0}, {"id": "B", "lat": 0, "lon": 1}],
        "data_centers": [
            {"id": "A1", "location": "A", "servers": ["a1", "a2", "a3", "a4"]},
            {"id": "B1", "location": "B", "servers": [f"b{i}" for i in range(40)]},
        ],
        "pools": [{"id": "p", "ips": [{"address": "192.0.2.1", "holders": ["B1"]}]}],
    }
    e1 = af.Engine(af.Topology.from_dict(doc))
    doc["data_centers"][1]["servers"] = list(reversed(doc["data_centers"][1]["servers"]))
    e2 = af.Engine(af.Topology.from_dict(doc))
    flows = np.arange(500, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    r1 = e1.decide_batch("a1", "p", 4, flows)
    r2 = e2.decide_batch("a1", "p", 4, flows)
    ids1 = np.array(e1.servers)[r1.server]
    ids2 = np.array(e2.servers)[r2.server]
    assert (ids1 == ids2).all()
    assert len(set(ids1.tolist())) > 30  # spread over the candidates


def test_hash_scheme_version_matches():
    from aegisfwd import _core

    assert _core.hashing.HASH_SCHEME_VERSION == _hashing.HASH_SCHEME_VERSION == af.HASH_SCHEME_VERSION
