"""``ReferenceEngine`` on small hand-built topologies: every tier, tie and state rule of docs/decision.md."""

from __future__ import annotations

import math
import threading
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import aegisfwd as af
from aegisfwd import _hashing as h
from aegisfwd._explain import explain_request
from aegisfwd.geo import haversine_km, round_distance
from aegisfwd.reference import ReferenceEngine

Tier = af.Tier
FLOWS = range(64)


def world(*, locations: list[dict[str, Any]] | None = None, **extra: Any) -> af.Topology:
    """Locations A (0,0), C (1,0), B (0,1), D (10,10): from A, B and C are equidistant and C is
    listed first; from D, C is nearer. DCs: A1 = a1-s1..3, A2 = a2-s1, B1 = b1-s1..2, C1 = c1-s1,
    D1 = d1-s1."""
    doc: dict[str, Any] = {
        "locations": locations
        or [
            {"id": "A", "lat": 0, "lon": 0},
            {"id": "C", "lat": 1, "lon": 0},
            {"id": "B", "lat": 0, "lon": 1},
            {"id": "D", "lat": 10, "lon": 10},
        ],
        "data_centers": [
            {"id": "A1", "location": "A", "servers": ["a1-s1", "a1-s2", "a1-s3"]},
            {"id": "B1", "location": "B", "servers": ["b1-s1", "b1-s2"]},
            {"id": "A2", "location": "A", "servers": ["a2-s1"]},
            {"id": "C1", "location": "C", "servers": ["c1-s1"]},
            {"id": "D1", "location": "D", "servers": ["d1-s1"]},
        ],
        "pools": [
            {"id": "local", "ips": [{"address": "10.0.0.1", "holders": ["a1-s1"]}]},
            {"id": "dc", "ips": [{"address": "10.0.0.2", "holders": ["a1-s2", "a1-s3"]}]},
            {"id": "loc", "ips": [{"address": "10.0.0.3", "holders": ["A2"]}]},
            {"id": "remote", "ips": [{"address": "10.0.0.4", "holders": ["B", "C"]}]},
            {
                "id": "mixed",
                "ips": [
                    {"address": "10.0.0.5", "holders": []},
                    {"address": "2001:db8:5::/48", "holders": ["A", "B"]},
                    {"address": "2001:db8:6::1", "holders": ["d1-s1"]},
                ],
            },
            {"id": "two", "ips": [{"address": "10.0.0.6", "holders": ["a1-s1", "a1-s2"]}]},
        ],
    }
    doc.update(extra)
    return af.Topology.from_dict(doc)


@pytest.fixture
def ref() -> ReferenceEngine:
    return ReferenceEngine(world())


def km(a: tuple[float, float], b: tuple[float, float]) -> float:
    return round_distance(haversine_km(*a, *b))


def matrix_world(
    matrix: list[list[float | None]], order: list[str] | None = None, **extra: Any
) -> af.Topology:
    """Locations X, Y, Z (one DC, one server each: x-s, y-s, z-s) with an explicit matrix whose
    rows/columns follow ``order`` (default X, Y, Z). Pool ``yz`` is held by y-s and z-s."""
    doc: dict[str, Any] = {
        "locations": [{"id": "X"}, {"id": "Y"}, {"id": "Z"}],
        "data_centers": [{"id": f"{c}1", "location": c, "servers": [f"{c.lower()}-s"]} for c in "XYZ"],
        "pools": [
            {"id": "yz", "ips": [{"address": "10.1.0.1", "holders": ["y-s", "z-s"]}]},
            {"id": "y", "ips": [{"address": "10.1.0.2", "holders": ["Y"]}]},
        ],
        "distances": {"unit": "ms", "locations": order or ["X", "Y", "Z"], "matrix": matrix},
    }
    doc.update(extra)
    return af.Topology.from_dict(doc)


