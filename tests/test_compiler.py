"""The compiler (``docs/compiled-format.md``): what the tables say and how they are interned.

Every compiled topology here is checked against ``expected_tables`` (tests/compiled_model.py): a
slow, obviously-correct recomputation from the dataclasses, never from the compiler's own helpers.

``python tests/test_compiler.py`` measures compile and load times on the world topology.
"""

from __future__ import annotations

import atexit
import functools
import math
import os
import pickle
import shutil
import tempfile
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from compiled_model import (  # tests/compiled_model.py
    INT32_MAX,
    assert_matches_model,
    assert_same_tables,
    ip,
    net,
    spec_topology,
    synthetic_world,
)
from hypothesis import given
from hypothesis import strategies as st

from aegisfwd import _hashing
from aegisfwd.compiled import (
    CompiledTopology,
    compile_topology,
    load_compiled,
)
from aegisfwd.errors import TopologyError
from aegisfwd.topology import AegisIP, DataCenter, DistanceMatrix, Location, Pool, Topology


def test_spec_example_facts() -> None:
    topo = spec_topology()
    c = compile_topology(topo)
    assert_matches_model(topo, c)
    a = c.arrays
    # DCs sorted by location although AMS01 comes first in the file; EMPTY has an empty range at the end.
    assert c.dcs == ["LHR01", "LHR02", "AMS01"]
    assert c.servers == ["lhr01-s001", "lhr01-s002", "lhr02-s001", "ams01-s001", "ams01-s002"]
    assert a["location_dc_start"].tolist() == [0, 2, 3, 3]
    assert a["location_server_start"].tolist() == [0, 3, 5, 5]
    assert a["server_initial_state"].tolist() == [0, 1, 0, 2, 2]
    # LHR02 -> [2, 3); ams01-s002 -> [4, 5); LHR + AMS + EMPTY merge into one range [0, 5).
    assert a["ip_holder_ranges"].tolist() == [[2, 3], [4, 5], [0, 5]]
    assert a["ip_holder_start"].tolist() == [0, 1, 2, 3]
    assert c.ips == ["192.0.2.10", "192.0.2.11", "2001:db8:a::/48"]
    assert a["zone_pool"].tolist() == [0, 0]
    assert c.zone_index == {"example.com": 0, "shop.example": 1}
    assert c.topology is topo
    assert c.distance_unit == "km" and c.hash_scheme == _hashing.HASH_SCHEME_VERSION
    tables = c.id_tables()
    assert (tables.locations, tables.dcs, tables.servers, tables.pools, tables.ips) == (
        c.locations,
        c.dcs,
        c.servers,
        c.pools,
        c.ips,
    )


def test_states_most_specific_wins() -> None:
    topo = spec_topology(
        server_states={"LHR": "down", "LHR01": "draining", "lhr01-s001": "up", "ams01-s001": "draining"}
    )
    c = compile_topology(topo)
    # lhr01-s001: its own entry; lhr01-s002: its DC; lhr02-s001: its location; AMS: untouched but one.
    assert c["server_initial_state"].tolist() == [0, 1, 2, 1, 0]
    assert_matches_model(topo, c)


def test_distance_matrix_rounded_unreachable_and_reordered() -> None:
    topo = spec_topology(
        distances=DistanceMatrix(
            "ms",
            ("EMPTY", "AMS", "LHR"),  # its own order: rows must be mapped back to the location order
            (
                (0.0, 3.00049, None),
                (2.0, 0.0, 7.4),
                (2.0004, 7.1, 0.0),
            ),
        )
    )
    c = compile_topology(topo)
    assert c.distance_unit == "ms"
    d = c["location_distance"]
    # rows/columns in location order LHR, AMS, EMPTY
    np.testing.assert_array_equal(d, [[0.0, 7.1, 2.0], [7.4, 0.0, 2.0], [math.nan, 3.0, 0.0]])
    # LHR: EMPTY (2.0) then AMS (7.1); AMS: EMPTY (2.0) then LHR; EMPTY reaches only AMS.
    assert c["nearest_order"].tolist() == [[2, 1, -1], [2, 0, -1], [1, -1, -1]]
    assert c["nearest_rank"].tolist() == [
        [INT32_MAX, 1, 0],
        [1, INT32_MAX, 0],
        [INT32_MAX, 0, INT32_MAX],
    ]
    assert_matches_model(topo, c)


