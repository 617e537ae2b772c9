"""The public ``af.Engine``: hashing and SIMD kernels against the Python scheme, the world topology
against the reference on a sample (long candidate lists exercise the vector code), the API around
decisions (states, explain, pickling, backends)."""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np
import pytest

import aegisfwd as af
from aegisfwd import _core, _fast
from aegisfwd import _hashing as H
from aegisfwd.engine import available_isas

ISAS = available_isas()

DOC = {
    "locations": [
        {"id": "LHR", "lat": 51.47, "lon": -0.45},
        {"id": "AMS", "lat": 52.31, "lon": 4.76},
        {"id": "SYD", "lat": -33.95, "lon": 151.18},
    ],
    "data_centers": [
        {"id": "LHR01", "location": "LHR", "servers": ["lhr01-s001", "lhr01-s002"]},
        {"id": "LHR02", "location": "LHR", "servers": ["lhr02-s001"]},
        {"id": "AMS01", "location": "AMS", "servers": ["ams01-s001", "ams01-s002"]},
        {"id": "SYD01", "location": "SYD", "servers": ["syd01-s001"]},
    ],
    "server_states": {"lhr01-s002": "draining"},
    "pools": [
        {
            "id": "acme",
            "ips": [
                {"address": "192.0.2.10", "holders": ["LHR02"]},
                {"address": "192.0.2.11", "holders": ["ams01-s002"]},
                {"address": "2001:db8:a::/48", "holders": ["LHR", "AMS"]},
            ],
        },
        {"id": "empty", "ips": []},
    ],
}


@pytest.fixture(scope="module")
def topo():
    return af.Topology.from_dict(DOC)


@pytest.fixture
def engine(topo):
    return af.Engine(topo)


# ---- hashing scheme v1: C++ == Python, bit for bit --------------------------------------------
def test_mix64_and_weights_match_python():
    rng = np.random.default_rng(7)
    values = [0, 1, 2**63, 2**64 - 1, 0x9E3779B97F4A7C15] + [
        int(v) for v in rng.integers(0, 2**64, 500, dtype=np.uint64)
    ]
    for x in values:
        assert _core.hashing.mix64(x) == H.mix64(x) == _fast.mix64(x)
        assert _core.hashing.server_flow_hash(x) == H.server_flow_hash(x)
        assert _core.hashing.ip_flow_hash(x) == H.ip_flow_hash(x)
        assert _core.hashing.ingress_flow_hash(x) == H.ingress_flow_hash(x)
        assert _core.hashing.weight(x, 12345) == H.weight(x, 12345)
    assert _core.hashing.mix64(0) == 0
    assert _core.hashing.mix64(1) == 0x5692161D100B05E5  # SplitMix64 finalizer of 1: a pinned answer


@pytest.mark.parametrize("isa", ISAS)
def test_simd_rendezvous_matches_python(topo, isa):
    """Every length around the vector widths and tails, with and without duplicate keys."""
    core = _core.engine.Engine(topo.compile().arrays, None, isa)
    assert core.isa == isa
    rng = np.random.default_rng(11)
    for n in [*range(1, 70), 100, 127, 128, 129, 257, 1000]:
        for trial in range(12):
            keys = rng.integers(0, 2**64, n, dtype=np.uint64)
            if trial % 3 == 0:
                keys[rng.integers(0, n)] = keys[rng.integers(0, n)]  # equal weights: key breaks the tie
            if trial % 4 == 1:
                keys[:] = np.sort(keys)  # adversarial orders
            h = int(rng.integers(0, 2**64, dtype=np.uint64))
            expected = H.rendezvous(h, range(n), keys)
            got = core.argmax(keys, h)
            assert keys[got] == keys[expected], (isa, n, trial)
    # Keys whose top bit is set everywhere (the AVX2 kernel compares biased values).
    keys = (rng.integers(0, 2**63, 64, dtype=np.uint64) | np.uint64(2**63)).astype(np.uint64)
    for h in range(200):
        assert keys[core.argmax(keys, h)] == keys[H.rendezvous(h, range(64), keys)]


# ---- the world topology: long lists, big layouts, every kernel ----------------------------------
@pytest.fixture(scope="module")
def world():
    import aegisfwd.datasets as ds

    topo = ds.world()
    return topo, topo.compile(), ds.requests(topo, 3000, seed=5)


