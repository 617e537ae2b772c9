"""Built-in data: the real Cloudflare colo list, a synthetic world topology on it, request samples.

    import aegisfwd as af
    topo = af.datasets.world()                  # 337 real locations, ~60k servers, 20,000 pools
    req = af.datasets.requests(topo, 1_000_000)  # columns of indices, ready for decide_batch
    engine = af.Engine(topo)
    result = engine.decide_batch(req.server, req.pool, req.family, req.flow)

The colo list ships in ``aegisfwd/data/cloudflare-colos/`` with the MIT notices of its two sources
(see the README there). Everything else is generated from a seeded ``numpy.random.Generator``, so
``world(seed)`` and ``requests(topo, n, seed)`` are the same on every machine and numpy version that
keeps the Generator's stream stable.
"""

from __future__ import annotations

import csv
import functools
import ipaddress
from dataclasses import dataclass
from importlib import resources

import numpy as np

from .topology import AegisIP, DataCenter, Location, Pool, Topology

__all__ = ["Colo", "Requests", "colos", "requests", "world"]

_DATA = "data/cloudflare-colos"

# Shape of the world (see ``world``).
WORLD_POOLS = 20_000
DCS_PER_LOCATION = (1, 4)
SERVERS_PER_DC = (20, 300)
IPV4_PER_POOL = (1, 4)
LOCATIONS_PER_IPV4 = (1, 4)
SAME_REGION_SHARE = 0.85  # a placement location is drawn from the pool's home region with this probability
WHOLE_DC_SHARE = 0.70  # a placement is all servers of 1-2 DCs (else 2-10 servers of one DC)
SERVERS_PER_PARTIAL_PLACEMENT = (2, 10)
IPV6_SHARE = 0.60
DRAINING_SHARE = 0.005
DOWN_SHARE = 0.005
ZONES_PER_POOL = (1, 3)
_ZONE_WORDS = ("shop", "store", "api", "cdn", "media", "app", "pay", "blog")

# Addresses: IPv4 from 198.18.0.0/15 (RFC 2544 benchmarking space, never routed on the Internet),
# one aligned block of 4 per pool; IPv6 /48s from 2001:db8::/32 (RFC 3849 documentation prefix).
_IPV4_BASE = int(ipaddress.IPv4Address("198.18.0.0"))
_IPV4_BLOCKS = (1 << 17) // 4
_IPV6_BASE = int(ipaddress.IPv6Address("2001:db8::"))

# Request mix (see ``requests``).
ZIPF_EXPONENT = 1.1
IPV4_REQUEST_SHARE = 0.8


# ---------------------------------------------------------------------------------------------
# The colo list
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Colo:
    """One Cloudflare data center (colo) from the shipped list.

    ``coords_source`` is ``"cloudflare"`` (speed.cloudflare.com, via DC-Colos.csv), ``"airportsdata"``
    (the colo's airport, for colos the Cloudflare list has no coordinates for) or ``None`` (unknown).
    """

    code: str
    name: str
    region: str
    city: str
    country: str
    cca2: str
    lat: float | None
    lon: float | None
    coords_source: str | None


def _read_csv(name: str) -> list[dict[str, str]]:
    text = resources.files("aegisfwd").joinpath(f"{_DATA}/{name}").read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


@functools.cache
def colos() -> tuple[Colo, ...]:
    """Every colo of the shipped Cloudflare list (339), in file order, with coordinates where known.

    Coordinates come from ``DC-Colos.csv``; where it has none they are filled from
    ``missing-coords-from-airportsdata.csv``. Two colos (KIV, JXG) remain without coordinates.
    """
    fill = {
        r["colo"]: (float(r["lat"]), float(r["lon"]))
        for r in _read_csv("missing-coords-from-airportsdata.csv")
    }
    out = []
    for r in _read_csv("DC-Colos.csv"):
        lat: float | None
        lon: float | None
        if r["lat"] and r["lon"]:
            lat, lon, source = float(r["lat"]), float(r["lon"]), "cloudflare"
        elif r["colo"] in fill:
            (lat, lon), source = fill[r["colo"]], "airportsdata"
        else:
            lat = lon = source = None
        out.append(
            Colo(r["colo"], r["name"], r["region"], r["city"], r["country"], r["cca2"], lat, lon, source)
        )
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# The world topology
# ---------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=4)
def world(seed: int = 0) -> Topology:
    """A synthetic but realistically shaped global topology on the real Cloudflare colo list.

    * **Locations**: one per colo with coordinates: 337 of the 339 colos (coordinates from the
      Cloudflare list, or from the colo's airport for 29 mainland-China partner colos); the 2 colos
      with no known coordinates (KIV, JXG) are left out. Ids are the IATA codes (``LHR``), in the
      order of the shipped list.
    * **Data centers**: 1-4 per location (``LHR01`` ...), 20-300 servers each, skewed towards small
      DCs (about 60,000 servers in all); server ids like ``lhr01-s001``.
    * **Pools**: 20,000 (``pool-00001`` ...), each with a home location (drawn in proportion to server
      count) and 1-4 IPv4 addresses from one aligned block of four in 198.18.0.0/15. Each address is
      placed in 1-4 distinct locations, each drawn from the home location's region with probability
      0.85 (else anywhere), and held there by every server of 1-2 DCs (70%) or by 2-10 servers of one
      DC (30%).
    * 60% of pools also own an IPv6 /48 from 2001:db8::/32, held by every location.
    * ``server_states``: about 0.5% of servers draining and 0.5% down.
    * ``zones``: 1-3 zone names per pool (``shop-00001.example`` ...), for log evaluation.

    Deterministic per ``seed``; built once per seed and process (the ``Topology`` is immutable, so
    the cached object is shared). Takes about a second.
    """
    return _build_world(int(seed))