# ---- construction and tables ------------------------------------------------------------------
def test_tables_in_canonical_order(ref: ReferenceEngine) -> None:
    topo = ref.topology
    assert ref.locations == ("A", "C", "B", "D")
    assert ref.dcs == ("A1", "A2", "C1", "B1", "D1")  # by location, then file order
    assert ref.servers == ("a1-s1", "a1-s2", "a1-s3", "a2-s1", "c1-s1", "b1-s1", "b1-s2", "d1-s1")
    assert ref.pools == ("local", "dc", "loc", "remote", "mixed", "two")
    assert ref.ips[4:7] == ("10.0.0.5", "2001:db8:5::/48", "2001:db8:6::1")
    assert ref.servers == topo.server_ids and ref.dcs == topo.dc_ids
    tables = ref.id_tables()
    assert (tables.locations, tables.dcs, tables.servers, tables.pools, tables.ips) == (
        ref.locations,
        ref.dcs,
        ref.servers,
        ref.pools,
        ref.ips,
    )
    assert ref.distance_unit == "km"
    assert "8 servers" in repr(ref)


def test_accepts_an_object_carrying_the_topology() -> None:
    topo = world()
    assert ReferenceEngine(SimpleNamespace(topology=topo)).servers == topo.server_ids


def test_accepts_a_topology_compiled_in_process_but_not_one_loaded_from_bytes() -> None:
    topo = world()
    compiled = topo.compile()
    ref = ReferenceEngine(compiled)
    assert ref.topology is topo and ref.servers == tuple(compiled.servers)
    loaded = af.CompiledTopology.from_bytes(compiled.to_bytes())
    with pytest.raises(TypeError, match="carries no Topology model"):
        ReferenceEngine(loaded)


@pytest.mark.parametrize("bad", [42, None, {"locations": []}, SimpleNamespace(topology=None)])
def test_rejects_anything_else_with_type_error(bad: object) -> None:
    with pytest.raises(TypeError, match="Topology"):
        ReferenceEngine(bad)


# ---- the five tiers ------------------------------------------------------------------------------
def test_local(ref: ReferenceEngine) -> None:
    d = ref.decide("a1-s1", "local", 4, flow=5)
    assert (d.tier, d.server, d.dc, d.location, d.ip, d.distance) == (
        Tier.LOCAL,
        "a1-s1",
        "A1",
        "A",
        "10.0.0.1",
        0.0,
    )
    assert (d.server_index, d.dc_index, d.location_index, d.ip_index) == (0, 0, 0, 0)


def test_same_dc_spreads_over_the_other_holders(ref: ReferenceEngine) -> None:
    targets = {ref.decide("a1-s1", "dc", 4, flow=f).server for f in FLOWS}
    assert targets == {"a1-s2", "a1-s3"}
    d = ref.decide("a1-s1", "dc", 4, flow=1)
    assert (d.tier, d.dc, d.location, d.ip, d.distance) == (Tier.SAME_DC, "A1", "A", "10.0.0.2", 0.0)


def test_same_location(ref: ReferenceEngine) -> None:
    d = ref.decide("a1-s1", "loc", 4)
    assert (d.tier, d.server, d.dc, d.location, d.distance) == (Tier.SAME_LOCATION, "a2-s1", "A2", "A", 0.0)


def test_remote_equidistant_goes_to_first_listed_location(ref: ReferenceEngine) -> None:
    # From A, B (0,1) and C (1,0) are both 111.195 km; C is listed first in `locations`.
    assert km((0, 0), (0, 1)) == km((0, 0), (1, 0))
    for f in FLOWS:
        d = ref.decide("a1-s1", "remote", 4, flow=f)
        assert (d.tier, d.server, d.location, d.distance) == (Tier.REMOTE, "c1-s1", "C", km((0, 0), (1, 0)))


def test_remote_tie_follows_the_listing_order_not_the_names() -> None:
    ref = ReferenceEngine(
        world(
            locations=[
                {"id": "A", "lat": 0, "lon": 0},
                {"id": "B", "lat": 0, "lon": 1},
                {"id": "C", "lat": 1, "lon": 0},
                {"id": "D", "lat": 10, "lon": 10},
            ]
        )
    )
    assert {ref.decide("a1-s1", "remote", 4, flow=f).location for f in FLOWS} == {"B"}


def test_remote_picks_the_closest_location(ref: ReferenceEngine) -> None:
    # From D, C (1491.297 km) is nearer than B (1492.562 km).
    d = ref.decide("d1-s1", "remote", 4, flow=3)
    assert (d.tier, d.server, d.location, d.distance) == (Tier.REMOTE, "c1-s1", "C", km((10, 10), (1, 0)))
    ref.set_state("C", "down")
    d = ref.decide("d1-s1", "remote", 4, flow=3)
    assert (d.tier, d.location, d.distance) == (Tier.REMOTE, "B", km((10, 10), (0, 1)))
    assert d.server in ("b1-s1", "b1-s2")