def test_nearest_ties_break_by_location_index() -> None:
    # Four points at exactly the same great-circle distance from (0, 0), and one farther away.
    locations = (
        Location("far", lat=10.0, lon=10.0),
        Location("east", lat=0.0, lon=1.0),
        Location("origin", lat=0.0, lon=0.0),
        Location("north", lat=1.0, lon=0.0),
        Location("west", lat=0.0, lon=-1.0),
    )
    topo = Topology(locations, (DataCenter("D", "origin", ("s",)),), ())
    c = compile_topology(topo)
    assert c["nearest_order"][2].tolist() == [1, 3, 4, 0, -1]
    assert c["nearest_rank"][2].tolist() == [3, 0, INT32_MAX, 1, 2]
    assert_matches_model(topo, c)


def test_nearest_ties_after_rounding_and_unreachable_rows() -> None:
    ids = ("A", "B", "C", "D")
    matrix = (
        (0.0, 1.0004, 0.9996, None),  # B and C are both 1.0 after rounding: B (index 1) first
        (None, 0.0, None, None),  # B reaches nobody
        (5.0, 5.0, 0.0, 5.0),
        (0.0, 0.0, 0.0, 0.0),  # zero distance to others is a distance, not "unreachable"
    )
    topo = Topology(tuple(Location(i) for i in ids), (), (), distances=DistanceMatrix("km", ids, matrix))
    c = compile_topology(topo)
    assert c["nearest_order"].tolist() == [[1, 2, -1, -1], [-1, -1, -1, -1], [0, 1, 3, -1], [0, 1, 2, -1]]
    assert c["nearest_rank"][1].tolist() == [INT32_MAX] * 4
    assert c.counts["servers"] == 0 and c.counts["lists"] == 0
    assert_matches_model(topo, c)


def test_interning_shares_lists_and_layouts() -> None:
    locations = tuple(Location(x, lat=float(k), lon=0.0) for k, x in enumerate(("L0", "L1", "L2")))
    dcs = (
        DataCenter("L0a", "L0", ("a1", "a2", "a3")),
        DataCenter("L0b", "L0", ("b1",)),
        DataCenter("L1a", "L1", ("c1", "c2")),
        DataCenter("L2a", "L2", ("d1",)),
    )
    everywhere = ("L0", "L1", "L2")
    pools = (
        # same placement, named differently (DC vs its servers, two IPs vs one): one layout
        Pool("p", (ip("192.0.2.1", "L0a"), ip("192.0.2.2", "c1"), ip("2001:db8:1::/48", *everywhere))),
        Pool("q", (ip("192.0.2.3", "a1", "a2", "a3", "c1"), ip("2001:db8:2::/48", "L2", "L1", "L0"))),
        # shares the L0 list with p and q, but differs in L1: another layout
        Pool("r", (ip("192.0.2.4", "L0a", "c2"), ip("2001:db8:3::/48", "L0a", "L0b", "L1a", "L2a"))),
        # all servers of L1 as an IPv4 placement: the same list as the IPv6 ranges use in L1
        Pool("s", (ip("192.0.2.5", "L1"),)),
    )
    topo = Topology(locations, dcs, pools)
    c = compile_topology(topo)
    assert_matches_model(topo, c)
    layout = c["group_layout"].tolist()
    p4, p6, q4, q6, r4, r6, s4, s6 = layout
    assert p4 == q4 != r4  # identical IPv4 placement -> one layout
    assert p6 == q6 == r6  # every IPv6 range covers all servers -> one layout
    assert s6 == -1  # no IPv6 range in pool s
    entries = c["layout_list"][c["layout_start"][p4] : c["layout_start"][p4 + 1]].tolist()
    r_entries = c["layout_list"][c["layout_start"][r4] : c["layout_start"][r4 + 1]].tolist()
    assert entries[0] == r_entries[0]  # the L0 list "a1 a2 a3" is shared by different layouts
    v6_lists = c["layout_list"][c["layout_start"][p6] : c["layout_start"][p6 + 1]].tolist()
    assert c["layout_location"][c["layout_start"][p6] : c["layout_start"][p6 + 1]].tolist() == [0, 1, 2]
    s_lists = c["layout_list"][c["layout_start"][s4] : c["layout_start"][s4 + 1]].tolist()
    assert s_lists == [v6_lists[1]]  # "all servers of L1"
    assert c.counts["layouts"] == 4 and c.counts["lists"] == 6


