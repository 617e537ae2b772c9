"""Facts about the built-in world topology and the request sampler (``aegisfwd.datasets``)."""

from __future__ import annotations

import importlib.util
import ipaddress
from collections import Counter

import numpy as np
import pytest

import aegisfwd as af
import aegisfwd.datasets as ds


@pytest.fixture(scope="module")
def world() -> af.Topology:
    return ds.world(0)


def _structure(topo: af.Topology) -> tuple:
    return (topo.locations, topo.data_centers, topo.pools, topo.server_states, topo.zones)


# ---- the colo list --------------------------------------------------------------------------
def test_colo_list_is_the_shipped_cloudflare_list() -> None:
    colos = ds.colos()
    assert len(colos) == 339
    codes = [c.code for c in colos]
    assert len(set(codes)) == len(codes)
    sources = Counter(c.coords_source for c in colos)
    assert sources == {"cloudflare": 308, "airportsdata": 29, None: 2}
    assert {c.code for c in colos if c.lat is None} == {"KIV", "JXG"}
    lhr = next(c for c in colos if c.code == "LHR")
    assert lhr.region == "Europe" and lhr.cca2 == "GB"
    assert 51 < lhr.lat < 52 and -1 < lhr.lon < 0
    can = next(c for c in colos if c.code == "CAN")  # filled from airportsdata
    assert can.coords_source == "airportsdata" and 23 < can.lat < 24


def test_licence_notices_ship_with_the_data() -> None:
    from importlib import resources

    folder = resources.files("aegisfwd").joinpath("data/cloudflare-colos")
    for name in ("LICENSE-Netrvin-cloudflare-colo-list.txt", "LICENSE-airportsdata.txt", "README.md"):
        text = folder.joinpath(name).read_text(encoding="utf-8")
        assert text.strip()
    assert "MIT" in folder.joinpath("LICENSE-airportsdata.txt").read_text(encoding="utf-8")


# ---- world shape ----------------------------------------------------------------------------
def test_one_location_per_colo_with_coordinates(world: af.Topology) -> None:
    with_coords = [c for c in ds.colos() if c.lat is not None]
    assert len(world.locations) == len(with_coords) == 337
    assert [loc.id for loc in world.locations] == [c.code for c in with_coords]
    for loc, colo in zip(world.locations, with_coords):
        assert (loc.lat, loc.lon) == (colo.lat, colo.lon)
    assert world.distances is None


def test_data_centers_and_servers(world: af.Topology) -> None:
    per_location = Counter(dc.location for dc in world.data_centers)
    assert set(per_location) == set(world.location_ids)
    assert min(per_location.values()) >= 1 and max(per_location.values()) <= 4
    assert set(per_location.values()) == {1, 2, 3, 4}
    sizes = [len(dc.servers) for dc in world.data_centers]
    assert min(sizes) >= 20 and max(sizes) <= 300
    assert 50_000 <= sum(sizes) <= 70_000
    # Readable ids: LHR01, lhr01-s001; unique across kinds.
    lhr = [dc for dc in world.data_centers if dc.location == "LHR"]
    assert lhr[0].id == "LHR01" and lhr[0].servers[0] == "lhr01-s001"
    ids = list(world.location_ids) + [dc.id for dc in world.data_centers] + list(world.server_ids)
    assert len(set(ids)) == len(ids)