def test_unavailable(ref: ReferenceEngine) -> None:
    d = ref.decide("a1-s1", "mixed", 4)  # 10.0.0.5 has no holder
    assert d.tier == Tier.UNAVAILABLE
    assert (d.server, d.dc, d.location, d.ip) == (None, None, None, None)
    assert (d.server_index, d.dc_index, d.location_index, d.ip_index) == (-1, -1, -1, -1)
    assert math.isnan(d.distance)


def test_unavailable_when_every_holder_is_out_of_service(ref: ReferenceEngine) -> None:
    ref.set_state("a1-s2", "draining")
    ref.set_state("a1-s3", "down")
    assert ref.decide("d1-s1", "dc", 4).tier == Tier.UNAVAILABLE


def test_family_selects_the_ips_and_prefix_is_answered_as_prefix(ref: ReferenceEngine) -> None:
    d = ref.decide("a1-s2", "mixed", 6, flow=9)
    assert (d.tier, d.server, d.ip) == (Tier.LOCAL, "a1-s2", "2001:db8:5::/48")
    assert ref.decide("a1-s2", "mixed", 4).tier == Tier.UNAVAILABLE
    assert ref.decide("a1-s2", "local", 6).tier == Tier.UNAVAILABLE  # pool has no IPv6 entry
    # d1-s1 holds only the single IPv6 address of the pool.
    d = ref.decide("d1-s1", "mixed", 6)
    assert (d.tier, d.ip) == (Tier.LOCAL, "2001:db8:6::1")


def test_ip_choice_is_rendezvous_among_ips_the_target_holds() -> None:
    topo = af.Topology.from_dict(
        {
            "locations": [{"id": "L", "lat": 0, "lon": 0}],
            "data_centers": [{"id": "L1", "location": "L", "servers": ["s1", "s2"]}],
            "pools": [
                {
                    "id": "p",
                    "ips": [
                        {"address": "192.0.2.1", "holders": ["s1"]},
                        {"address": "192.0.2.2", "holders": ["L"]},
                        {"address": "192.0.2.3", "holders": ["L1"]},
                    ],
                }
            ],
        }
    )
    ref = ReferenceEngine(topo)
    keys = {ip.address: h.ip_key(ip.network) for ip in topo.pools[0].ips}
    seen = set()
    for f in range(200):
        d = ref.decide("s2", "p", 4, flow=f)
        assert d.server == "s2"  # LOCAL: s2 holds 192.0.2.2 and .3, not .1
        held = ["192.0.2.2", "192.0.2.3"]
        expected = max(held, key=lambda a: (h.weight(h.ip_flow_hash(f), keys[a]), keys[a]))
        assert d.ip == expected
        seen.add(d.ip)
    assert seen == {"192.0.2.2", "192.0.2.3"}


def test_server_choice_is_rendezvous_on_stable_keys(ref: ReferenceEngine) -> None:
    for f in FLOWS:
        d = ref.decide("a1-s1", "dc", 4, flow=f)
        expected = max(
            ("a1-s2", "a1-s3"),
            key=lambda s: (h.weight(h.server_flow_hash(f), h.server_key(s)), h.server_key(s)),
        )
        assert d.server == expected


def test_same_request_same_answer(ref: ReferenceEngine) -> None:
    assert (
        ref.decide("a1-s1", "dc", 4, flow=77)
        == ref.decide(0, 1, 4, flow=77)
        == ref.decide(np.int32(0), np.uint64(1), np.int8(4), flow=np.uint64(77))
    )


# ---- distances from a matrix ----------------------------------------------------------------------
def test_matrix_values_equal_after_rounding_tie_to_first_listed() -> None:
    # X->Y 1.0004 and X->Z 0.9996 are both 1.0 once rounded: Y is listed first, so Y wins.
    ref = ReferenceEngine(matrix_world([[0, 1.0004, 0.9996], [1, 0, 1], [1, 1, 0]]))
    for f in FLOWS:
        d = ref.decide("x-s", "yz", 4, flow=f)
        assert (d.tier, d.server, d.location, d.distance) == (Tier.REMOTE, "y-s", "Y", 1.0)


