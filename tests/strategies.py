"""Hypothesis strategies for random, valid topologies and requests (shared by the engine tests).

``topologies()`` builds ``Topology`` objects with the dataclass constructors, small enough that an
example takes milliseconds, but covering what the engines must get right:

* 1-6 locations, either with coordinates drawn from a few points (so that some are equidistant) or
  with an explicit matrix: asymmetric values, ``null`` (unreachable) cells, values that are equal
  only after rounding to three decimals (1.0, 1.0004, 0.9996), and its own location order;
* 0-3 DCs per location (so some locations have none), 0-5 servers per DC;
* 1-4 pools of 0-4 Aegis IPs: IPv4 addresses, IPv6 addresses and IPv6 prefixes (/48, /64), some
  with no holder, holders naming servers, DCs and locations;
* ``server_states`` on servers, DCs and locations, so that "most specific wins" matters.

``states(topo)`` draws a per-server state array, ``requests(topo)`` one request (ids or indices) and
``request_lists(topo)`` a batch; with ``invalid=True`` they also produce bad rows.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

import numpy as np
from hypothesis import strategies as st

from aegisfwd.topology import (
    STATE_NAMES,
    AegisIP,
    DataCenter,
    DistanceMatrix,
    Location,
    Pool,
    Topology,
)

STATE_WORDS = ("up", "draining", "down")

# Points chosen so that several are at exactly the same great-circle distance from (0, 0).
POINTS = ((0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (0.0, -1.0), (51.47, -0.45), (52.31, 4.76), (-33.95, 151.18))
# Matrix values: 1.0004 and 0.9996 equal 1.0 after rounding to three decimals; None = unreachable.
MATRIX_VALUES = (None, 0.0, 1.0, 1.0004, 0.9996, 2.5, 2.5001, 7.1, 7.4, 10.0, 123.456)
ID_FLAVOURS = ("", "x-", "Ü")  # a prefix for every id: keys must not depend on "nice" ids


def _address(n: int, kind: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """The n-th distinct address of a kind; distinct n never overlap across kinds."""
    if kind == "v4":
        return ipaddress.ip_network(f"10.{n // 65536}.{(n // 256) % 256}.{n % 256}")
    if kind == "v6":
        return ipaddress.ip_network(f"2001:db8:{n:x}::1")
    if kind == "v6/48":
        return ipaddress.ip_network(f"2001:db8:{n:x}::/48")
    return ipaddress.ip_network(f"2001:db8:{n:x}:1::/64")


@st.composite
def topologies(
    draw: Any,
    *,
    min_servers: int = 1,
    max_locations: int = 6,
    max_pools: int = 4,
    matrix: bool | None = None,
) -> Topology:
    """A random valid ``Topology`` with at least ``min_servers`` servers.

    ``matrix=True/False`` forces an explicit distance matrix / coordinates; None draws either.
    """
    flavour = draw(st.sampled_from(ID_FLAVOURS))
    n_loc = draw(st.integers(1, max_locations))
    loc_ids = [f"{flavour}L{i}" for i in range(n_loc)]
    use_matrix = draw(st.booleans()) if matrix is None else matrix

    if use_matrix:
        locations = tuple(Location(lid) for lid in loc_ids)
        order = draw(st.permutations(loc_ids))
        rows = tuple(
            tuple(0.0 if i == j else draw(st.sampled_from(MATRIX_VALUES)) for j in range(n_loc))
            for i in range(n_loc)
        )
        distances: DistanceMatrix | None = DistanceMatrix(
            draw(st.sampled_from(("km", "ms"))), tuple(order), rows
        )
    else:
        points = [draw(st.sampled_from(POINTS)) for _ in range(n_loc)]
        locations = tuple(
            Location(lid, f"city {i}", lat, lon)
            for i, (lid, (lat, lon)) in enumerate(zip(loc_ids, points, strict=True))
        )
        distances = None

    # DCs are listed in a shuffled order: the canonical order sorts them by location.
    dcs: list[DataCenter] = []
    n_servers = 0
    for li, lid in enumerate(loc_ids):
        for k in range(draw(st.integers(0, 3))):
            count = draw(st.integers(0, 5))
            servers = tuple(f"{flavour}s{n_servers + j}" for j in range(count))
            n_servers += count
            dcs.append(DataCenter(f"{flavour}D{li}.{k}", lid, servers))
    if n_servers < min_servers:
        extra = tuple(f"{flavour}s{n_servers + j}" for j in range(min_servers - n_servers))
        n_servers += len(extra)
        dcs.append(DataCenter(f"{flavour}D0.extra", loc_ids[0], extra))
    dcs = draw(st.permutations(dcs)) if dcs else dcs

    server_ids = [s for dc in dcs for s in dc.servers]
    names = server_ids + [dc.id for dc in dcs] + loc_ids
    holders = st.lists(st.sampled_from(names), max_size=3, unique=True).map(tuple)

    pools = []
    counter = 0
    for p in range(draw(st.integers(1, max_pools))):
        ips = []
        for _ in range(draw(st.integers(0, 4))):
            kind = draw(st.sampled_from(("v4", "v4", "v6", "v6/48", "v6/64")))
            ips.append(AegisIP(_address(counter, kind), draw(holders)))
            counter += 1
        pools.append(Pool(f"{flavour}pool{p}", tuple(ips)))

    server_states = draw(st.dictionaries(st.sampled_from(names), st.sampled_from(STATE_WORDS), max_size=4))
    zones = {f"z{p}.example": pool.id for p, pool in enumerate(pools)}
    return Topology(tuple(locations), tuple(dcs), tuple(pools), server_states, zones, distances)


def states(topo: Topology) -> st.SearchStrategy[np.ndarray]:
    """A uint8 state code per server (0 up, 1 draining, 2 down), mostly up."""
    n = len(topo.server_ids)
    return st.lists(st.sampled_from((0, 0, 0, 1, 2)), min_size=n, max_size=n).map(
        lambda codes: np.array(codes, dtype=np.uint8)
    )


def apply_states(engine: Any, codes: Sequence[int]) -> None:
    """Set every server of ``engine`` to ``codes`` (by index) through ``set_state``."""
    for s, code in enumerate(codes):
        engine.set_state(s, STATE_NAMES[int(code)])


FLOWS = st.one_of(st.integers(0, 2**64 - 1), st.integers(0, 1000), st.sampled_from((0, 2**63, 2**64 - 1)))


def requests(topo: Topology, *, invalid: bool = False) -> st.SearchStrategy[tuple[Any, Any, Any, int]]:
    """One request ``(server, pool, family, flow)``: ids or integer indices (Python or numpy).

    With ``invalid=True`` a row may also carry an unknown id, an index out of range or a family
    other than 4/6 (the flow is always valid).
    """
    n_s, n_p = len(topo.server_ids), len(topo.pool_ids)
    server = st.one_of(
        st.sampled_from(topo.server_ids), st.integers(0, n_s - 1), st.integers(0, n_s - 1).map(np.int64)
    )
    pool = st.one_of(st.sampled_from(topo.pool_ids), st.integers(0, n_p - 1))
    family = st.sampled_from((4, 6))
    if invalid:
        server = st.one_of(server, st.sampled_from(("no-such-server", -1, n_s, topo.pool_ids[0])))
        pool = st.one_of(pool, st.sampled_from(("no-such-pool", -1, n_p)))
        family = st.one_of(family, st.sampled_from((0, 5, 46)))
    return st.tuples(server, pool, family, FLOWS)


def request_lists(
    topo: Topology, *, invalid: bool = False, max_size: int = 25
) -> st.SearchStrategy[list[tuple[Any, Any, Any, int]]]:
    """A batch of requests, as a list of rows (see ``requests``)."""
    return st.lists(requests(topo, invalid=invalid), min_size=0, max_size=max_size)


def is_valid_request(topo: Topology, row: tuple[Any, Any, Any, int]) -> bool:
    """Whether a row drawn by ``requests(..., invalid=True)`` is a valid request."""
    server, pool, family, _ = row
    ok_s = server in topo.server_index if isinstance(server, str) else 0 <= int(server) < len(topo.server_ids)
    ok_p = pool in topo.pool_index if isinstance(pool, str) else 0 <= int(pool) < len(topo.pool_ids)
    return ok_s and ok_p and family in (4, 6)
