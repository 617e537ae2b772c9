"""Shared by the compiler and compiled-file tests: an independent model of the compiled tables.

``expected_tables`` is a slow, obviously-correct recomputation from the dataclasses (holders expanded
to sets of server ids, one loop per request group and location), never from the compiler's own
helpers; ``spec_topology`` is the small example topology most tests start from.
"""

from __future__ import annotations

import ipaddress
import math
import random
from typing import Any

import numpy as np

from aegisfwd import _hashing
from aegisfwd.compiled import (
    ARRAY_NAMES,
    CompiledTopology,
)
from aegisfwd.geo import haversine_km
from aegisfwd.topology import AegisIP, DataCenter, Location, Pool, Topology

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