def test_matrix_rounding_does_not_merge_distinct_values() -> None:
    ref = ReferenceEngine(matrix_world([[0, 1.0006, 1.0004], [1, 0, 1], [1, 1, 0]]))
    d = ref.decide("x-s", "yz", 4)
    assert (d.location, d.distance) == ("Z", 1.0)  # 1.001 > 1.0


def test_matrix_row_is_from_and_its_own_location_order_is_honoured() -> None:
    # Matrix rows/columns listed as Z, X, Y. From X: X->Y 9, X->Z 3. Back: Y->X 1, Z->X 20.
    order = ["Z", "X", "Y"]
    matrix = [
        [0, 20, 4],  # from Z: to Z, X, Y
        [3, 0, 9],  # from X
        [5, 1, 0],  # from Y
    ]
    ref = ReferenceEngine(matrix_world(matrix, order))
    assert ref.distance_unit == "ms"
    d = ref.decide("x-s", "yz", 4)
    assert (d.tier, d.location, d.distance) == (Tier.REMOTE, "Z", 3.0)
    ref.set_state("z-s", "down")
    d = ref.decide("x-s", "yz", 4)
    assert (d.location, d.distance) == ("Y", 9.0)


def test_unreachable_location_is_never_chosen() -> None:
    # X cannot reach Y (null): Z is chosen although X->Y would be shorter if it were a number.
    ref = ReferenceEngine(matrix_world([[0, None, 50], [1, 0, 1], [1, 1, 0]]))
    assert ref.decide("x-s", "yz", 4).location == "Z"
    # Pool y is held only in Y: unreachable from X, so UNAVAILABLE; reachable from Z.
    assert ref.decide("x-s", "y", 4).tier == Tier.UNAVAILABLE
    assert ref.decide("z-s", "y", 4).tier == Tier.REMOTE
    ref.set_state("Z", "down")  # the only reachable holder location is out of service
    assert ref.decide("x-s", "yz", 4).tier == Tier.UNAVAILABLE


# ---- states ------------------------------------------------------------------------------------------
def test_draining_and_down_holders_are_excluded(ref: ReferenceEngine) -> None:
    ref.set_state("a1-s2", "draining")
    assert {ref.decide("a1-s1", "dc", 4, flow=f).server for f in FLOWS} == {"a1-s3"}
    ref.set_state("a1-s3", "down")
    # No candidate in A1 any more, none in A2 or elsewhere either.
    assert ref.decide("a1-s1", "dc", 4).tier == Tier.UNAVAILABLE
    ref.set_state("a1-s2", "up")
    assert ref.decide("a1-s1", "dc", 4).server == "a1-s2"


def test_draining_ingress_that_holds_the_ip_is_not_local(ref: ReferenceEngine) -> None:
    ref.set_state("a1-s1", "draining")
    d = ref.decide("a1-s1", "two", 4)
    assert (d.tier, d.server) == (Tier.SAME_DC, "a1-s2")
    # It is the only holder of pool "local": nothing else can egress.
    assert ref.decide("a1-s1", "local", 4).tier == Tier.UNAVAILABLE


def test_down_ingress_is_still_answered_by_the_same_rules(ref: ReferenceEngine) -> None:
    ref.set_state("a1-s1", "down")
    assert ref.decide("a1-s1", "loc", 4).tier == Tier.SAME_LOCATION
    assert ref.decide("a1-s1", "dc", 4).tier == Tier.SAME_DC
    assert ref.decide("a1-s1", "remote", 4).tier == Tier.REMOTE


def test_file_states_most_specific_wins() -> None:
    ref = ReferenceEngine(world(server_states={"a1-s1": "up", "A": "down", "A1": "draining"}))
    assert [ref.get_state(s) for s in ("a1-s1", "a1-s2", "a1-s3", "a2-s1", "b1-s1")] == [
        "up",
        "draining",
        "draining",
        "down",
        "up",
    ]
    assert ref.states.tolist() == [0, 1, 1, 2, 0, 0, 0, 0]
    assert ref.states.dtype == np.uint8
    assert ref.decide("a1-s1", "loc", 4).tier == Tier.UNAVAILABLE  # a2-s1, the only holder, is down
    assert ref.decide("a1-s2", "two", 4).tier == Tier.SAME_DC  # a1-s2 draining: not LOCAL