def test_pools_and_ipv4_placement(world: af.Topology) -> None:
    assert len(world.pools) == 20_000
    assert world.pools[0].id == "pool-00001" and world.pools[-1].id == "pool-20000"
    dc_location = {dc.id: dc.location for dc in world.data_centers}
    server_dc = {s: dc.id for dc in world.data_centers for s in dc.servers}
    region = {c.code: c.region for c in ds.colos()}
    whole_dc = partial = same_region = placements = 0
    v4_addresses = []
    for pool in world.pools:
        v4 = [ip for ip in pool.ips if ip.family == 4]
        assert 1 <= len(v4) <= 4
        regions_of_pool = Counter()
        for ip in v4:
            assert ip.network.prefixlen == 32
            v4_addresses.append(ip.network)
            by_location: dict[str, list[str]] = {}
            for h in ip.holders:
                loc = dc_location[h] if h in dc_location else dc_location[server_dc[h]]
                by_location.setdefault(loc, []).append(h)
            assert 1 <= len(by_location) <= 4
            for loc, holders in by_location.items():
                placements += 1
                regions_of_pool[region[loc]] += 1
                if all(h in dc_location for h in holders):
                    whole_dc += 1
                    assert 1 <= len(holders) <= 2 and len(set(holders)) == len(holders)
                else:
                    partial += 1
                    assert all(h in server_dc for h in holders)
                    assert len({server_dc[h] for h in holders}) == 1
                    assert 2 <= len(holders) <= 10 and len(set(holders)) == len(holders)
        same_region += regions_of_pool.most_common(1)[0][1]
    assert len(set(v4_addresses)) == len(v4_addresses)
    assert all(a.subnet_of(ipaddress.IPv4Network("198.18.0.0/15")) for a in v4_addresses)
    assert 0.67 < whole_dc / placements < 0.73
    # "Mostly in the same region as the pool's home": the pool's main region has most placements.
    assert same_region / placements > 0.8


def test_ipv6_ranges(world: af.Topology) -> None:
    v6 = [ip for pool in world.pools for ip in pool.ips if ip.family == 6]
    pools_with_v6 = sum(any(ip.family == 6 for ip in pool.ips) for pool in world.pools)
    assert pools_with_v6 == len(v6)  # at most one /48 per pool
    assert 0.57 < pools_with_v6 / len(world.pools) < 0.63
    nets = [ip.network for ip in v6]
    assert all(n.prefixlen == 48 and n.subnet_of(ipaddress.IPv6Network("2001:db8::/32")) for n in nets)
    assert len(set(nets)) == len(nets)  # distinct /48s of one /32 never overlap
    assert all(set(ip.holders) == set(world.location_ids) for ip in v6)


def test_server_states(world: af.Topology) -> None:
    states = Counter(world.server_states.values())
    assert set(states) <= {"draining", "down"}
    assert set(world.server_states) <= set(world.server_index)
    n = len(world.server_ids)
    assert 0.003 < states["draining"] / n < 0.007
    assert 0.003 < states["down"] / n < 0.007
    codes = np.bincount(world.initial_states(), minlength=3)
    assert codes[1] == states["draining"] and codes[2] == states["down"]


def test_zones_map_to_pools(world: af.Topology) -> None:
    per_pool = Counter(world.zones.values())
    assert set(per_pool) == set(world.pool_ids)
    assert min(per_pool.values()) >= 1 and max(per_pool.values()) <= 3
    assert all(z.endswith(".example") for z in world.zones)
    # The number in the zone name is the pool's.
    z, p = next(iter(world.zones.items()))
    assert z.split("-")[1].split(".")[0] == p.split("-")[1]


def test_world_is_cached_and_deterministic(world: af.Topology) -> None:
    assert ds.world(0) is world
    fresh = ds.world.__wrapped__(0)  # bypass the cache: a rebuild gives the same topology
    assert fresh is not world
    assert _structure(fresh) == _structure(world)


def test_different_seeds_differ(world: af.Topology) -> None:
    other = ds.world(1)
    assert other.location_ids == world.location_ids  # the real colo list does not change
    assert [len(dc.servers) for dc in other.data_centers] != [len(dc.servers) for dc in world.data_centers]
    assert other.pools != world.pools
    assert other.server_states != world.server_states


@pytest.mark.skipif(
    importlib.util.find_spec("aegisfwd._loader") is None,
    reason="Topology.from_dict needs the aegisfwd._loader package, which is not in this tree yet",
)
def test_world_survives_the_loader_round_trip(world: af.Topology) -> None:
    again = af.Topology.from_dict(world.to_dict())
    assert _structure(again) == _structure(world)