def _build_world(seed: int) -> Topology:
    rng = np.random.default_rng(seed)
    cs = [c for c in colos() if c.lat is not None]
    n_loc = len(cs)
    locations = tuple(Location(c.code, c.name, c.lat, c.lon) for c in cs)
    location_ids = tuple(c.code for c in cs)

    # Data centers and servers.
    dcs_per_loc = rng.integers(DCS_PER_LOCATION[0], DCS_PER_LOCATION[1] + 1, size=n_loc)
    n_dc = int(dcs_per_loc.sum())
    lo, hi = SERVERS_PER_DC
    # Beta(1.2, 5.4) puts the mean near 70 servers: many small DCs, a few large ones.
    servers_per_dc = lo + np.floor(rng.beta(1.2, 5.4, size=n_dc) * (hi - lo + 1)).astype(np.int64)
    servers_per_dc = np.minimum(servers_per_dc, hi)
    dc_start = np.concatenate(
        ([0], np.cumsum(dcs_per_loc))
    )  # DCs of location l: [dc_start[l], dc_start[l+1])

    data_centers = []
    dc_servers: list[tuple[str, ...]] = []
    dc_ids: list[str] = []
    for loc in range(n_loc):
        code = location_ids[loc]
        for k in range(int(dcs_per_loc[loc])):
            dc_id = f"{code}{k + 1:02d}"
            prefix = dc_id.lower()
            servers = tuple([f"{prefix}-s{j:03d}" for j in range(1, int(servers_per_dc[len(dc_ids)]) + 1)])
            data_centers.append(DataCenter(dc_id, code, servers))
            dc_servers.append(servers)
            dc_ids.append(dc_id)
    all_servers = [s for servers in dc_servers for s in servers]
    n_servers = len(all_servers)

    # Regions: location indices per Cloudflare Status region.
    region_names = sorted({c.region for c in cs})
    loc_region = np.array([region_names.index(c.region) for c in cs], dtype=np.int64)
    region_members = [np.flatnonzero(loc_region == r) for r in range(len(region_names))]

    # Pools: home location in proportion to its server count.
    n_pools = WORLD_POOLS
    loc_servers = np.add.reduceat(servers_per_dc, dc_start[:-1])
    home = rng.choice(n_loc, size=n_pools, p=loc_servers / loc_servers.sum())
    home_region = loc_region[home]

    v4_per_pool = rng.integers(IPV4_PER_POOL[0], IPV4_PER_POOL[1] + 1, size=n_pools)
    n_v4 = int(v4_per_pool.sum())
    addr_pool = np.repeat(np.arange(n_pools), v4_per_pool)
    addr_rank = np.arange(n_v4) - np.repeat(np.cumsum(v4_per_pool) - v4_per_pool, v4_per_pool)
    blocks = rng.choice(_IPV4_BLOCKS, size=n_pools, replace=False)
    addr_int = _IPV4_BASE + 4 * blocks[addr_pool] + addr_rank

    # Placements: (address, location) slots, all randomness drawn up front.
    locs_per_addr = rng.integers(LOCATIONS_PER_IPV4[0], LOCATIONS_PER_IPV4[1] + 1, size=n_v4)
    n_slots = int(locs_per_addr.sum())
    slot_same_region = rng.random(n_slots) < SAME_REGION_SHARE
    slot_u = rng.random((n_slots, 2))  # location pick, retry stream
    slot_whole_dc = rng.random(n_slots) < WHOLE_DC_SHARE
    slot_two_dcs = rng.random(n_slots) < 0.5
    slot_dc_u = rng.random((n_slots, 2))
    slot_n_servers = rng.integers(
        SERVERS_PER_PARTIAL_PLACEMENT[0], SERVERS_PER_PARTIAL_PLACEMENT[1] + 1, size=n_slots
    )
    slot_server_u = rng.random((n_slots, SERVERS_PER_PARTIAL_PLACEMENT[1]))
    retry_u = rng.random(n_slots)  # consumed in order when a drawn location repeats

    # Vectorised first pick of every slot; duplicates within an address are redrawn below.
    slot_addr = np.repeat(np.arange(n_v4), locs_per_addr)
    slot_region = home_region[addr_pool[slot_addr]]
    region_size = np.array([len(m) for m in region_members])
    region_flat = np.concatenate(region_members)
    region_offset = np.concatenate(([0], np.cumsum(region_size)))[:-1]
    in_region = region_flat[
        region_offset[slot_region] + (slot_u[:, 0] * region_size[slot_region]).astype(np.int64)
    ]
    anywhere = (slot_u[:, 0] * n_loc).astype(np.int64)
    slot_loc = np.where(slot_same_region, in_region, anywhere)

    # An address's locations must be distinct: redraw repeats, address by address, from a retry
    # stream (only the few addresses with a repeat go through Python).
    slot_first = np.repeat(np.cumsum(locs_per_addr) - locs_per_addr, locs_per_addr)
    rank = np.arange(n_slots) - slot_first
    repeated = np.zeros(n_slots, dtype=bool)
    for back in range(1, LOCATIONS_PER_IPV4[1]):
        earlier = np.maximum(np.arange(n_slots) - back, 0)
        repeated |= (rank >= back) & (slot_loc == slot_loc[earlier])
    retry_l = retry_u.tolist()
    retry_next = 0
    members_l = [m.tolist() for m in region_members]
    for a in np.unique(slot_addr[repeated]).tolist():
        first = int(slot_first[np.searchsorted(slot_addr, a)])
        chosen: list[int] = []
        for j in range(first, first + int(locs_per_addr[a])):
            loc = int(slot_loc[j])
            while loc in chosen:
                u = retry_l[retry_next % n_slots]
                retry_next += 1
                if slot_same_region[j]:
                    m = members_l[int(slot_region[j])]
                    loc = m[int(u * len(m))]
                else:
                    loc = int(u * n_loc)
            chosen.append(loc)
            slot_loc[j] = loc

    # Holders of each placement, vectorised: one or two whole DCs, or a few servers of one DC.
    ndc = dcs_per_loc[slot_loc]
    d0 = (slot_dc_u[:, 0] * ndc).astype(np.int64)
    dc0 = dc_start[slot_loc] + d0
    second = slot_whole_dc & slot_two_dcs & (ndc > 1)
    dc1 = np.where(
        second, dc_start[slot_loc] + (d0 + 1 + (slot_dc_u[:, 1] * (ndc - 1)).astype(np.int64)) % ndc, -1
    )
    partial = np.flatnonzero(~slot_whole_dc)
    partial_n = servers_per_dc[dc0[partial]]
    partial_idx = (slot_server_u[partial] * partial_n[:, None]).astype(np.int64).tolist()
    partial_of = dict(
        zip(
            partial.tolist(),
            zip(partial_idx, partial_n.tolist(), slot_n_servers[partial].tolist(), strict=True),
            strict=True,
        )
    )

    dc0_l = dc0.tolist()
    dc1_l = dc1.tolist()
    ipv4_entries: list[list[AegisIP]] = [[] for _ in range(n_pools)]
    addr_pool_l = addr_pool.tolist()
    addr_int_l = addr_int.tolist()
    slot = 0
    for a, k in enumerate(locs_per_addr.tolist()):
        holders: list[str] = []
        for j in range(slot, slot + k):
            spec = partial_of.get(j)
            if spec is None:
                holders.append(dc_ids[dc0_l[j]])
                if dc1_l[j] >= 0:
                    holders.append(dc_ids[dc1_l[j]])
                continue
            drawn, n, count = spec
            picked: dict[int, None] = {}
            for i in drawn[:count]:
                while i in picked:  # linear probe on a collision: still distinct, still spread
                    i = (i + 1) % n
                picked[i] = None
            servers = dc_servers[dc0_l[j]]
            holders.extend([servers[i] for i in sorted(picked)])
        slot += k
        ipv4_entries[addr_pool_l[a]].append(AegisIP(ipaddress.IPv4Network(addr_int_l[a]), tuple(holders)))

    # IPv6 /48s held everywhere (one shared holder tuple).
    has_v6 = rng.random(n_pools) < IPV6_SHARE
    v6_subnets = rng.choice(1 << 16, size=int(has_v6.sum()), replace=False).tolist()
    everywhere = location_ids

    # Zones: 1-3 per pool, distinct words.
    n_zones = rng.integers(ZONES_PER_POOL[0], ZONES_PER_POOL[1] + 1, size=n_pools).tolist()
    zone_word = rng.integers(0, len(_ZONE_WORDS), size=n_pools).tolist()

    pools = []
    zones: dict[str, str] = {}
    v6_next = 0
    for p, v6 in enumerate(has_v6.tolist()):
        pool_id = f"pool-{p + 1:05d}"
        ips = ipv4_entries[p]
        if v6:
            net = ipaddress.IPv6Network((_IPV6_BASE | (v6_subnets[v6_next] << 80), 48))
            v6_next += 1
            ips.append(AegisIP(net, everywhere))
        pools.append(Pool(pool_id, tuple(ips)))
        for z in range(n_zones[p]):
            zones[f"{_ZONE_WORDS[(zone_word[p] + z) % len(_ZONE_WORDS)]}-{p + 1:05d}.example"] = pool_id

    # Server states.
    r = rng.random(n_servers)
    server_states: dict[str, str] = {}
    for i in np.flatnonzero(r < DRAINING_SHARE + DOWN_SHARE).tolist():
        server_states[all_servers[i]] = "draining" if r[i] < DRAINING_SHARE else "down"

    return Topology(
        locations=locations,
        data_centers=tuple(data_centers),
        pools=tuple(pools),
        server_states=server_states,  # type: ignore[arg-type]
        zones=zones,
    )