def test_set_state_on_dc_and_location_overwrites_earlier_settings(ref: ReferenceEngine) -> None:
    ref.set_state("a1-s2", "down")
    ref.set_state("A1", "draining")
    assert [ref.get_state(s) for s in ("a1-s1", "a1-s2", "a1-s3", "a2-s1")] == ["draining"] * 3 + ["up"]
    ref.set_state("A", "up")
    assert ref.states.tolist()[:4] == [0, 0, 0, 0]
    ref.set_state("B", "down")
    assert [ref.get_state(s) for s in ("b1-s1", "b1-s2", "c1-s1")] == ["down", "down", "up"]
    ref.set_state(1, "down")  # a server index
    assert ref.get_state("a1-s2") == "down" and ref.get_state(np.int64(1)) == "down"


def test_set_states_replaces_all_at_once(ref: ReferenceEngine) -> None:
    codes = np.array([2, 1, 0, 0, 0, 0, 1, 2], dtype=np.uint8)
    ref.set_states(codes)
    assert ref.states.tolist() == codes.tolist()
    assert ref.decide("a1-s1", "two", 4).tier == Tier.UNAVAILABLE  # a1-s1 down, a1-s2 draining
    ref.set_states([0] * 8)
    assert ref.decide("a1-s1", "two", 4).tier == Tier.LOCAL
    for bad in ([0] * 7, [0] * 7 + [3], [0.0] * 8, [[0] * 8]):
        with pytest.raises(ValueError, match="states|state codes"):
            ref.set_states(bad)
    assert ref.states.tolist() == [0] * 8


def test_states_property_is_a_copy(ref: ReferenceEngine) -> None:
    states = ref.states
    states[:] = 2
    assert ref.states.tolist() == [0] * 8


@pytest.mark.parametrize("target", ["nope", "local", 8, -1, True, None, 1.0])
def test_set_state_unknown_target(ref: ReferenceEngine, target: object) -> None:
    with pytest.raises(af.UnknownIdError) as exc:
        ref.set_state(target, "down")
    assert repr(target) in str(exc.value)


@pytest.mark.parametrize("state", ["UP", "off", "", 0, None])
def test_set_state_bad_state(ref: ReferenceEngine, state: object) -> None:
    with pytest.raises(ValueError, match="invalid state"):
        ref.set_state("a1-s1", state)  # type: ignore[arg-type]
    assert ref.get_state("a1-s1") == "up"


def test_get_state_unknown_server(ref: ReferenceEngine) -> None:
    with pytest.raises(af.UnknownIdError, match="unknown server: 'A1'"):
        ref.get_state("A1")


def test_a_batch_sees_one_snapshot_of_concurrent_location_changes() -> None:
    ref = ReferenceEngine(world())
    stop = threading.Event()

    def toggle() -> None:
        while not stop.is_set():
            ref.set_state("A", "down")
            ref.set_state("A", "up")

    thread = threading.Thread(target=toggle)
    thread.start()
    try:
        for _ in range(30):
            r = ref.decide_batch(["b1-s1"] * 40, "loc", 4, np.arange(40))
            # Pool "loc" is held by a2-s1 only: every row is REMOTE (A up) or every row UNAVAILABLE.
            assert len(set(r.tier.tolist())) == 1
    finally:
        stop.set()
        thread.join()


# ---- batches -----------------------------------------------------------------------------------------
def test_decide_batch_columns_and_row_order(ref: ReferenceEngine) -> None:
    servers = ["a1-s1", "a1-s1", "a1-s1", "a1-s1", "a1-s1", "d1-s1"]
    pools = ["local", "dc", "loc", "remote", "mixed", "mixed"]
    families = [4, 4, 4, 4, 4, 6]
    flows = np.arange(6, dtype=np.uint64)
    r = ref.decide_batch(servers, pools, families, flows)
    assert r.tier.tolist() == [0, 1, 2, 3, 4, 0]
    assert (r.tier.dtype, r.server.dtype, r.dc.dtype, r.location.dtype, r.ip.dtype, r.distance.dtype) == (
        np.uint8,
        np.int32,
        np.int32,
        np.int32,
        np.int32,
        np.float64,
    )
    for row in range(6):
        assert r.decision(row) == ref.decide(servers[row], pools[row], families[row], int(flows[row]))
    assert r.server[4] == r.dc[4] == r.location[4] == r.ip[4] == -1 and math.isnan(r.distance[4])
    table = r.to_arrow()
    assert table.column("tier").to_pylist() == [
        "LOCAL",
        "SAME_DC",
        "SAME_LOCATION",
        "REMOTE",
        "UNAVAILABLE",
        "LOCAL",
    ]
    assert table.column("ip").to_pylist()[4:] == [None, "2001:db8:6::1"]


