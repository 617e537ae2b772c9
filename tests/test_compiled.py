"""Compiled tables (``docs/compiled-format.md``): what they say, how they are interned, the file format.

Every compiled topology here is checked against ``expected_tables``: a slow, obviously-correct
recomputation from the dataclasses (holders expanded to sets of server ids, one loop per request
group and location), never from the compiler's own helpers.

``python tests/test_compiled.py`` measures compile and load times on the world topology.
"""

from __future__ import annotations

import atexit
import functools
import ipaddress
import json
import math
import os
import pickle
import random
import shutil
import struct
import tempfile
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aegisfwd import _hashing
from aegisfwd.compiled import (
    ARRAY_NAMES,
    FORMAT_VERSION,
    CompiledTopology,
    compile_topology,
    load_compiled,
)
from aegisfwd.errors import CompiledFileError, TopologyError
from aegisfwd.geo import haversine_km
from aegisfwd.topology import AegisIP, DataCenter, DistanceMatrix, Location, Pool, Topology

INT32_MAX = 2**31 - 1
STATE = {"up": 0, "draining": 1, "down": 2}


def net(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(text)


def ip(text: str, *holders: str) -> AegisIP:
    return AegisIP(net(text), tuple(holders))


# ---------------------------------------------------------------------------------------------
# the independent model
# ---------------------------------------------------------------------------------------------


def expected_tables(topo: Topology) -> dict[str, Any]:
    """Everything the compiled tables must say, computed the slow way from the dataclasses."""
    loc_ids = [loc.id for loc in topo.locations]
    loc_pos = {lid: k for k, lid in enumerate(loc_ids)}
    dcs = sorted(topo.data_centers, key=lambda dc: loc_pos[dc.location])  # stable: file order
    servers = [s for dc in dcs for s in dc.servers]
    server_dc = {s: dc.id for dc in dcs for s in dc.servers}
    dc_loc = {dc.id: dc.location for dc in dcs}

    def expand(name: str) -> set[str]:
        if name in server_dc:
            return {name}
        if name in dc_loc:
            return set(next(dc.servers for dc in dcs if dc.id == name))
        return {s for dc in dcs if dc.location == name for s in dc.servers}

    def state(s: str) -> int:
        for target in (s, server_dc[s], dc_loc[server_dc[s]]):
            if target in topo.server_states:
                return STATE[topo.server_states[target]]
        return 0

    ips = [(p, entry) for p, pool in enumerate(topo.pools) for entry in pool.ips]
    holders = [set().union(*map(expand, entry.holders)) if entry.holders else set() for _, entry in ips]

    n = len(loc_ids)
    dist = np.zeros((n, n))
    if topo.distances is None:
        for i, x in enumerate(topo.locations):
            for j, y in enumerate(topo.locations):
                if i != j:
                    assert x.lat is not None and x.lon is not None and y.lat is not None and y.lon is not None
                    dist[i, j] = round(haversine_km(x.lat, x.lon, y.lat, y.lon), 3)
    else:
        row_of = {lid: k for k, lid in enumerate(topo.distances.locations)}
        for i, a in enumerate(loc_ids):
            for j, b in enumerate(loc_ids):
                if i != j:
                    v = topo.distances.matrix[row_of[a]][row_of[b]]
                    dist[i, j] = math.nan if v is None else round(v, 3)
    nearest = []
    for i in range(n):
        reachable = [j for j in range(n) if j != i and not math.isnan(dist[i, j])]
        nearest.append(sorted(reachable, key=lambda j: (dist[i, j], j)))

    # group g = 2 * pool + (family == 6) -> {location index: set of server ids}
    groups: list[dict[int, set[str]]] = []
    for p in range(len(topo.pools)):
        for family in (4, 6):
            placement: dict[int, set[str]] = {}
            for k, (q, entry) in enumerate(ips):
                if q == p and entry.network.version == family:
                    for s in holders[k]:
                        placement.setdefault(loc_pos[dc_loc[server_dc[s]]], set()).add(s)
            groups.append(placement)
    return {
        "locations": loc_ids,
        "dcs": [dc.id for dc in dcs],
        "servers": servers,
        "server_dc": [server_dc[s] for s in servers],
        "server_location": [dc_loc[server_dc[s]] for s in servers],
        "states": [state(s) for s in servers],
        "ips": ips,
        "holders": holders,
        "distance": dist,
        "nearest": nearest,
        "groups": groups,
        "zones": list(topo.zones.items()),
    }


def ranges_to_set(ranges: np.ndarray) -> set[int]:
    return {s for a, b in ranges.tolist() for s in range(a, b)}


def assert_matches_model(topo: Topology, c: CompiledTopology) -> None:
    """The compiled tables say exactly what ``expected_tables`` says, and are interned."""
    e = expected_tables(topo)
    a = c.arrays
    S, L = len(e["servers"]), len(e["locations"])

    # Every array is there, little-endian, C-contiguous, read-only.
    assert set(a) == set(ARRAY_NAMES)
    for name, array in a.items():
        assert array.flags.c_contiguous and not array.flags.writeable, name
        assert array.dtype.byteorder in "<|=", name

    # Ids in canonical order.
    assert c.locations == e["locations"]
    assert c.dcs == e["dcs"]
    assert c.servers == e["servers"]
    assert c.pools == [p.id for p in topo.pools]
    assert c.ips == [entry.address for _, entry in e["ips"]]
    assert c.zones == [z for z, _ in e["zones"]]
    assert c.server_index == {s: k for k, s in enumerate(e["servers"])}

    # Tree.
    assert [c.dcs[d] for d in a["server_dc"]] == e["server_dc"]
    assert [c.locations[loc] for loc in a["server_location"]] == e["server_location"]
    for d, dc in enumerate(c.dcs):
        first, end = a["dc_server_start"][d], a["dc_server_start"][d + 1]
        assert [c.servers[s] for s in range(first, end)] == [
            s for s, x in zip(e["servers"], e["server_dc"]) if x == dc
        ]
        assert c.locations[a["dc_location"][d]] == next(x.location for x in topo.data_centers if x.id == dc)
    for loc in range(L):
        dcs_here = [d for d in range(len(c.dcs)) if a["dc_location"][d] == loc]
        assert list(range(a["location_dc_start"][loc], a["location_dc_start"][loc + 1])) == dcs_here
        servers_here = [s for s in range(S) if a["server_location"][s] == loc]
        assert (
            list(range(a["location_server_start"][loc], a["location_server_start"][loc + 1])) == servers_here
        )
    assert a["server_key"].tolist() == [_hashing.server_key(s) for s in e["servers"]]
    assert a["server_initial_state"].tolist() == e["states"]

    # IPs, holder ranges, groups.
    assert a["ip_pool"].tolist() == [p for p, _ in e["ips"]]
    assert a["ip_family"].tolist() == [x.network.version for _, x in e["ips"]]
    assert a["ip_prefix_length"].tolist() == [x.network.prefixlen for _, x in e["ips"]]
    assert a["ip_key"].tolist() == [_hashing.ip_key(x.network) for _, x in e["ips"]]
    for i, expected in enumerate(e["holders"]):
        rows = a["ip_holder_ranges"][a["ip_holder_start"][i] : a["ip_holder_start"][i + 1]]
        assert {c.servers[s] for s in ranges_to_set(rows)} == expected
        flat = rows.reshape(-1).tolist()
        assert flat == sorted(flat) and len(set(flat)) == len(
            flat
        )  # sorted, non-empty, disjoint, not touching
    for g in range(2 * len(topo.pools)):
        members = a["group_ips"][a["group_ip_start"][g] : a["group_ip_start"][g + 1]].tolist()
        p, family = g // 2, 6 if g % 2 else 4
        assert members == [i for i, (q, x) in enumerate(e["ips"]) if q == p and x.network.version == family]

    # Distances and the nearest order.
    np.testing.assert_array_equal(a["location_distance"], e["distance"])
    for i in range(L):
        row = e["nearest"][i]
        assert a["nearest_order"][i].tolist() == row + [-1] * (L - len(row))
        ranks = [INT32_MAX] * L
        for r, j in enumerate(row):
            ranks[j] = r
        assert a["nearest_rank"][i].tolist() == ranks

    assert a["zone_pool"].tolist() == [c.pool_index[p] for _, p in e["zones"]]

    # Candidate lists and layouts.
    def list_servers(lst: int) -> list[int]:
        return a["list_servers"][a["list_server_start"][lst] : a["list_server_start"][lst + 1]].tolist()

    def bitset_servers(lst: int) -> list[int]:
        loc = int(a["list_location"][lst])
        base, size = int(a["location_server_start"][loc]), int(np.diff(a["location_server_start"])[loc])
        words = a["list_bits"][a["list_bit_start"][lst] : a["list_bit_start"][lst + 1]].tolist()
        assert len(words) == (size + 63) // 64
        return [base + 64 * w + b for w, word in enumerate(words) for b in range(64) if word >> b & 1]

    C = len(a["list_location"])
    for lst in range(C):
        servers = list_servers(lst)
        assert servers and servers == sorted(set(servers))
        assert {int(a["server_location"][s]) for s in servers} == {int(a["list_location"][lst])}
        assert bitset_servers(lst) == servers
    contents = [tuple(list_servers(lst)) for lst in range(C)]
    assert len(set(contents)) == C, "two candidate lists hold the same servers: not interned"

    layouts = []
    for y in range(len(a["layout_start"]) - 1):
        entries = range(a["layout_start"][y], a["layout_start"][y + 1])
        layouts.append(tuple((int(a["layout_location"][k]), int(a["layout_list"][k])) for k in entries))
    assert len(set(layouts)) == len(layouts), "two layouts are equal: not interned"
    used_lists = set()
    for g, placement in enumerate(e["groups"]):
        y = int(a["group_layout"][g])
        if not placement:
            assert y == -1
            continue
        locs = [loc for loc, _ in layouts[y]]
        assert locs == sorted(placement)
        for loc, lst in layouts[y]:
            assert int(a["list_location"][lst]) == loc
            assert [c.servers[s] for s in list_servers(lst)] == [s for s in c.servers if s in placement[loc]]
            used_lists.add(lst)
    assert used_lists == set(range(C)), "a list no layout uses"
    assert set(a["group_layout"].tolist()) - {-1} == set(range(len(layouts))), "a layout no group uses"

    assert c.counts["groups"] == 2 * len(topo.pools)
    assert c.nbytes == sum(x.nbytes for x in a.values())


def assert_same_tables(x: CompiledTopology, y: CompiledTopology) -> None:
    assert set(x.arrays) == set(y.arrays)
    for name in x.arrays:
        assert x[name].dtype == y[name].dtype and x[name].shape == y[name].shape, name
        np.testing.assert_array_equal(x[name], y[name], err_msg=name)
    assert dict(x.counts) == dict(y.counts)
    assert dict(x.meta) == dict(y.meta)
    assert (x.distance_unit, x.hash_scheme) == (y.distance_unit, y.hash_scheme)


# ---------------------------------------------------------------------------------------------
# hand-built topologies
# ---------------------------------------------------------------------------------------------


def spec_topology(**changes: Any) -> Topology:
    """The SPEC example, with its DCs listed out of location order, plus a location with no DC."""
    parts: dict[str, Any] = {
        "locations": (
            Location("LHR", "London", 51.47, -0.45),
            Location("AMS", "Amsterdam", 52.31, 4.76),
            Location("EMPTY", "No DC here", 48.35, 11.79),
        ),
        "data_centers": (
            DataCenter("AMS01", "AMS", ("ams01-s001", "ams01-s002")),
            DataCenter("LHR01", "LHR", ("lhr01-s001", "lhr01-s002")),
            DataCenter("LHR02", "LHR", ("lhr02-s001",)),
        ),
        "pools": (
            Pool(
                "acme",
                (
                    ip("192.0.2.10", "LHR02"),
                    ip("192.0.2.11", "ams01-s002"),
                    ip("2001:db8:a::/48", "LHR", "AMS", "EMPTY"),
                ),
            ),
        ),
        "server_states": {"lhr01-s002": "draining", "AMS01": "down"},
        "zones": {"example.com": "acme", "shop.example": "acme"},
    }
    parts.update(changes)
    return Topology(**parts)


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
# file format: round trips
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compiled() -> CompiledTopology:
    return compile_topology(spec_topology())


@pytest.fixture(scope="module")
def data(compiled: CompiledTopology) -> bytes:
    return compiled.to_bytes()


def test_save_load_round_trip(tmp_path: Any, compiled: CompiledTopology, data: bytes) -> None:
    path = tmp_path / "t.aegis"
    compiled.save(path)
    assert path.read_bytes() == data
    assert [p.name for p in tmp_path.iterdir()] == ["t.aegis"]  # no temporary file left behind
    for kwargs in ({}, {"mmap": False}, {"verify": False}, {"mmap": False, "verify": False}):
        loaded = load_compiled(path, **kwargs)
        assert_same_tables(compiled, loaded)
        assert loaded.servers == compiled.servers and loaded.ips == compiled.ips
        for name, array in loaded.arrays.items():
            assert array.flags.c_contiguous and not array.flags.writeable, name
            if array.size:
                with pytest.raises(ValueError):
                    array.reshape(-1)[0] = 0
        assert loaded.to_bytes() == data
    assert_matches_model(spec_topology(), load_compiled(path))


def test_mmap_arrays_are_views_into_the_file(tmp_path: Any, compiled: CompiledTopology) -> None:
    path = tmp_path / "t.aegis"
    compiled.save(path)
    loaded = load_compiled(path)
    servers = loaded["list_servers"]
    # A view into the mapping (no copy): its memory lies inside the mapped buffer.
    base = np.frombuffer(loaded._buffer, dtype=np.uint8)
    start = base.__array_interface__["data"][0]
    assert start <= servers.__array_interface__["data"][0] < start + base.nbytes
    assert servers.__array_interface__["data"][0] % 64 == 0  # 64-byte aligned, as the format says
    # Replacing the file (atomic rename) leaves the old mapping intact.
    compile_topology(spec_topology(pools=(), zones={})).save(path)
    assert load_compiled(path).counts["pools"] == 0
    assert_same_tables(compiled, loaded)


def test_from_bytes_accepts_buffers(compiled: CompiledTopology, data: bytes) -> None:
    for buffer in (data, bytearray(data), memoryview(data), memoryview(bytearray(data))):
        loaded = CompiledTopology.from_bytes(buffer)
        assert_same_tables(compiled, loaded)
        assert all(not array.flags.writeable for array in loaded.arrays.values())
    with pytest.raises(CompiledFileError, match="bytes-like"):
        CompiledTopology.from_bytes(12)  # type: ignore[arg-type]


def test_pickle_round_trip(compiled: CompiledTopology, data: bytes) -> None:
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        blob = pickle.dumps(compiled, protocol=protocol)
        assert len(blob) < len(data) + 200  # one flat buffer, nothing else
        loaded = pickle.loads(blob)
        assert_same_tables(compiled, loaded)
        assert loaded.topology is None
        assert pickle.loads(pickle.dumps(loaded)).to_bytes() == data


def test_save_failure_leaves_nothing(tmp_path: Any, compiled: CompiledTopology) -> None:
    with pytest.raises(OSError):
        compiled.save(tmp_path / "missing-dir" / "t.aegis")
    assert list(tmp_path.iterdir()) == []


def test_to_bytes_is_deterministic() -> None:
    assert compile_topology(spec_topology()).to_bytes() == compile_topology(spec_topology()).to_bytes()


# ---------------------------------------------------------------------------------------------
# file format: corruption
# ---------------------------------------------------------------------------------------------

PREFIX = struct.Struct("<8sIIQII")


def split(data: bytes) -> tuple[tuple[Any, ...], dict[str, Any]]:
    prefix = PREFIX.unpack_from(data, 0)
    return prefix, json.loads(data[32 : 32 + prefix[2]])


def rewrite_header(data: bytes, edit: Callable[[dict[str, Any]], Any]) -> bytes:
    """Apply ``edit`` to the header JSON and write it back with a valid header CRC."""
    (magic, version, hlen, total, _, payload_crc), header = split(data)
    edit(header)
    text = json.dumps(header, separators=(",", ":")).encode()
    if len(text) > hlen:  # make room by dropping the metadata
        header["meta"] = {}
        text = json.dumps(header, separators=(",", ":")).encode()
    assert len(text) <= hlen
    text = text.ljust(hlen)
    return PREFIX.pack(magic, version, hlen, total, zlib.crc32(text), payload_crc) + text + data[32 + hlen :]


def rewrite_prefix(data: bytes, **fields: Any) -> bytes:
    names = ("magic", "version", "hlen", "total", "header_crc", "payload_crc")
    values = dict(zip(names, PREFIX.unpack_from(data, 0)))
    values.update(fields)
    return PREFIX.pack(*(values[n] for n in names)) + data[32:]


def rejected(buffer: bytes, match: str, *, verify: bool = True) -> CompiledFileError:
    with pytest.raises(CompiledFileError, match=match) as info:
        CompiledTopology.from_bytes(buffer, verify=verify)
    return info.value


def test_truncated_at_many_lengths(tmp_path: Any, data: bytes) -> None:
    (_, _, hlen, total, _, _), _ = split(data)
    assert total == len(data)
    for n in sorted(
        {
            0,
            1,
            7,
            8,
            9,
            31,
            32,
            33,
            100,
            hlen,
            hlen + 31,
            hlen + 32,
            hlen + 33,
            total // 2,
            total - 64,
            total - 1,
        }
    ):
        err = rejected(data[:n], "truncated")
        assert str(n) in str(err)
        path = tmp_path / f"cut{n}"
        path.write_bytes(data[:n])
        for mmap in (True, False):
            with pytest.raises(CompiledFileError, match="truncated") as info:
                load_compiled(path, mmap=mmap)
            assert str(path) in str(info.value)
    rejected(data + b"\0" * 64, "trailing data")


def test_wrong_magic_and_version(data: bytes) -> None:
    rejected(b"PK\x03\x04" + data[4:], "bad magic")
    rejected(b"hello", "truncated")  # too short to tell: not a crash either
    err = rejected(rewrite_prefix(data, version=FORMAT_VERSION + 1), "unsupported format version")
    assert str(FORMAT_VERSION + 1) in str(err)
    rejected(rewrite_prefix(data, hlen=len(data)), "header length")
    rejected(rewrite_prefix(data, hlen=2**32 - 1), "header length")
    rejected(rewrite_prefix(data, total=len(data) + 1), "truncated")
    rejected(rewrite_prefix(data, total=2**64 - 1), "truncated")


def test_bit_flips_header_and_payload(data: bytes) -> None:
    (_, _, hlen, total, _, _), _ = split(data)
    payload_start = 32 + hlen
    rejected(flip(data, 32 + 5, 3), "header CRC")
    rejected(flip(data, 32 + hlen - 1, 0), "header CRC")  # the space padding is covered too
    rejected(flip(data, payload_start, 0), "payload CRC")
    rejected(flip(data, total - 1, 7), "payload CRC")  # final alignment padding too
    rejected(flip(data, 25, 1), "header CRC")  # the stored CRCs themselves
    rejected(flip(data, 29, 1), "payload CRC")
    # With verify=True every single-bit flip anywhere is caught.
    rng = random.Random(1)
    for pos in list(range(32)) + rng.sample(range(32, total), 300):
        rejected(
            flip(data, pos, rng.randrange(8)), "CRC|bad magic|format version|truncated|trailing|header length"
        )


def flip(data: bytes, pos: int, bit: int) -> bytes:
    out = bytearray(data)
    out[pos] ^= 1 << bit
    return bytes(out)


def test_payload_flips_without_crc_never_crash(data: bytes) -> None:
    """verify=False: a flipped payload loads or raises CompiledFileError, nothing else."""
    (_, _, hlen, total, _, _), _ = split(data)
    rng = random.Random(2)
    caught = 0
    for _ in range(400):
        pos = rng.randrange(32 + hlen, total)
        try:
            CompiledTopology.from_bytes(flip(data, pos, rng.randrange(8)), verify=False)
        except CompiledFileError:
            caught += 1
    assert caught > 50  # index arrays are much of the payload: many flips are caught by range checks


def test_header_json_fuzz_never_crashes(data: bytes) -> None:
    """Corrupt header bytes with a matching CRC: CompiledFileError, never another exception."""
    (magic, version, hlen, total, _, payload_crc), _ = split(data)
    rng = random.Random(3)
    for _ in range(300):
        text = bytearray(data[32 : 32 + hlen])
        for _ in range(rng.randint(1, 3)):
            text[rng.randrange(hlen)] = rng.choice(b'0123456789-:,{}[]"aez \xff')
        fixed = (
            PREFIX.pack(magic, version, hlen, total, zlib.crc32(text), payload_crc)
            + bytes(text)
            + data[32 + hlen :]
        )
        try:
            CompiledTopology.from_bytes(fixed)
        except CompiledFileError:
            pass


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(header: dict[str, Any]) -> None:
        node = header
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


def _delete(*path: Any) -> Callable[[dict[str, Any]], None]:
    def edit(header: dict[str, Any]) -> None:
        node = header
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return edit


def _rename(old: str, new: str) -> Callable[[dict[str, Any]], None]:
    def edit(header: dict[str, Any]) -> None:
        header["arrays"][new] = header["arrays"].pop(old)

    return edit


def _overlap(header: dict[str, Any]) -> None:
    header["arrays"]["server_key"]["offset"] = header["arrays"]["server_dc"]["offset"]


def _shift(name: str, by: int) -> Callable[[dict[str, Any]], None]:
    def edit(header: dict[str, Any]) -> None:
        header["arrays"][name]["offset"] += by

    return edit


HEADER_CASES: list[tuple[str, Callable[[dict[str, Any]], Any], str]] = [
    ("missing array", _delete("arrays", "list_bits"), "array 'list_bits' is missing"),
    ("unexpected array", _rename("list_bits", "list_bitz"), "unexpected array 'list_bitz'"),
    ("wrong dtype", _set(("arrays", "server_dc", "dtype"), "<u4"), "'server_dc' has dtype '<u4'"),
    ("big-endian dtype", _set(("arrays", "server_key", "dtype"), ">u8"), "'server_key' has dtype"),
    (
        "wrong shape",
        _set(("arrays", "server_dc", "shape"), [4]),
        "'server_dc' has shape \\[4\\], counts say \\[5\\]",
    ),
    ("shape not a list", _set(("arrays", "server_dc", "shape"), 5), "'server_dc' has shape 5"),
    (
        "bool in shape",
        _set(("arrays", "ip_holder_ranges", "shape"), [3, True]),
        "'ip_holder_ranges' has shape",
    ),
    ("wrong nbytes", _set(("arrays", "server_dc", "nbytes"), 16), "'server_dc' has nbytes 16"),
    ("misaligned offset", _shift("server_dc", 4), "'server_dc' offset .* is not 64-byte aligned"),
    ("offset past end", _shift("group_layout", 1 << 20), "'group_layout' at .* lies outside the payload"),
    (
        "offset in header",
        _set(("arrays", "server_dc", "offset"), 0),
        "'server_dc' at \\[0, 20\\) lies outside",
    ),
    ("negative offset", _set(("arrays", "server_dc", "offset"), -64), "'server_dc' .* outside"),
    ("overlap", _overlap, "overlap"),
    ("count negative", _set(("counts", "servers"), -1), "count 'servers' is -1"),
    ("count missing", _delete("counts", "lists"), "count 'lists' is None"),
    ("count not int", _set(("counts", "ips"), 3.0), "count 'ips' is 3.0"),
    ("count huge", _set(("counts", "servers"), 2**40), "count 'servers' .* does not fit int32"),
    ("groups vs pools", _set(("counts", "groups"), 3), "3 groups for 1 pools"),
    ("counts vs shapes", _set(("counts", "servers"), 6), "has shape \\[5\\], counts say \\[6\\]"),
    ("hash scheme", _set(("hash_scheme",), 2), "hash scheme 2 is not supported"),
    ("hash scheme bool", _set(("hash_scheme",), True), "hash scheme True"),
    ("distance unit", _set(("distance_unit",), "mi"), "distance unit 'mi'"),
    ("meta", _set(("meta",), []), "'meta' is not an object"),
    ("arrays not a dict", _set(("arrays",), []), "'arrays' is not an object"),
    ("entry not a dict", _set(("arrays", "server_dc"), 1), "'server_dc': entry is not an object"),
    ("missing key", _delete("counts"), "missing 'counts'"),
]


@pytest.mark.parametrize(
    ("edit", "match"), [(e, m) for _, e, m in HEADER_CASES], ids=[c[0] for c in HEADER_CASES]
)
def test_header_schema(data: bytes, edit: Callable[[dict[str, Any]], Any], match: str) -> None:
    err = rejected(rewrite_header(data, edit), match)
    assert str(err).startswith("header schema: ")


def test_header_not_json_or_not_an_object(data: bytes) -> None:
    (magic, version, hlen, total, _, payload_crc), _ = split(data)
    for text, match in (
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
    ):
        text = text.ljust(hlen)
        rejected(
            PREFIX.pack(magic, version, hlen, total, zlib.crc32(text), payload_crc)
            + text
            + data[32 + hlen :],
            match,
        )


def doctored(c: CompiledTopology, change: Callable[[dict[str, np.ndarray]], Any]) -> bytes:
    """Bytes of ``c`` with its arrays changed by ``change``: valid CRCs, valid header, bad contents."""
    arrays = {name: np.array(array) for name, array in c.arrays.items()}
    change(arrays)
    return CompiledTopology(
        arrays, counts=c.counts, meta=c.meta, distance_unit=c.distance_unit, hash_scheme=c.hash_scheme
    ).to_bytes()


def _put(name: str, index: Any, value: Any) -> Callable[[dict[str, np.ndarray]], None]:
    def change(arrays: dict[str, np.ndarray]) -> None:
        arrays[name][index] = value

    return change


def _swap(name: str, i: Any, j: Any) -> Callable[[dict[str, np.ndarray]], None]:
    def change(arrays: dict[str, np.ndarray]) -> None:
        a = arrays[name]
        a[i], a[j] = a[j].copy(), a[i].copy()

    return change


# On spec_topology(): L=3, D=3, S=5, P=1, I=3, lists 4, layouts 2.
DOCTORED_CASES: list[tuple[str, Callable[[dict[str, np.ndarray]], Any], str]] = [
    (
        "server_dc past D",
        _put("server_dc", 0, 70000),
        "array 'server_dc' holds index 70000 outside \\[0, 3\\)",
    ),
    (
        "negative server_location",
        _put("server_location", 1, -1),
        "array 'server_location' holds index -1 outside",
    ),
    ("dc_location past L", _put("dc_location", 2, 3), "array 'dc_location' holds index 3 outside \\[0, 3\\)"),
    ("server_dc inconsistent", _put("server_dc", 0, 2), "'server_dc' disagrees with 'dc_server_start'"),
    ("dc_server_start end", _put("dc_server_start", 3, 4), "'dc_server_start' ends at 4, expected 5"),
    ("dc_server_start start", _put("dc_server_start", 0, 1), "'dc_server_start' starts at 1"),
    (
        "dc_server_start decreasing",
        _put("dc_server_start", 1, 4),
        "'dc_server_start' decreases at position 2",
    ),
    ("location_dc_start", _put("location_dc_start", 1, 5), "'location_dc_start' decreases"),
    ("state code", _put("server_initial_state", 0, 3), "'server_initial_state' holds index 3"),
    ("ip_pool past P", _put("ip_pool", 2, 1), "'ip_pool' holds index 1 outside \\[0, 1\\)"),
    ("family", _put("ip_family", 0, 5), "'ip_family' holds 5"),
    ("prefix length", _put("ip_prefix_length", 0, 33), "'ip_prefix_length' holds 33 for an IPv4"),
    (
        "holder range past S",
        _put("ip_holder_ranges", (2, 1), 6),
        "'ip_holder_ranges' holds index 6 outside \\[0, 6\\)",
    ),
    (
        "holder range reversed",
        _put("ip_holder_ranges", (0, 0), 3),
        "'ip_holder_ranges' is not strictly ascending",
    ),
    ("holder_start", _put("ip_holder_start", 3, 2), "'ip_holder_start' ends at 2, expected 3"),
    ("group_ips past I", _put("group_ips", 0, 3), "'group_ips' holds index 3"),
    ("group_ips wrong group", _swap("group_ips", 1, 2), "'group_ips' disagrees with the pool and family"),
    ("group_ip_start", _put("group_ip_start", 1, 1), "'group_ips' disagrees"),
    ("negative distance", _put("location_distance", (0, 1), -1.0), "negative distance"),
    ("diagonal", _put("location_distance", (1, 1), 2.0), "non-zero diagonal"),
    ("nearest_order past L", _put("nearest_order", (0, 0), 3), "'nearest_order' holds index 3"),
    ("nearest_order count", _put("nearest_order", (0, 1), -1), "'nearest_order' does not list as many"),
    (
        "nearest_order duplicate",
        _put("nearest_order", (0, 1), 1),
        "'nearest_order' and 'nearest_rank' disagree",
    ),
    ("nearest unsorted", _swap("nearest_order", (0, 0), (0, 1)), "disagree"),
    ("nearest_rank", _put("nearest_rank", (0, 0), 0), "ranks an unreachable location"),
    ("nearest_rank range", _put("nearest_rank", (0, 1), -5), "'nearest_rank' holds a value outside"),
    ("zone_pool", _put("zone_pool", 1, 1), "'zone_pool' holds index 1 outside \\[0, 1\\)"),
    ("id offsets", _put("server_id_offsets", 5, 10**6), "'server_id_offsets' ends at 1000000"),
    ("list_location past L", _put("list_location", 0, 9), "'list_location' holds index 9"),
    (
        "list_servers past S",
        _put("list_servers", 0, 60000),
        "'list_servers' holds index 60000 outside \\[0, 5\\)",
    ),
    (
        "list server in another location",
        _put("list_location", 0, 1),
        "'list_servers' holds a server of list 0 outside its location 1",
    ),
    ("list servers unsorted", _swap("list_servers", 2, 3), "'list_servers' is not strictly ascending"),
    ("list_server_start", _put("list_server_start", 1, 0), "gives list 0 no server"),
    ("list_bit_start", _put("list_bit_start", 4, 3), "'list_bit_start' ends at 3"),
    (
        "bitset padding bit",
        _put("list_bits", 0, np.uint64(1) << np.uint64(40)),
        "sets a bit past the last server",
    ),
    ("layout_list past C", _put("layout_list", 0, 4), "'layout_list' holds index 4 outside \\[0, 4\\)"),
    ("layout_location past L", _put("layout_location", 3, 7), "'layout_location' holds index 7"),
    ("layout list elsewhere", _put("layout_list", 0, 1), "'layout_list' disagrees with 'layout_location'"),
    ("layout_start", _put("layout_start", 1, 5), "'layout_start' decreases at position 2"),
    ("group_layout past Y", _put("group_layout", 0, 2), "'group_layout' holds index 2 outside \\[-1, 2\\)"),
    ("group_layout below -1", _put("group_layout", 1, -2), "'group_layout' holds index -2"),
]


@pytest.mark.parametrize(
    ("change", "match"), [(c, m) for _, c, m in DOCTORED_CASES], ids=[c[0] for c in DOCTORED_CASES]
)
def test_doctored_payload_fails_range_checks(compiled: CompiledTopology, change: Any, match: str) -> None:
    bad = doctored(compiled, change)
    for verify in (True, False):  # the CRC is valid: only the range checks can tell
        rejected(bad, match, verify=verify)


def test_doctored_file_on_disk(tmp_path: Any, compiled: CompiledTopology) -> None:
    path = tmp_path / "bad.aegis"
    path.write_bytes(doctored(compiled, _put("server_dc", 0, 70000)))
    with pytest.raises(CompiledFileError, match="array 'server_dc' holds index 70000 outside \\[0, 3\\)"):
        load_compiled(path)


def test_doctored_ids_that_are_not_utf8(compiled: CompiledTopology) -> None:
    loaded = CompiledTopology.from_bytes(doctored(compiled, _put("server_id_bytes", 0, 0xFF)))
    with pytest.raises(CompiledFileError, match="'server_id_bytes' is not valid UTF-8"):
        _ = loaded.servers


def test_large_payload_crc_on_a_second_thread() -> None:
    """Payloads over 1 MiB take the threaded CRC path: it must catch corruption all the same."""
    topo = synthetic_world(locations=20, servers=3000, pools=3000, seed=5)
    data = compile_topology(topo).to_bytes()
    assert len(data) > 1 << 20
    total = len(data)
    assert_same_tables(CompiledTopology.from_bytes(data), compile_topology(topo))
    rejected(flip(data, total - 100, 2), "payload CRC")
    # A flip in an index array: the CRC error wins over the range error it also causes.
    rejected(flip(data, split(data)[1]["arrays"]["server_dc"]["offset"] + 3, 6), "payload CRC")


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


def synthetic_world(
    *, locations: int = 337, servers: int = 60_000, pools: int = 20_000, seed: int = 0
) -> Topology:
    """A topology of the world's shape, built with the dataclass constructors.

    ~3 DCs per location, servers spread over them; each pool has 1-4 IPv4 addresses, each held in
    1-4 locations by a whole DC or 2-10 of its servers; 60% of pools own an IPv6 /48 held by every
    location.
    """
    rng = random.Random(seed)
    locs = tuple(
        Location(f"L{k:03d}", lat=rng.uniform(-60, 70), lon=rng.uniform(-180, 180)) for k in range(locations)
    )
    n_dc = max(1, locations * 3)
    loc_dcs: list[list[DataCenter]] = [[] for _ in range(locations)]
    dcs = []
    for k in range(n_dc):
        here = k % locations if k < locations else rng.randrange(locations)
        size = max(1, int(rng.expovariate(n_dc / servers)))
        dc = DataCenter(
            f"{locs[here].id}-DC{k:04d}", locs[here].id, tuple(f"s{k:04d}-{j:03d}" for j in range(size))
        )
        dcs.append(dc)
        loc_dcs[here].append(dc)
    everywhere = tuple(loc.id for loc in locs)
    pool_list, v4 = [], int(ipaddress.IPv4Address("198.18.0.0"))
    for p in range(pools):
        ips = []
        for _ in range(rng.randint(1, 4)):
            holders: list[str] = []
            for here in rng.sample(range(locations), min(locations, rng.randint(1, 4))):
                dc = rng.choice(loc_dcs[here])
                if rng.random() < 0.5 or len(dc.servers) < 2:
                    holders.append(dc.id)
                else:
                    holders.extend(rng.sample(dc.servers, min(len(dc.servers), rng.randint(2, 10))))
            ips.append(AegisIP(ipaddress.IPv4Network(v4), tuple(holders)))
            v4 += 1
        if rng.random() < 0.6:
            ips.append(AegisIP(ipaddress.IPv6Network((0x20010DB8 << 96 | p << 80, 48)), everywhere))
        pool_list.append(Pool(f"pool{p:05d}", tuple(ips)))
    return Topology(locs, tuple(dcs), tuple(pool_list))


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