# ---------------------------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Requests:
    """A sample of requests as numpy columns, in the topology's index order.

    ``server`` (int32 ingress server index), ``pool`` (int32 pool index), ``family`` (uint8, 4 or 6),
    ``flow`` (uint64 flow key). Pass the columns straight to ``engine.decide_batch``.
    """

    server: np.ndarray
    pool: np.ndarray
    family: np.ndarray
    flow: np.ndarray

    def __len__(self) -> int:
        return int(self.server.shape[0])

    def as_dict(self) -> dict[str, np.ndarray]:
        return {"server": self.server, "pool": self.pool, "family": self.family, "flow": self.flow}


def requests(topo: Topology, n: int, seed: int = 0) -> Requests:
    """``n`` synthetic requests against ``topo``, vectorised (10M rows in about a quarter of a second).

    * ingress server: uniform over the servers that are ``up`` in the file's ``server_states``
      (a load balancer sends no traffic to a draining or down server);
    * pool: bounded Zipf with exponent 1.1 in pool order (probability of the k-th pool ∝ 1/k^1.1),
      so the first pools are the hot ones;
    * family: 4 with probability 0.8, else 6;
    * flow key: uniform 64-bit.

    Deterministic per ``(topology, n, seed)``.
    """
    n = int(n)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    up = np.flatnonzero(topo.initial_states() == 0).astype(np.int32)
    n_pools = len(topo.pools)
    if n and (len(up) == 0 or n_pools == 0):
        raise ValueError("the topology has no up server or no pool to draw requests for")
    if n == 0:
        empty = np.empty(0, np.int32)
        return Requests(empty, empty.copy(), np.empty(0, np.uint8), np.empty(0, np.uint64))
    rng = np.random.default_rng(seed)
    server = up[rng.integers(0, len(up), size=n, dtype=np.int32)]
    pool = _zipf_indices(rng.random(n), _zipf_cdf(n_pools))
    family = np.where(rng.random(n, dtype=np.float32) < IPV4_REQUEST_SHARE, 4, 6).astype(np.uint8)
    flow = rng.integers(0, 1 << 64, size=n, dtype=np.uint64)
    return Requests(server, pool, family, flow)