def test_decide_batch_mark_answers_bad_rows_invalid(ref: ReferenceEngine) -> None:
    servers = ["a1-s1", "nope", "a1-s1", 99, "a1-s1", "a1-s1"]
    pools = ["dc", "dc", "nope", "dc", "dc", "dc"]
    families = [4, 4, 4, 4, 5, 4]
    flows = [1, 2, 3, 4, 5, -6]
    r = ref.decide_batch(servers, pools, families, flows, errors="mark")
    assert r.tier.tolist() == [1, 255, 255, 255, 255, 255]
    assert r.server.tolist()[1:] == [-1] * 5 and r.ip.tolist()[1:] == [-1] * 5
    assert np.isnan(r.distance[1:]).all()
    assert r.decision(0) == ref.decide("a1-s1", "dc", 4, flow=1)
    assert r.decision(1).tier == Tier.INVALID and r.decision(1).server is None


@pytest.mark.parametrize(
    ("servers", "pools", "families", "flows", "exc", "needle"),
    [
        (
            ["a1-s1", "nope"],
            "dc",
            4,
            [0, 1],
            af.UnknownIdError,
            "unknown server: 'nope' (argument 'servers', row 1)",
        ),
        ([0, 8], "dc", 4, 0, af.UnknownIdError, "unknown server: 8 (argument 'servers', row 1)"),
        ("a1-s1", ["dc", "dc", "x"], 4, 0, af.UnknownIdError, "unknown pool: 'x' (argument 'pools', row 2)"),
        ("a1-s1", "dc", [4, 6, 7], 0, af.InvalidFamilyError, "invalid address family 7"),
        ("a1-s1", "dc", 4, [1, 2**64], ValueError, "invalid flow key 18446744073709551616"),
    ],
)
def test_decide_batch_raise_names_value_and_row(
    ref: ReferenceEngine, servers: Any, pools: Any, families: Any, flows: Any, exc: type, needle: str
) -> None:
    with pytest.raises(exc) as info:
        ref.decide_batch(servers, pools, families, flows)
    assert needle in str(info.value)


def test_decide_batch_shape_errors(ref: ReferenceEngine) -> None:
    with pytest.raises(af.BatchInputError, match="different lengths"):
        ref.decide_batch(["a1-s1"] * 3, ["dc"] * 2, 4, 0)
    with pytest.raises(af.BatchInputError, match="errors must be"):
        ref.decide_batch(["a1-s1"], "dc", 4, 0, errors="ignore")
    with pytest.raises(af.BatchInputError, match="servers must be 1-D"):
        ref.decide_batch(np.zeros((2, 2), dtype=np.int32), "dc", 4, 0)


def test_decide_batch_empty(ref: ReferenceEngine) -> None:
    r = ref.decide_batch([], [], [], [])
    assert len(r) == 0 and r.tier.dtype == np.uint8


# ---- single-call input errors -----------------------------------------------------------------------
@pytest.mark.parametrize("server", ["nope", "A1", "", 8, -1, np.int64(100), True, 1.0, None, b"a1-s1"])
def test_decide_unknown_server(ref: ReferenceEngine, server: object) -> None:
    with pytest.raises(af.UnknownIdError) as info:
        ref.decide(server, "dc", 4)
    assert info.value.kind == "server" and info.value.value is server
    assert str(info.value).startswith("unknown server: ")


@pytest.mark.parametrize("pool", ["nope", "a1-s1", 6, -1, False, None])
def test_decide_unknown_pool(ref: ReferenceEngine, pool: object) -> None:
    with pytest.raises(af.UnknownIdError) as info:
        ref.decide("a1-s1", pool, 4)
    assert info.value.kind == "pool"


