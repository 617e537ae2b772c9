"""The benchmark machinery: ``aegisfwd bench``, its workloads and floor, and the peers' agreement.

The peers (``benchmarks/peers``) are only worth timing if they compute what the engine computes, so
each is held to ``ReferenceEngine`` here: on random small topologies (``strategies.topologies``: ties,
unreachable locations, states on servers/DCs/locations, holders of every kind, empty DCs and
locations) and on the three benchmark workloads.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import FLOWS, topologies

import aegisfwd as af
from aegisfwd.bench import floor as bench_floor
from aegisfwd.bench.paths import FULL_COLUMNS, TIER_LOCATION_COLUMNS, Bench, compare_columns, peer_module
from aegisfwd.bench.runner import Settings
from aegisfwd.bench.workloads import IPV6_HEAVY_SHARE, WORKLOADS, make, scarce_ipv4_topology
from aegisfwd.cli import main

RECORD_KEYS = {
    "path",
    "workload",
    "threads",
    "computes",
    "decisions_per_s",
    "agrees",
    "fraction_of_floor",
    "rows",
}


def _peer(name: str, topo: af.Topology, **kw):
    cls = {
        "python": ("pure_python", "PurePythonPeer"),
        "numpy": ("numpy_peer", "NumpyPeer"),
        "duckdb": ("duckdb_peer", "DuckDBPeer"),
    }[name]
    return getattr(peer_module(cls[0]), cls[1])(topo, **kw)


def _reference(topo: af.Topology, cols: tuple[np.ndarray, ...]) -> dict[str, np.ndarray]:
    return af.ReferenceEngine(topo).decide_batch(*cols).columns()


def _assert_same(got: dict[str, np.ndarray], want: dict[str, np.ndarray], columns: tuple[str, ...]) -> None:
    for name in columns:
        a, b = np.asarray(got[name]), np.asarray(want[name])
        bad = np.flatnonzero(~((a == b) | (np.isnan(a.astype(float)) & np.isnan(b.astype(float)))))
        assert bad.size == 0, f"column {name}: rows {bad[:5].tolist()} differ: {a[bad[:5]]} != {b[bad[:5]]}"


# ---- aegisfwd bench -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def quick_records() -> list[dict]:
    result = CliRunner().invoke(main, ["bench", "--quick", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_bench_quick_json_records_are_well_formed_and_agree(quick_records: list[dict]) -> None:
    assert quick_records
    for r in quick_records:
        assert set(r) == RECORD_KEYS
        assert r["agrees"] is True, r
        assert r["workload"] == "world"
        assert r["computes"] in ("full", "tier+location")
        assert isinstance(r["threads"], int) and r["threads"] >= 1
        assert isinstance(r["rows"], int) and r["rows"] >= 1
        assert math.isfinite(r["decisions_per_s"]) and r["decisions_per_s"] > 0
        assert math.isfinite(r["fraction_of_floor"]) and r["fraction_of_floor"] > 0
    paths = {(r["path"], r["threads"]) for r in quick_records}
    assert ("engine.decide_batch", 1) in paths
    assert {p for p, _ in paths} >= {
        "engine.decide[cython]",
        "engine.decide[pybind11]",
        "reference.decide",
        "peer.python",
        "peer.numpy",
        "peer.numpy[tier+location]",
        "peer.duckdb",
        "evaluate",
    }
    computes = {r["path"]: r["computes"] for r in quick_records}
    assert computes["peer.duckdb"] == computes["peer.numpy[tier+location]"] == "tier+location"
    assert computes["peer.python"] == computes["peer.numpy"] == computes["engine.decide_batch"] == "full"


def test_bench_table_output_and_options() -> None:
    result = CliRunner().invoke(
        main,
        [
            "bench",
            "--quick",
            "--no-peers",
            "-w",
            "scarce-ipv4",
            "-n",
            "300",
            "--scalar-rows",
            "50",
            "-t",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "scarce-ipv4: 300 requests" in result.stdout
    assert "engine.decide_batch" in result.stdout and "peer." not in result.stdout
    assert "NO" not in result.stdout


@pytest.mark.parametrize(
    "args",
    [["-w", "no-such-workload"], ["-n", "0"], ["-t", "0"], ["--repeat", "0"]],
)
def test_bench_rejects_bad_options(args: list[str]) -> None:
    result = CliRunner().invoke(main, ["bench", "--quick", *args])
    assert result.exit_code == 2
    assert "Invalid value" in result.output


def _tiny_workload(n: int = 300):
    """A three-location topology and ``n`` requests drawn by ``datasets.requests``."""
    from aegisfwd.bench.workloads import Workload
    from aegisfwd.datasets import requests

    topo = af.Topology.from_dict(
        {
            "locations": [
                {"id": "LHR", "lat": 51.47, "lon": -0.45},
                {"id": "AMS", "lat": 52.31, "lon": 4.76},
                {"id": "SYD", "lat": -33.95, "lon": 151.18},
            ],
            "data_centers": [
                {"id": "LHR01", "location": "LHR", "servers": [f"lhr01-s{i}" for i in range(6)]},
                {"id": "LHR02", "location": "LHR", "servers": [f"lhr02-s{i}" for i in range(4)]},
                {"id": "AMS01", "location": "AMS", "servers": [f"ams01-s{i}" for i in range(5)]},
                {"id": "SYD01", "location": "SYD", "servers": [f"syd01-s{i}" for i in range(3)]},
            ],
            "server_states": {"lhr01-s1": "down", "ams01-s0": "draining"},
            "pools": [
                {
                    "id": "a",
                    "ips": [
                        {"address": "192.0.2.1", "holders": ["LHR02"]},
                        {"address": "2001:db8:a::/48", "holders": ["LHR", "AMS", "SYD"]},
                    ],
                },
                {"id": "b", "ips": [{"address": "192.0.2.2", "holders": ["ams01-s1", "ams01-s2"]}]},
                {
                    "id": "c",
                    "ips": [
                        {"address": "192.0.2.3", "holders": ["SYD01"]},
                        {"address": "192.0.2.4", "holders": ["lhr01-s1"]},
                    ],
                },
            ],
            "zones": {"a.example": "a", "b.example": "b", "c.example": "c"},
        }
    )
    return Workload("tiny", topo, requests(topo, n, 0), 0)


def test_runner_reports_disagreement() -> None:
    """A path whose answer differs from the reference is reported with agrees=False, not hidden."""
    from aegisfwd.bench.runner import run_workload

    class BrokenNumpy(Bench):
        def numpy_peer(self, w, computes="full"):
            p = super().numpy_peer(w, computes)
            run_ok = p.run

            def run() -> dict[str, np.ndarray]:
                cols = dict(run_ok())
                cols["tier"] = np.where(cols["tier"] == 3, 2, cols["tier"]).astype(np.uint8)
                return cols

            p.run = run
            return p

    w = _tiny_workload()
    assert (af.ReferenceEngine(w.topology).decide_batch(*w.columns).tier == 3).any()
    s = Settings(workloads=(), n=len(w), scalar_rows=20, check_rows=len(w), threads=(1, 2), repeat=1)
    report = run_workload(BrokenNumpy(), w, s)
    records = {(r.path, r.threads): r for r in report.records}
    assert records[("peer.numpy", 1)].agrees is False
    assert records[("peer.numpy[tier+location]", 1)].agrees is False
    assert all(r.agrees for key, r in records.items() if not key[0].startswith("peer.numpy"))
    assert {("engine.decide_batch", 2), ("peer.duckdb", 2), ("peer.python", 1), ("evaluate", 2)} <= set(
        records
    )
    assert set(report.floors) == {1, 2} and not report.skipped
    assert report.floors[2].seconds <= report.floors[1].seconds  # the best copy on at most 2 threads
    assert sum(report.tiers.values()) == pytest.approx(1.0)


# ---- workloads ------------------------------------------------------------------------------------
def test_workloads_are_deterministic() -> None:
    for name in WORKLOADS:
        a, b = make(name, 500, seed=3), make(name, 500, seed=3)
        assert a.topology is b.topology
        for x, y in zip(a.columns, b.columns, strict=True):
            assert np.array_equal(x, y)
        c = make(name, 500, seed=4)
        assert not np.array_equal(a.requests.flow, c.requests.flow)


def test_ipv6_heavy_is_mostly_ipv6_and_local() -> None:
    w = make("ipv6-heavy", 5_000)
    share6 = float(np.mean(w.requests.family == 6))
    assert abs(share6 - IPV6_HEAVY_SHARE) < 0.03
    has_v6 = np.array([any(ip.family == 6 for ip in p.ips) for p in w.topology.pools])
    assert has_v6[w.requests.pool].all()
    tier = af.Engine(w.topology).decide_batch(*w.columns).tier
    assert np.mean(tier == af.Tier.LOCAL) > 0.85


def test_scarce_ipv4_holds_each_ipv4_address_in_one_location() -> None:
    topo = scarce_ipv4_topology(0)
    world = make("world", 1).topology
    assert topo.server_ids == world.server_ids and topo.pool_ids == world.pool_ids
    location_ids = set(topo.location_ids)
    for pool, original in zip(topo.pools, world.pools, strict=True):
        for ip, before in zip(pool.ips, original.ips, strict=True):
            assert ip.network == before.network
            if ip.family == 4:
                assert len(ip.holders) == 1 and ip.holders[0] in location_ids
            else:
                assert ip.holders == before.holders
    w = make("scarce-ipv4", 5_000)
    r = af.Engine(w.topology).decide_batch(*w.columns)
    v4 = w.requests.family == 4
    assert np.mean(r.tier[v4] == af.Tier.REMOTE) > 0.8


def test_make_rejects_unknown_workload_and_bad_n() -> None:
    with pytest.raises(ValueError, match="unknown workload"):
        make("nope", 10)
    with pytest.raises(ValueError, match="n must be"):
        make("world", 0)


# ---- floor ----------------------------------------------------------------------------------------
def test_floor_copies_every_column_and_counts_42_bytes() -> None:
    assert bench_floor.BYTES_PER_DECISION == 42
    for threads in (1, 3):
        with bench_floor.CopyColumns(1001, threads) as copy:
            copy()
            for s, d in zip(copy.src, copy.dst, strict=True):
                assert np.array_equal(s, d)
    f = bench_floor.measure_floor(10_000, threads=2, repeat=2, min_seconds=0)
    assert f.rows == 10_000 and f.threads == 2
    assert f.decisions_per_s > 0 and f.gb_per_s == pytest.approx(84 * f.decisions_per_s / 1e9)


# ---- peers agree with the reference ------------------------------------------------------------------
@st.composite
def topology_and_requests(draw):
    topo = draw(topologies())
    n_s, n_p = len(topo.server_ids), len(topo.pool_ids)
    rows = draw(
        st.lists(
            st.tuples(st.integers(0, n_s - 1), st.integers(0, n_p - 1), st.sampled_from((4, 6)), FLOWS),
            min_size=1,
            max_size=30,
        )
    )
    s, p, f, h = zip(*rows, strict=True)
    cols = (np.array(s, np.int32), np.array(p, np.int32), np.array(f, np.uint8), np.array(h, np.uint64))
    return topo, cols


@given(topology_and_requests())
def test_python_peer_agrees_on_every_column(case) -> None:
    topo, cols = case
    _assert_same(_peer("python", topo).decide_batch(*cols), _reference(topo, cols), FULL_COLUMNS)


@given(topology_and_requests())
def test_python_peer_scalar_decide_answers_with_ids(case) -> None:
    topo, cols = case
    peer, ref = _peer("python", topo), af.ReferenceEngine(topo)
    for s, p, f, h in zip(*(c.tolist() for c in cols), strict=True):
        tier, server, dc, location, ip, distance = peer.decide(topo.server_ids[s], topo.pool_ids[p], f, h)
        d = ref.decide(s, p, f, flow=h)
        assert (tier, server, dc, location, ip) == (int(d.tier), d.server, d.dc, d.location, d.ip)
        assert distance == d.distance or (math.isnan(distance) and math.isnan(d.distance))


@given(topology_and_requests(), st.sampled_from(["full", "tier+location"]), st.integers(1, 7))
def test_numpy_peer_agrees(case, computes: str, chunk: int) -> None:
    topo, cols = case
    peer = _peer("numpy", topo, computes=computes, chunk=chunk)
    got = peer.decide_batch(*cols)
    _assert_same(got, _reference(topo, cols), FULL_COLUMNS if computes == "full" else TIER_LOCATION_COLUMNS)
    assert set(got) == set(FULL_COLUMNS if computes == "full" else TIER_LOCATION_COLUMNS)


@settings(max_examples=20)
@given(topology_and_requests())
def test_duckdb_peer_agrees_on_tier_and_location(case) -> None:
    pytest.importorskip("duckdb")
    topo, cols = case
    peer = _peer("duckdb", topo, threads=1)
    assert peer.computes == "tier+location"
    _assert_same(peer.decide_batch(*cols), _reference(topo, cols), TIER_LOCATION_COLUMNS)


@pytest.fixture(scope="module")
def bench() -> Bench:
    return Bench()


@pytest.mark.parametrize("name", WORKLOADS)
def test_peers_agree_on_each_workload(bench: Bench, name: str) -> None:
    w = make(name, 400, seed=1)
    want = bench.reference_columns(w, len(w))
    for kind, columns in (
        ("python", FULL_COLUMNS),
        ("numpy", FULL_COLUMNS),
        ("numpy[tier+location]", TIER_LOCATION_COLUMNS),
        ("duckdb", TIER_LOCATION_COLUMNS),
    ):
        if kind == "duckdb":
            pytest.importorskip("duckdb")
        got = bench.peer(w, kind).decide_batch(*w.columns)
        _assert_same(got, want, columns)
        assert compare_columns(got, want, "full" if columns == FULL_COLUMNS else "tier+location")


def test_python_peer_rejects_unknown_inputs() -> None:
    peer = _peer("python", make("world", 1).topology)
    with pytest.raises(ValueError, match="unknown server"):
        peer.decide("no-such-server", "pool-00001", 4, 1)
    with pytest.raises(ValueError, match="unknown pool"):
        peer.decide("lhr01-s001", "no-such-pool", 4, 1)
    with pytest.raises(ValueError, match="family"):
        peer.decide("lhr01-s001", "pool-00001", 5, 1)


def test_numpy_peer_rejects_unknown_computes() -> None:
    with pytest.raises(ValueError, match="computes"):
        _peer("numpy", make("world", 1).topology, computes="tier")