@pytest.mark.parametrize("isa", ISAS)
def test_world_sample_equals_reference(world, isa):
    topo, compiled, req = world
    ref = af.ReferenceEngine(topo)
    eng = af.Engine(compiled, isa=isa)
    got = eng.decide_batch(req.server, req.pool, req.family, req.flow)
    # A state change that empties some lists and shrinks others, then the same again.
    for target in (topo.location_ids[0], topo.dc_ids[5], topo.server_ids[100]):
        for e in (ref, eng):
            e.set_state(target, "down")
    expected_after = ref.decide_batch(req.server[:1500], req.pool[:1500], req.family[:1500], req.flow[:1500])
    after = eng.decide_batch(req.server[:1500], req.pool[:1500], req.family[:1500], req.flow[:1500])
    for name in ("tier", "server", "dc", "location", "ip", "distance"):
        assert np.array_equal(getattr(after, name), getattr(expected_after, name), equal_nan=True), name
    ref2 = af.ReferenceEngine(topo)
    expected = ref2.decide_batch(req.server, req.pool, req.family, req.flow)
    for name in ("tier", "server", "dc", "location", "ip", "distance"):
        assert np.array_equal(getattr(got, name), getattr(expected, name), equal_nan=True), name
    tiers = np.bincount(got.tier, minlength=5)
    assert tiers[af.Tier.REMOTE] > 1000 and tiers[af.Tier.LOCAL] > 50  # the paths were exercised


# ---- API ----------------------------------------------------------------------------------------
def test_decide_by_id_and_index(engine, topo):
    d = engine.decide("lhr01-s001", "acme", 4, flow=0x9E3779B97F4A7C15)
    assert d.tier == af.Tier.SAME_LOCATION and d.server == "lhr02-s001" and d.ip == "192.0.2.10"
    assert d.dc == "LHR02" and d.location == "LHR" and d.distance == 0.0
    assert isinstance(d.tier, af.Tier)
    same = engine.decide(topo.server_index["lhr01-s001"], topo.pool_index["acme"], 4, 0x9E3779B97F4A7C15)
    assert same == d
    v6 = engine.decide("lhr01-s001", "acme", 6, 5)
    assert v6.tier == af.Tier.LOCAL and v6.ip == "2001:db8:a::/48"
    none = engine.decide("syd01-s001", "empty", 4, 5)
    assert none.tier == af.Tier.UNAVAILABLE and none.server is None and math.isnan(none.distance)
    assert none == af.ReferenceEngine(topo).decide("syd01-s001", "empty", 4, 5)


def test_remote_distance_and_states(engine, topo):
    ref = af.ReferenceEngine(topo)
    engine.set_state("LHR02", "down")
    ref.set_state("LHR02", "down")
    d = engine.decide("lhr01-s001", "acme", 4, 1)
    assert d.tier == af.Tier.REMOTE and d.location == "AMS" and d.server == "ams01-s002"
    assert d.distance == ref.decide("lhr01-s001", "acme", 4, 1).distance > 300
    assert engine.get_state("lhr02-s001") == "down"
    assert engine.get_state("lhr01-s002") == "draining"  # from server_states
    assert engine.states.tolist() == ref.states.tolist()
    engine.set_state("AMS", "draining")
    assert engine.decide("lhr01-s001", "acme", 4, 1).tier == af.Tier.UNAVAILABLE
    engine.set_state(topo.server_index["ams01-s002"], "up")
    assert engine.decide("lhr01-s001", "acme", 4, 1).server == "ams01-s002"
    engine.set_states(["up"] * len(topo.server_ids))
    assert engine.states.tolist() == [0] * len(topo.server_ids)


def test_set_state_errors(engine):
    with pytest.raises(af.UnknownIdError, match="nope"):
        engine.set_state("nope", "down")
    with pytest.raises(af.UnknownIdError):
        engine.set_state(10**6, "down")
    with pytest.raises(ValueError, match="invalid state"):
        engine.set_state("LHR", "sleeping")
    with pytest.raises(ValueError, match="one state per server"):
        engine.set_states([0, 1])


def test_explain_uses_live_states(engine, topo):
    ref = af.ReferenceEngine(topo)
    engine.set_state("lhr02-s001", "down")
    ref.set_state("lhr02-s001", "down")
    text = engine.explain("lhr01-s001", "acme", 4, 1)
    assert text == ref.explain("lhr01-s001", "acme", 4, 1)
    assert "REMOTE" in text and "ams01-s002" in text


def test_explain_from_compiled_tables_alone(topo):
    loaded = af.CompiledTopology.from_bytes(topo.compile().to_bytes())
    eng = af.Engine(loaded)
    assert eng.decide("lhr01-s001", "acme", 4, 1) == af.ReferenceEngine(topo).decide(
        "lhr01-s001", "acme", 4, 1
    )
    # the model is rebuilt from the tables: the same trace as an engine built from the Topology
    assert eng.explain("lhr01-s001", "acme", 4, 1) == af.Engine(topo).explain("lhr01-s001", "acme", 4, 1)