def test_world_shape_interning_of_global_ipv6() -> None:
    topo = synthetic_world(locations=12, servers=300, pools=200, seed=3)
    c = compile_topology(topo)
    assert_matches_model(topo, c)
    v6 = c["group_layout"][1::2]
    has_v6 = [any(x.network.version == 6 for x in pool.ips) for pool in topo.pools]
    assert len(set(v6[has_v6].tolist())) == 1  # all global IPv6 ranges share one layout
    assert (v6[~np.array(has_v6)] == -1).all()


def test_empty_holders_pool_without_holders_location_without_dcs() -> None:
    topo = Topology(
        (
            Location("X", lat=0.0, lon=0.0),
            Location("NODC", lat=1.0, lon=1.0),
            Location("Y", lat=2.0, lon=2.0),
        ),
        (DataCenter("X1", "X", ("x1", "x2")), DataCenter("Y1", "Y", ("y1",)), DataCenter("Y2", "Y", ())),
        (
            Pool("reserved", (ip("192.0.2.1"), ip("2001:db8::1"))),  # no holders at all
            Pool("empty", ()),  # no IPs
            Pool(
                "nodc", (ip("192.0.2.2", "NODC", "Y2"), ip("192.0.2.3", "NODC", "x2"))
            ),  # holders w/o servers
            Pool("mixed", (ip("192.0.2.4"), ip("192.0.2.5", "y1"))),
        ),
    )
    c = compile_topology(topo)
    assert_matches_model(topo, c)
    assert c["location_server_start"].tolist() == [0, 2, 2, 3]
    assert c["location_dc_start"].tolist() == [0, 1, 1, 3]
    assert c["group_layout"].tolist()[:6] == [-1, -1, -1, -1, 0, -1]
    ranges = c["ip_holder_ranges"]
    start = c["ip_holder_start"].tolist()
    assert start[:4] == [0, 0, 0, 0]  # the reserved IPs and the "NODC"/empty-DC IP hold nothing
    assert ranges[start[3] : start[4]].tolist() == [[1, 2]]
    assert c["layout_location"].tolist() == [0, 2]


def test_key_collisions_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    topo = spec_topology()
    monkeypatch.setattr(
        _hashing, "server_key", lambda sid: 7 if sid in ("lhr01-s002", "ams01-s001") else hash(sid) % 2**60
    )
    with pytest.raises(TopologyError) as info:
        compile_topology(topo)
    (issue,) = info.value.errors
    assert issue.code == "key-collision"
    assert "lhr01-s002" in issue.message and "ams01-s001" in issue.message
    assert issue.path.startswith("data_centers[")
    monkeypatch.undo()

    monkeypatch.setattr(_hashing, "ip_key", lambda network: 5 if network.version == 4 else 6)
    with pytest.raises(TopologyError) as info:
        compile_topology(topo)
    (issue,) = info.value.errors
    assert issue.code == "key-collision" and issue.path == "pools[0].ips[1]"
    assert "192.0.2.10" in issue.message and "192.0.2.11" in issue.message
    # The same key in two different pools is no collision: keys are compared within a pool.
    two_pools = spec_topology(
        pools=(Pool("a", (ip("192.0.2.1", "LHR"),)), Pool("b", (ip("192.0.2.2", "LHR"),))), zones={}
    )
    compile_topology(two_pools)


