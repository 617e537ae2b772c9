"""Loading and compiling a topology with a large explicit distance matrix.

A matrix of N locations is N² distances: the compiler sorts every row into a nearest-first order, and
once took four times as long as loading the file (16.5 s against 4 s at 3,000 locations on 2 cores).
This holds compile time beside load time, and checks the compiled answers against the reference.

``AEGISFWD_BENCH_MATRIX_N`` locations: 3,000 when timed, 300 in the smoke run (``--benchmark-disable``).
"""

from __future__ import annotations

import ipaddress
import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

import aegisfwd as af
from aegisfwd.compiled import compile_topology
from aegisfwd.topology import AegisIP, DataCenter, DistanceMatrix, Location, Pool, Topology


def matrix_topology(n: int, seed: int = 0) -> Topology:
    """``n`` locations with an explicit km matrix (asymmetric, some pairs unreachable), a DC of two
    servers in every fifth location, and 200 pools whose IPv4 address is held in 1-4 locations."""
    rng = np.random.default_rng(seed)
    ids = tuple(f"L{k:05d}" for k in range(n))
    matrix = np.round(rng.uniform(1.0, 20_000.0, (n, n)), 3)
    np.fill_diagonal(matrix, 0.0)
    rows = matrix.tolist()
    for a, b in rng.integers(0, n, (n // 10, 2)).tolist():
        if a != b:
            rows[a][b] = None  # unreachable from a to b
    dcs = tuple(DataCenter(f"{ids[k]}-dc", ids[k], (f"{ids[k]}-s1", f"{ids[k]}-s2")) for k in range(0, n, 5))
    holders = [d.id for d in dcs]
    pools = tuple(
        Pool(
            f"pool-{p:03d}",
            (
                AegisIP(
                    ipaddress.ip_network(f"198.18.{p // 250}.{p % 250 + 1}/32"),
                    tuple(sorted(set(rng.choice(holders, int(rng.integers(1, 5))).tolist()))),
                ),
            ),
        )
        for p in range(200)
    )
    return Topology(
        tuple(Location(i) for i in ids),
        dcs,
        pools,
        distances=DistanceMatrix("km", ids, tuple(map(tuple, rows))),
    )


@pytest.fixture(scope="module")
def matrix_file(tmp_path_factory, request) -> tuple[Path, int]:
    timed = not request.config.getoption("benchmark_disable")
    n = int(os.environ.get("AEGISFWD_BENCH_MATRIX_N") or (3000 if timed else 300))
    path = tmp_path_factory.mktemp("matrix") / f"matrix-{n}.json"
    path.write_text(json.dumps(matrix_topology(n).to_dict()))
    return path, n


def test_load_then_compile_large_matrix(benchmark, matrix_file) -> None:
    path, n = matrix_file
    benchmark.group = "topology | large distance matrix"
    t0 = time.perf_counter()
    topo = af.load_topology(path)
    load_s = time.perf_counter() - t0
    assert len(topo.locations) == n

    compiled = benchmark.pedantic(compile_topology, args=(topo,), rounds=1, iterations=1)

    # The answers: every server of a sample asking for every pool, the compiled engine against the
    # reference (REMOTE answers walk the nearest-first order the compiler built).
    engine, ref = af.Engine(compiled), af.ReferenceEngine(topo)
    rng = np.random.default_rng(1)
    servers = rng.choice(np.array(engine.servers, dtype=object), 400)
    pools = rng.choice(np.array(engine.pools, dtype=object), 400)
    args = (list(servers), list(pools), [4] * 400, rng.integers(0, 2**63, 400, dtype=np.uint64))
    got = engine.decide_batch(*args)
    assert got.equals(ref.decide_batch(*args))
    assert (got.tier == af.Tier.REMOTE).any()  # REMOTE answers were checked, not only local ones
    if benchmark.enabled:
        compile_s = benchmark.stats.stats.min
        benchmark.extra_info.update(
            locations=n,
            json_mb=round(path.stat().st_size / 2**20, 1),
            load_s=round(load_s, 3),
            compile_s=round(compile_s, 3),
            compile_over_load=round(compile_s / load_s, 3),
        )
