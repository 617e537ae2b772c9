"""The explorer's what-if session: every answer equals a full recompile decided by af.Engine.

A state change re-decides only the rows it can move, and a placement move decides only the moved
pool's rows with a small moved-pools topology; both shortcuts are held here to the plain path (the
whole what-if topology compiled anew and every row decided again), bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import topologies

import aegisfwd as af
from aegisfwd._ingress import choose_ingress
from aegisfwd.serve import (
    MAX_IPV4_LOCATIONS,
    PlacementError,
    PlacementMove,
    Session,
    log_rows,
    sample_rows,
    summarize,
)
from aegisfwd.serve.session import StateChangeError
from aegisfwd.serve.summary import TIERS, totals_of

LOGS = Path(__file__).parent / "fixtures" / "logs"
TOPOLOGY = LOGS / "topology.yaml"


def expected(session: Session) -> af.BatchResult:
    """The plain path: compile the what-if topology anew, choose every ingress, decide every row."""
    topo = session.topology_now()
    engine = af.Engine(topo)
    assert np.array_equal(engine.states, session.states)  # the YAML download carries the states
    rows = session.rows
    first, end = rows.colo_first[rows.colo], rows.colo_end[rows.colo]
    keys = engine.compiled.arrays["server_key"]
    ingress = choose_ingress(first, end, rows.flow, keys, session.states)
    fallback = ingress < 0
    ingress[fallback] = choose_ingress(
        first[fallback], end[fallback], rows.flow[fallback], keys, np.zeros_like(session.states)
    )
    assert np.array_equal(ingress, session.current.ingress)
    return engine.decide_batch(ingress, rows.pool, rows.family, rows.flow)


def assert_same(session: Session) -> None:
    r = expected(session)
    cur = session.current
    for name in ("tier", "server", "location", "ip"):
        assert np.array_equal(getattr(r, name), getattr(cur, name)), name
    assert np.array_equal(r.distance, cur.distance, equal_nan=True)
    # The summary, updated from the re-decided rows since the last one, equals one counted afresh.
    s = summarize(session)
    fresh = totals_of(session, session.current, slice(0, len(session.rows)))
    assert s["tiers"] == dict(zip(TIERS, fresh.tiers[:5].tolist(), strict=True))
    assert s["changed"]["rows_changed_egress"] == fresh.changed
    assert s["changed"]["rows_changed_location"] == fresh.moved_location
    assert s["added_distance_sum"] == fresh.distance_milli / 1000
    lines = {(a, b): n for a, b, n, _ in s["lines"]}
    li = session.topology.location_index
    for (a, b), n in lines.items():
        assert fresh.flows[li[a], li[b] + 1] == n


def holder_names(topo: af.Topology) -> list[str]:
    return list(topo.server_ids) + list(topo.dc_ids) + list(topo.location_ids)


@settings(max_examples=30)
@given(topologies(min_servers=2, max_pools=4), st.data())
def test_changes_equal_a_full_recompile(topo, data):
    if not (topo.initial_states() == 0).any() or not any(p.ips for p in topo.pools):
        return
    engine = af.Engine(topo)
    rows = sample_rows(topo, engine.compiled, 300, seed=data.draw(st.integers(0, 5)))
    session = Session(topo, rows, engine=engine, threads=1)
    assert_same(session)
    names = holder_names(topo)
    addresses = [ip.address for p in topo.pools for ip in p.ips]
    for _ in range(data.draw(st.integers(1, 5))):
        if data.draw(st.booleans()):
            changes = data.draw(
                st.dictionaries(
                    st.sampled_from(names),
                    st.sampled_from(["up", "draining", "down"]),
                    min_size=1,
                    max_size=3,
                )
            )
            session.set_states(changes)
        else:
            address = data.draw(st.sampled_from(addresses))
            p, k = session.book.find(address)
            holders = session.topology.pools[p].ips[k].holders
            remove = data.draw(st.lists(st.sampled_from(holders), unique=True, max_size=2)) if holders else []
            add = data.draw(st.lists(st.sampled_from(names), unique=True, max_size=2))
            add = [h for h in add if h not in holders]
            try:
                session.move(PlacementMove(address, tuple(add), tuple(remove)))
            except PlacementError:
                continue
        assert_same(session)
    before = session.version
    session.reset()
    assert session.version == before + 1
    assert_same(session)


@pytest.fixture(scope="module")
def log_session() -> Session:
    topo = af.load_topology(TOPOLOGY)
    engine = af.Engine(topo)
    return Session(topo, log_rows(LOGS / "basic.csv", engine.compiled), engine=engine, threads=1)


def test_log_rows_are_what_evaluate_decides(log_session):
    ev = af.evaluate(LOGS / "basic.csv", TOPOLOGY, progress=False)
    s = summarize(log_session)
    assert s["tiers"] == {t: ev.summary.tiers.get(t, 0) for t in s["tiers"]}
    assert log_session.rows.rows_read == ev.summary.rows_in
    assert sum(log_session.rows.rejects.values()) == ev.summary.rows_rejected
    assert s["forwarded_rows"] == ev.summary.forwarded_rows


def test_a_state_change_equals_evaluate_on_the_changed_topology(log_session, tmp_path):
    import yaml

    log_session.reset()
    log_session.set_states({"AMS": "down"})
    doc = log_session.topology_now().to_dict()
    assert doc["server_states"] == {"AMS": "down"}
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(doc))
    ev = af.evaluate(LOGS / "basic.csv", path, progress=False)
    s = summarize(log_session)
    assert s["tiers"] == {t: ev.summary.tiers.get(t, 0) for t in s["tiers"]}
    assert s["tiers"] != s["baseline_tiers"]
    assert s["changed"]["rows_changed_egress"] > 0
    log_session.reset()


def test_placement_rules(log_session):
    log_session.reset()
    with pytest.raises(PlacementError, match="is in no pool"):
        log_session.move(PlacementMove("198.51.100.7", add=("LHR",)))
    with pytest.raises(PlacementError, match="not an IP address"):
        log_session.move(PlacementMove("banana", add=("LHR",)))
    with pytest.raises(PlacementError, match="unknown holder 'XYZ'"):
        log_session.move(PlacementMove("192.0.2.2", add=("XYZ",)))
    with pytest.raises(PlacementError, match="not a holder"):
        log_session.move(PlacementMove("192.0.2.2", remove=("LHR",)))
    with pytest.raises(PlacementError, match="already holds"):
        log_session.move(PlacementMove("192.0.2.2", add=("AMS",)))
    with pytest.raises(PlacementError, match="needs holders"):
        log_session.move(PlacementMove("192.0.2.2"))
    with pytest.raises(PlacementError, match="must be a list"):
        log_session.move(PlacementMove("192.0.2.2", add="LHR"))  # type: ignore[arg-type]
    assert log_session.moves == [] and log_session.version == log_session.version
    r = log_session.move(PlacementMove("192.0.2.2", add=("LHR01",), remove=("AMS",)))
    assert r.after == ("LHR01",) and r.locations == ("LHR",)
    assert_same(log_session)
    log_session.reset()


def test_four_locations_per_ipv4_address():
    locs = [{"id": f"L{i}", "lat": float(i), "lon": 0.0} for i in range(6)]
    dcs = [{"id": f"D{i}", "location": f"L{i}", "servers": [f"s{i}"]} for i in range(6)]
    topo = af.Topology.from_dict(
        {
            "locations": locs,
            "data_centers": dcs,
            "pools": [
                {
                    "id": "p",
                    "ips": [
                        {"address": "192.0.2.1", "holders": ["L0", "D1", "s2", "L3"]},
                        {"address": "2001:db8::/48", "holders": ["L0", "L1", "L2", "L3"]},
                    ],
                }
            ],
        }
    )
    engine = af.Engine(topo)
    session = Session(topo, sample_rows(topo, engine.compiled, 100), engine=engine, threads=1)
    with pytest.raises(PlacementError, match=f"at most {MAX_IPV4_LOCATIONS} locations"):
        session.move(PlacementMove("192.0.2.1", add=("s4",)))
    session.move(PlacementMove("192.0.2.1", add=("s4",), remove=("D1",)))  # a swap keeps four
    session.move(PlacementMove("2001:db8::/48", add=("L4", "L5")))  # IPv6 has no such limit
    assert_same(session)


def test_bad_state_changes_change_nothing(log_session):
    log_session.reset()
    v = log_session.version
    for bad, exc in (
        ({}, StateChangeError),
        ({"LHR": "off"}, StateChangeError),
        ({"NOPE": "down"}, af.UnknownIdError),
        ({"LHR": "down", "NOPE": "down"}, af.UnknownIdError),
        ([("LHR", "down")], StateChangeError),
    ):
        with pytest.raises(exc):
            log_session.set_states(bad)  # type: ignore[arg-type]
    assert log_session.version == v and not log_session.changed_states()


def test_memory_per_row():
    from aegisfwd.serve import ROW_BYTES

    topo = af.load_topology(TOPOLOGY)
    engine = af.Engine(topo)
    rows = sample_rows(topo, engine.compiled, 10_000)
    assert rows.nbytes == ROW_BYTES * 10_000
    session = Session(topo, rows, engine=engine, threads=1)
    assert session.baseline.nbytes == 25 * 10_000  # ingress, tier, server, location, ip, distance


def test_scope_summary_is_the_pool_slice(log_session):
    log_session.reset()
    everything = summarize(log_session)
    per_pool = [summarize(log_session, p) for p in range(len(log_session.pool_ids))]
    for t in everything["tiers"]:
        assert everything["tiers"][t] == sum(s["tiers"][t] for s in per_pool)


def test_baseline_totals_per_scope_are_bounded():
    from aegisfwd.serve.summary import _CACHES, BASELINE_SCOPES

    small = af.Topology.from_dict(
        {
            "locations": [{"id": "A", "lat": 0.0, "lon": 0.0}, {"id": "B", "lat": 10.0, "lon": 10.0}],
            "data_centers": [
                {"id": "A1", "location": "A", "servers": ["a1", "a2"]},
                {"id": "B1", "location": "B", "servers": ["b1"]},
            ],
            "pools": [
                {"id": f"p{k}", "ips": [{"address": f"192.0.2.{k}", "holders": ["A" if k % 2 else "b1"]}]}
                for k in range(40)
            ],
        }
    )
    engine = af.Engine(small)
    session = Session(small, sample_rows(small, engine.compiled, 20_000), engine=engine, threads=1)
    summarize(session)
    for p in range(40):
        summarize(session, p)
    cached = _CACHES[session].baseline
    assert len(cached) <= BASELINE_SCOPES + 1 and None in cached and 39 in cached