def test_duplicate_server_and_unknown_holder() -> None:
    dup = spec_topology(
        data_centers=(DataCenter("LHR01", "LHR", ("s1", "s2")), DataCenter("AMS01", "AMS", ("s2",)))
    )
    with pytest.raises(TopologyError) as info:
        compile_topology(dup)
    assert info.value.errors[0].code == "key-collision" and "listed twice" in info.value.errors[0].message

    unknown = spec_topology(pools=(Pool("acme", (ip("192.0.2.10", "LHR02", "nowhere"),)),))
    with pytest.raises(TopologyError) as info:
        compile_topology(unknown)
    assert [(e.code, e.path) for e in info.value.errors] == [("unknown-holder", "pools[0].ips[0].holders[1]")]

    with pytest.raises(TopologyError) as info:
        compile_topology(spec_topology(zones={"example.com": "nobody"}))
    assert [(e.code, e.path) for e in info.value.errors] == [("unknown-pool", 'zones["example.com"]')]


def test_compiled_ids_and_lookups_decode_lazily_from_a_file() -> None:
    topo = spec_topology(
        locations=(
            Location("LHR", lat=51.47, lon=-0.45),
            Location("AMS", lat=52.31, lon=4.76),
            Location("Zürich", lat=47.46, lon=8.55),
        ),
        pools=(Pool("acme", (ip("192.0.2.10", "Zürich", "AMS01"),)),),
        zones={"bücher.example": "acme"},
    )
    loaded = CompiledTopology.from_bytes(compile_topology(topo).to_bytes())
    assert "servers" not in loaded.__dict__  # nothing decoded at load
    assert loaded.locations == ["LHR", "AMS", "Zürich"]
    assert loaded.location_index == {"LHR": 0, "AMS": 1, "Zürich": 2}
    assert loaded.dc_index == {"LHR01": 0, "LHR02": 1, "AMS01": 2}
    assert loaded.pool_index == {"acme": 0}
    assert loaded.zones == ["bücher.example"] and loaded.zone_index == {"bücher.example": 0}
    assert loaded.servers is loaded.servers  # cached
    assert loaded.topology is None


# ---------------------------------------------------------------------------------------------
# properties over random topologies
# ---------------------------------------------------------------------------------------------

_TMP = tempfile.mkdtemp(prefix="aegisfwd-test-compiled-")  # hypothesis examples cannot use tmp_path
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)


def _round_trips(topo: Topology) -> None:
    c = compile_topology(topo)
    assert_matches_model(topo, c)
    data = c.to_bytes()
    assert_same_tables(c, CompiledTopology.from_bytes(data))
    path = os.path.join(_TMP, "t.aegis")
    c.save(path)
    loaded = load_compiled(path)
    assert_same_tables(c, loaded)
    assert loaded.servers == c.servers and loaded.ips == c.ips and loaded.zones == c.zones
    assert pickle.loads(pickle.dumps(loaded)).to_bytes() == data