def _zipf_cdf(n_pools: int) -> np.ndarray:
    """Cumulative bounded-Zipf probabilities: ``cdf[k]`` = P(index <= k); ``cdf[-1] == 1.0`` exactly."""
    cdf = np.cumsum(1.0 / np.arange(1, n_pools + 1, dtype=np.float64) ** ZIPF_EXPONENT)
    cdf /= cdf[-1]
    return cdf


def _zipf_indices(u: np.ndarray, cdf: np.ndarray) -> np.ndarray:
    """``np.searchsorted(cdf, u, side="right")`` as int32 for ``u`` in [0, 1), about 7x faster.

    A guide table (the answer at every multiple of 1/K, K a power of two, so ``u * K`` and ``c / K``
    are exact) gives each row a lower bound; a few vectorised passes step each row up to the first
    ``cdf`` entry above ``u``. With K >= 8 x len(cdf) almost every row needs no step.
    """
    k = 1 << int(np.clip(np.ceil(np.log2(8 * len(cdf))), 10, 22))
    guide = np.searchsorted(cdf, np.arange(k, dtype=np.float64) / k, side="right").astype(np.int32)
    idx = guide[(u * k).astype(np.int32)]
    rows = np.flatnonzero(cdf[idx] <= u)
    while rows.size:
        idx[rows] += 1
        rows = rows[cdf[idx[rows]] <= u[rows]]
    return idx