def test_pickle_round_trip_keeps_states(engine, topo):
    engine.set_state("LHR02", "down")
    blob = pickle.dumps(engine)
    again = pickle.loads(blob)
    assert isinstance(again, af.Engine) and again.backend == "compiled"
    assert again.states.tolist() == engine.states.tolist()
    flows = np.arange(200, dtype=np.uint64)
    a = engine.decide_batch("lhr01-s001", "acme", 4, flows)
    b = again.decide_batch("lhr01-s001", "acme", 4, flows)
    assert a.equals(b)
    # One flat buffer: the compiled file bytes followed by one state byte per server.
    compiled_bytes = engine.compiled.to_bytes()
    assert engine.__reduce__()[1][0] == compiled_bytes + engine.states.tobytes()


def test_fast_decision_behaves_like_decision(engine):
    d = engine.decide("lhr01-s001", "acme", 4, 7)
    plain = d.to_decision()
    assert type(plain) is af.Decision and plain == d and d == plain
    assert (d != plain) is False
    assert pickle.loads(pickle.dumps(d)) == d
    assert type(pickle.loads(pickle.dumps(d))) is af.Decision
    assert {d, plain} == {plain}
    assert d != engine.decide("lhr01-s001", "acme", 6, 7)
    assert (d == 3) is False
    with pytest.raises(TypeError):
        type(d)()


def test_decide_indices(engine, topo):
    s, p = topo.server_index["lhr01-s001"], topo.pool_index["acme"]
    d = engine.decide(s, p, 4, 9)
    assert engine.decide_indices(s, p, 4, 9) == (
        int(d.tier),
        d.server_index,
        d.dc_index,
        d.location_index,
        d.ip_index,
        d.distance,
    )
    bad = engine.decide_indices(-1, p, 4, 9)
    assert bad[:5] == (255, -1, -1, -1, -1) and math.isnan(bad[5])
    assert engine.decide_indices(s, p, 5, 9)[0] == 255


def test_reference_backend(topo, monkeypatch):
    eng = af.Engine(topo, backend="reference")
    assert eng.backend == "reference" and eng.isa == "reference"
    d = eng.decide("lhr01-s001", "acme", 4, 3)
    assert type(d) is af.Decision and d == af.Engine(topo).decide("lhr01-s001", "acme", 4, 3)
    eng.set_state("LHR02", "down")
    assert eng.get_state("lhr02-s001") == "down"
    again = pickle.loads(pickle.dumps(eng))
    assert again.backend == "reference" and again.states.tolist() == eng.states.tolist()
    monkeypatch.setenv("AEGISFWD_ENGINE", "reference")
    assert af.Engine(topo).backend == "reference"
    monkeypatch.setenv("AEGISFWD_ENGINE", "compiled")
    assert af.Engine(topo).backend == "compiled"
    with pytest.raises(ValueError, match="backend"):
        af.Engine(topo, backend="gpu")


def test_isa_selection(topo, monkeypatch):
    assert "generic" in ISAS
    assert af.Engine(topo).isa == ISAS[-1]
    for isa in ISAS:
        assert af.Engine(topo, isa=isa).isa == isa
    monkeypatch.setenv("AEGISFWD_ISA", "generic")
    assert af.Engine(topo).isa == "generic"
    with pytest.raises(ValueError, match="isa"):
        af.Engine(topo, isa="sse9")


def test_tables_and_repr(engine, topo):
    assert engine.servers == topo.server_ids and engine.pools == topo.pool_ids
    assert engine.dcs == topo.dc_ids and engine.locations == topo.location_ids
    assert engine.ips == af.ReferenceEngine(topo).ips
    assert engine.distance_unit == "km"
    assert engine.compiled.counts["servers"] == len(topo.server_ids)
    assert engine.topology is topo
    assert engine.build_stats["build_ms"] >= 0
    assert "Engine(3 locations" in repr(engine)
    r = engine.decide_batch(["lhr01-s001", "ams01-s001"], "acme", 4, [1, 2])
    assert r.to_arrow().column("server").to_pylist()[0] is not None


def test_batch_threads_argument(engine):
    flows = np.arange(100_000, dtype=np.uint64)
    one = engine.decide_batch("lhr01-s001", "acme", 4, flows, threads=1)
    two = engine.decide_batch("lhr01-s001", "acme", 4, flows, threads=2)
    assert one.equals(two)
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="threads"):
            engine.decide_batch("lhr01-s001", "acme", 4, flows, threads=bad)


def test_scalar_answers_of_every_engine_are_decisions() -> None:
    topo = af.load_topology(Path(__file__).parent / "fixtures" / "topologies" / "spec-example.yaml")
    for engine in (af.Engine(topo), af.ReferenceEngine(topo)):
        assert isinstance(engine.decide("lhr01-s001", "acme", 4, flow=1), af.Decision)