@pytest.mark.parametrize("family", [5, 0, "4", 4.0, True, None, np.float64(6)])
def test_decide_invalid_family(ref: ReferenceEngine, family: object) -> None:
    with pytest.raises(af.InvalidFamilyError, match="invalid address family"):
        ref.decide("a1-s1", "dc", family)


@pytest.mark.parametrize("flow", [-1, 2**64, 1.5, "1", None, True])
def test_decide_invalid_flow(ref: ReferenceEngine, flow: object) -> None:
    with pytest.raises(ValueError, match="invalid flow key"):
        ref.decide("a1-s1", "dc", 4, flow=flow)


def test_numpy_signed_flow_is_reinterpreted_bitwise(ref: ReferenceEngine) -> None:
    assert ref.decide("a1-s1", "dc", 4, flow=np.int64(-1)) == ref.decide("a1-s1", "dc", 4, flow=2**64 - 1)
    assert ref.decide("a1-s1", "dc", 4, flow=np.uint64(2**64 - 1)) == ref.decide(
        "a1-s1", "dc", 4, flow=2**64 - 1
    )


def test_input_errors_are_value_errors() -> None:
    assert issubclass(af.UnknownIdError, ValueError)
    assert issubclass(af.InvalidFamilyError, ValueError)
    assert issubclass(af.BatchInputError, ValueError)


# ---- explain ------------------------------------------------------------------------------------------
def test_explain_walks_every_rule_to_unavailable(ref: ReferenceEngine) -> None:
    text = ref.explain("a1-s1", "mixed", 4)
    for needle in (
        "1. LOCAL",
        "2. SAME_DC",
        "3. SAME_LOCATION",
        "4. REMOTE",
        "5. UNAVAILABLE",
        "result: UNAVAILABLE",
    ):
        assert needle in text
    assert "applicable IPs (pool mixed, IPv4): 10.0.0.5" in text


def test_explain_remote_lists_examined_locations_and_excluded_servers(ref: ReferenceEngine) -> None:
    ref.set_state("c1-s1", "draining")
    text = ref.explain("d1-s1", "remote", 4, flow=3)
    d = ref.decide("d1-s1", "remote", 4, flow=3)
    assert d.location == "B"
    assert "C at 1491.3 km: skipped, every holder is out of service: c1-s1 (draining)" in text
    assert "B at 1492.56 km: chosen, 2 candidate(s)" in text
    assert "A at 1568.52 km" not in text  # not examined: B came first
    assert "<- egress server" in text and d.server in text
    assert f"result: REMOTE: egress server {d.server} (DC B1, location B), source IP 10.0.0.4" in text


def test_explain_local_and_later_rules_not_tried(ref: ReferenceEngine) -> None:
    text = ref.explain("a1-s1", "local", 4)
    assert "1. LOCAL: the ingress server itself [a1-s1]: applies (1 candidate(s))" in text
    assert "2. SAME_DC: not tried" in text and "4. REMOTE: not tried" in text
    assert (
        text.splitlines()[-1]
        == "result: LOCAL: egress server a1-s1 (DC A1, location A), source IP 10.0.0.1, distance 0"
    )


def test_explain_mentions_out_of_service_ingress_and_unreachable() -> None:
    ref = ReferenceEngine(matrix_world([[0, None, 50], [1, 0, 1], [1, 1, 0]]))
    ref.set_state("x-s", "draining")
    text = ref.explain("x-s", "yz", 4)
    assert "ingress server is draining" in text
    assert "unreachable (null in the matrix), never chosen: Y" in text
    assert "Z at 50 ms: chosen" in text


def test_explain_request_reuses_states_and_returns_the_decision() -> None:
    topo = world()
    ref = ReferenceEngine(topo)
    states = np.zeros(len(topo.server_ids), dtype=np.uint8)
    states[topo.server_index["a1-s2"]] = 2
    text, decision = explain_request(topo, states, "a1-s1", "dc", 4, 7)
    assert decision.server == "a1-s3"
    ref.set_state("a1-s2", "down")
    assert decision == ref.decide("a1-s1", "dc", 4, flow=7)
    assert "a1-s2 (down)" in text
    with pytest.raises(ValueError, match="states has 3 entries"):
        explain_request(topo, states[:3], "a1-s1", "dc", 4)
    with pytest.raises(af.UnknownIdError):
        explain_request(topo, states, "a1-s1", "nope", 4)