# ---- requests -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sample(world: af.Topology) -> ds.Requests:
    return ds.requests(world, 400_000, seed=7)


def test_request_columns(sample: ds.Requests) -> None:
    assert len(sample) == 400_000
    cols = sample.as_dict()
    assert list(cols) == ["server", "pool", "family", "flow"]
    assert cols["server"].dtype == np.int32 and cols["pool"].dtype == np.int32
    assert cols["family"].dtype == np.uint8 and cols["flow"].dtype == np.uint64
    assert all(len(c) == len(sample) for c in cols.values())
    with pytest.raises(AttributeError):
        sample.server = sample.pool  # type: ignore[misc]


def test_requests_come_from_up_servers_only(world: af.Topology, sample: ds.Requests) -> None:
    states = world.initial_states()
    assert (states[sample.server] == 0).all()
    assert sample.server.min() >= 0 and sample.server.max() < len(world.server_ids)
    # Uniform over up servers: most of them get some traffic, none gets much more than its share.
    counts = np.bincount(sample.server, minlength=len(world.server_ids))[states == 0]
    assert (counts > 0).mean() > 0.99
    assert counts.max() < 5 * counts.mean()


def test_family_share_and_flow_keys(sample: ds.Requests) -> None:
    assert set(np.unique(sample.family).tolist()) == {4, 6}
    assert abs((sample.family == 4).mean() - 0.8) < 0.005
    # Uniform 64-bit keys: the top bit is set about half the time and keys hardly ever repeat.
    assert abs((sample.flow >> np.uint64(63)).mean() - 0.5) < 0.01
    assert len(np.unique(sample.flow)) == len(sample)


def test_pool_popularity_is_zipf(world: af.Topology, sample: ds.Requests) -> None:
    n_pools = len(world.pools)
    assert sample.pool.min() >= 0 and sample.pool.max() < n_pools
    counts = np.bincount(sample.pool, minlength=n_pools)
    weights = 1.0 / np.arange(1, n_pools + 1) ** 1.1
    expected = weights / weights.sum()
    # The hottest pool gets its Zipf share; the head outweighs the tail.
    assert abs(counts[0] / len(sample) - expected[0]) < 0.01
    assert counts[:100].sum() > counts[-10_000:].sum()
    assert counts[0] > counts[9] > counts[999]
    head = counts[:10] / len(sample)
    assert np.allclose(head, expected[:10], rtol=0.1)


def test_zipf_sampler_equals_searchsorted() -> None:
    rng = np.random.default_rng(3)
    for n_pools in (1, 2, 7, 20_000, 100_003):
        cdf = ds._zipf_cdf(n_pools)
        assert cdf[-1] == 1.0
        k = 1 << 18
        u = np.concatenate(
            [rng.random(50_000), np.arange(0, k, 97) / k, cdf[:-1], np.nextafter(cdf[:-1], 0), [0.0]]
        )
        u = u[u < 1.0]
        got = ds._zipf_indices(u, cdf)
        assert got.dtype == np.int32
        assert np.array_equal(got, np.searchsorted(cdf, u, side="right"))


def test_requests_are_deterministic_per_seed(world: af.Topology, sample: ds.Requests) -> None:
    again = ds.requests(world, 400_000, seed=7)
    for a, b in zip(sample.as_dict().values(), again.as_dict().values()):
        assert np.array_equal(a, b)
    other = ds.requests(world, 1_000, seed=8)
    assert not np.array_equal(other.flow, sample.flow[:1_000])


def test_requests_edge_cases(world: af.Topology) -> None:
    empty = ds.requests(world, 0)
    assert len(empty) == 0 and empty.flow.dtype == np.uint64
    with pytest.raises(ValueError):
        ds.requests(world, -1)


def test_reachable_as_af_datasets() -> None:
    # The lazy attribute on the package (``af.datasets.world()``), in a fresh interpreter where the
    # submodule has not been imported yet.
    import subprocess
    import sys

    code = "import aegisfwd as af; print(len(af.datasets.colos()))"
    out = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "339"