@st.composite
def shared_placement_topologies(draw: Any) -> Topology:
    """Few servers, many pools drawing holders from a small menu: interning gets exercised."""
    n_loc = draw(st.integers(1, 4))
    locations = tuple(
        Location(f"L{k}", lat=float(draw(st.sampled_from((0, 1, 2)))), lon=0.0) for k in range(n_loc)
    )
    dcs, count = [], 0
    for k in range(draw(st.integers(0, 5))):
        size = draw(st.integers(0, 4))
        dcs.append(
            DataCenter(
                f"D{k}", f"L{draw(st.integers(0, n_loc - 1))}", tuple(f"s{count + j}" for j in range(size))
            )
        )
        count += size
    names = [s for dc in dcs for s in dc.servers] + [dc.id for dc in dcs] + [loc.id for loc in locations]
    menu = draw(st.lists(st.lists(st.sampled_from(names), max_size=4).map(tuple), min_size=1, max_size=3))
    pools, n = [], 0
    for p in range(draw(st.integers(0, 6))):
        ips = []
        for _ in range(draw(st.integers(0, 3))):
            text = f"10.0.{n // 256}.{n % 256}" if draw(st.booleans()) else f"2001:db8:{n:x}::/48"
            ips.append(AegisIP(net(text), draw(st.sampled_from(menu))))
            n += 1
        pools.append(Pool(f"p{p}", tuple(ips)))
    states = draw(
        st.dictionaries(st.sampled_from(names), st.sampled_from(("up", "draining", "down")), max_size=3)
    )
    return Topology(locations, tuple(dcs), tuple(pools), states)


@given(shared_placement_topologies())
def test_random_shared_placements(topo: Topology) -> None:
    _round_trips(topo)


try:
    from strategies import topologies as _shared  # tests/strategies.py, shared by the engine tests

    shared_topologies: Any = _shared
except ImportError:  # pragma: no cover - run from elsewhere
    shared_topologies = None


@pytest.mark.skipif(shared_topologies is None, reason="tests/strategies.py not importable")
@given(st.data())
def test_random_topologies(data: Any) -> None:
    _round_trips(data.draw(shared_topologies(min_servers=0)))


# ---------------------------------------------------------------------------------------------
# world scale
# ---------------------------------------------------------------------------------------------


def test_world_scale_tables_stay_small() -> None:
    """A quarter-scale world keeps the structure's sizes: tables well under 64 MiB / 4."""
    topo = synthetic_world(locations=337, servers=15_000, pools=5_000, seed=1)
    c = compile_topology(topo)
    assert c.nbytes < 16 * 2**20
    v6 = c["group_layout"][1::2]
    assert len(set(v6[v6 >= 0].tolist())) == 1
    loaded = CompiledTopology.from_bytes(c.to_bytes())
    assert_same_tables(c, loaded)


def _bench() -> None:  # pragma: no cover - a measurement, run by hand
    import time

    def best(f: Callable[[], Any], n: int) -> tuple[float, Any]:
        times, out = [], None
        for _ in range(n):
            t0 = time.perf_counter()
            out = f()
            times.append(time.perf_counter() - t0)
        return min(times), out

    try:
        from aegisfwd.datasets import world

        worlds = [("datasets.world()", world())]
    except ImportError:
        worlds = []
    worlds.append(("synthetic_world()", synthetic_world()))
    for label, topo in worlds:
        first, c = best(functools.partial(compile_topology, topo), 1)
        again, _ = best(functools.partial(compile_topology, topo), 3)
        path = os.path.join(_TMP, "world.aegis")
        c.save(path)
        size = os.path.getsize(path)
        load, _ = best(functools.partial(load_compiled, path), 21)
        load_nv, _ = best(functools.partial(load_compiled, path, verify=False), 21)
        load_rd, _ = best(functools.partial(load_compiled, path, mmap=False), 21)
        data = c.to_bytes()
        crc, _ = best(functools.partial(zlib.crc32, data), 21)
        print(f"{label}: {c}")
        print(f"  compile: first {first * 1e3:.0f} ms, then {again * 1e3:.0f} ms")
        print(f"  nbytes {c.nbytes} ({c.nbytes / 2**20:.1f} MiB), file {size} bytes")
        print(
            f"  load_compiled: {load * 1e3:.1f} ms (verify=False {load_nv * 1e3:.1f} ms, mmap=False "
            f"{load_rd * 1e3:.1f} ms); payload CRC alone {crc * 1e3:.1f} ms"
        )


if __name__ == "__main__":  # pragma: no cover
    _bench()
