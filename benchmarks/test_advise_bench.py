"""Placement advice (``af.advise``) end to end: read the log, aggregate, greedy, re-decide every
advised step with the compiled engine, concurrency after each move.

Groups:

* ``advise | one pool | N rows``: one pool's advice (3 steps, concurrency on) on an N-row log of the
  world topology, for the busiest pool (about 15 % of the rows) and for a median-sized one;
* ``advise | every pool | M rows``: every pool with IPv4 addresses (3 steps each) on an M-row log.

Logs are the demo generator's requests (``evaluation.demo.make_table``) written as Parquet with
1M-row row groups. Sizes: ``AEGISFWD_BENCH_ADVISE_N`` (default 10,000,000; 20,000 with
``--benchmark-disable``) and ``AEGISFWD_BENCH_ADVISE_WORLD_N`` (default 1,000,000; 20,000). Every
run is checked: rows add up, every advised step was re-decided by the engine (``advise`` raises when
the greedy's prediction and the engine disagree), and each step's tier changes sum to zero.

    .venv/bin/pytest benchmarks/test_advise_bench.py --benchmark-columns=min,median,max
"""

from __future__ import annotations

import importlib
import os

import pyarrow.parquet as pq
import pytest

import aegisfwd as af
from aegisfwd.evaluation.demo import make_table


def _n(name: str, timed_default: int, smoke_default: int, config: pytest.Config) -> int:
    value = os.environ.get(name)
    if value:
        return int(value.replace("_", ""))
    return smoke_default if config.getoption("benchmark_disable", False) else timed_default


def _write_log(path, rows: int, topo) -> None:
    writer = None
    seed = 1000
    left = rows
    while left > 0:
        n = min(left, 1_000_000)
        table = make_table(n, seed, topology=topo)
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=1_000_000)
        left -= n
        seed += 1
    assert writer is not None
    writer.close()


@pytest.fixture(scope="module")
def advise_setup(tmp_path_factory, request):
    datasets = importlib.import_module("aegisfwd.datasets")
    topo = datasets.world(0)
    d = tmp_path_factory.mktemp("adviselogs")
    n = _n("AEGISFWD_BENCH_ADVISE_N", 10_000_000, 20_000, request.config)
    world_n = _n("AEGISFWD_BENCH_ADVISE_WORLD_N", 1_000_000, 20_000, request.config)
    _write_log(d / "log.parquet", n, topo)
    if world_n == n:
        world_log = d / "log.parquet"
    else:
        world_log = d / "world.parquet"
        _write_log(world_log, world_n, topo)
    return {
        "topo": topo,
        "log": str(d / "log.parquet"),
        "n": n,
        "world_log": str(world_log),
        "world_n": world_n,
    }


def _check(a, rows_in: int) -> None:
    c = a.counts
    assert c.rows_in == rows_in
    assert c.rows_decided + sum(c.rows_rejected.values()) + c.rows_out_of_scope == rows_in
    for m in a.moves:
        assert sum(m.tier_delta().values()) == 0
        assert m.after.rows == m.before.rows


@pytest.mark.parametrize("which", ["busiest", "median"])
def test_advise_one_pool(benchmark, advise_setup, sizes, which: str) -> None:
    s = advise_setup
    topo = s["topo"]
    # Pools are drawn Zipf-like in file order: the first is the busiest; pool 200 gets ~0.1 % of rows.
    pool = topo.pools[0 if which == "busiest" else 200].id
    benchmark.group = f"advise | one pool | {s['n']:,} rows"
    result = {}

    def run() -> None:
        result["a"] = af.advise(s["log"], topo, pools=[pool], steps=3)

    benchmark.pedantic(run, rounds=sizes.rounds if sizes.rounds < 3 else 2, iterations=1)
    a = result["a"]
    _check(a, s["n"])
    benchmark.extra_info.update({k: round(v, 3) for k, v in a.timings.items()})
    benchmark.extra_info["rows_in_scope"] = a.counts.rows_decided


def test_advise_every_pool(benchmark, advise_setup, sizes) -> None:
    s = advise_setup
    benchmark.group = f"advise | every pool | {s['world_n']:,} rows"
    result = {}

    def run() -> None:
        result["a"] = af.advise(s["world_log"], s["topo"], steps=3)

    benchmark.pedantic(run, rounds=1, iterations=1)
    a = result["a"]
    _check(a, s["world_n"])
    assert a.moves
    benchmark.extra_info.update({k: round(v, 3) for k, v in a.timings.items()})
    benchmark.extra_info["pools_with_moves"] = len({m.pool for m in a.moves})
