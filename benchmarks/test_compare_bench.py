"""The engine against its peers and the memory floor, one pytest-benchmark group per input.

Groups (``--benchmark-group-by=group``, the default):

* ``<workload> | batch | N rows``: the compiled engine's ``decide_batch`` on every thread count, the NumPy
  peer (full decision and tier+location), the DuckDB peer on every thread count, and the floor (a NumPy
  copy of the 42 bytes each decision reads and writes) on every thread count: all on the same N requests.
* ``<workload> | per-row | M rows``: ``engine.decide``/``decide_indices`` through each binding (Cython, pybind11),
  ``ReferenceEngine.decide``, the pure-Python peer, and ``decide_batch`` on the same first M requests.
* ``<topology> | compile/load``: compile from the topology file, and load a saved compiled file.

Every path's answer is checked before it is timed: against ``ReferenceEngine`` on the first
``AEGISFWD_BENCH_CHECK_N`` requests and against the engine's single-threaded batch on every request the
path decides (all columns for full decisions; tier, location and distance for tier+location peers).
Sizes: see ``conftest.py``. With ``--benchmark-disable`` every test runs once, small, as a smoke test.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import aegisfwd as af
from aegisfwd.bench.floor import CopyColumns
from aegisfwd.bench.paths import Bench, Unavailable, compare_columns
from aegisfwd.bench.workloads import Workload


def _batch_group(w: Workload) -> str:
    return f"{w.name} | batch | {len(w):,} rows"


def _prepared(build):
    try:
        return build()
    except Unavailable as exc:
        pytest.skip(str(exc))


# ---- batch group: every path on the same N requests ----------------------------------------------
def test_engine_batch(benchmark, workload, bench: Bench, bench_threads, check_then_time, floor_of) -> None:
    benchmark.group = _batch_group(workload)
    check_then_time(_prepared(lambda: bench.batch(workload, bench_threads)), floor_of(bench_threads))


@pytest.mark.parametrize("computes", ["full", "tier+location"])
def test_numpy_peer(benchmark, workload, bench: Bench, computes, check_then_time, floor_of) -> None:
    pytest.importorskip("numpy")
    benchmark.group = _batch_group(workload)
    check_then_time(bench.numpy_peer(workload, computes), floor_of(1))


def test_duckdb_peer(benchmark, workload, bench: Bench, bench_threads, check_then_time, floor_of) -> None:
    pytest.importorskip(
        "duckdb", reason="the DuckDB peer needs the bench extra: pip install 'aegisfwd[bench]'"
    )
    benchmark.group = _batch_group(workload)
    check_then_time(bench.duckdb_peer(workload, bench_threads), floor_of(bench_threads))


def test_floor_copy(benchmark, workload, bench_threads, sizes) -> None:
    benchmark.group = _batch_group(workload)
    benchmark.extra_info.update(path="floor.copy", threads=bench_threads, rows=len(workload))
    with CopyColumns(len(workload), bench_threads) as copy:
        if benchmark.enabled:
            benchmark.pedantic(copy, rounds=max(sizes.rounds, 5), iterations=1, warmup_rounds=1)
            benchmark.extra_info["decisions_per_s"] = len(workload) / benchmark.stats.stats.min
        else:
            benchmark(copy)
        for s, d in zip(copy.src, copy.dst, strict=True):
            assert (s == d).all()


# ---- per-row group: the scalar calls on the same first M requests ---------------------------------
SCALAR_PATHS = [
    "engine.decide[cython]",
    "engine.decide_indices[cython]",
    "engine.decide[pybind11]",
    "reference.decide",
    "peer.python",
    "engine.decide_batch",
]


@pytest.mark.parametrize("path", SCALAR_PATHS)
def test_per_row(benchmark, workload, bench: Bench, sizes, path, check_then_time, floor_of) -> None:
    head = workload.head(sizes.scalar_n)
    benchmark.group = f"{workload.name} | per-row | {len(head):,} rows"
    if path == "peer.python":
        p = bench.python_peer(workload, sizes.scalar_n)
    elif path == "engine.decide_batch":
        p = _prepared(lambda: bench.batch(head, 1))
    else:
        p = _prepared(lambda: bench.scalar_path(workload, sizes.scalar_n, path))
    check_then_time(p, floor_of(1))


# ---- compile and load ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def compiled_files(tmp_path_factory: pytest.TempPathFactory, workload: Workload) -> tuple[Path, Path]:
    """The workload's topology as a JSON file and as a saved compiled file."""
    folder = tmp_path_factory.mktemp(workload.name)
    topo_file = folder / "topology.json"
    topo_file.write_text(json.dumps(workload.topology.to_dict()))
    compiled_file = folder / "topology.aegisfwd"
    workload.topology.compile().save(compiled_file)
    return topo_file, compiled_file


def _check_engine_answers(engine, workload: Workload, expected, sizes) -> None:
    head = workload.head(sizes.check_n)
    got = engine.decide_batch(*head.columns).columns()
    assert compare_columns(got, expected, "full", rows=sizes.check_n)


@pytest.mark.parametrize("step", ["load_topology+compile", "compile", "load_compiled+Engine"])
def test_compile_and_load(benchmark, workload, compiled_files, expected, sizes, step) -> None:
    if workload.name == "ipv6-heavy":
        pytest.skip("same topology as 'world'")
    topo_file, compiled_file = compiled_files
    benchmark.group = f"{workload.name} | compile/load | {len(workload.topology.server_ids):,} servers"
    benchmark.extra_info.update(path=step)
    run = {
        "load_topology+compile": lambda: af.load_topology(topo_file).compile(),
        "compile": lambda: workload.topology.compile(),
        "load_compiled+Engine": lambda: af.Engine(af.load_compiled(compiled_file)),
    }[step]
    if benchmark.enabled:
        t0 = time.perf_counter()
        result = run()
        benchmark.pedantic(
            run, rounds=sizes.rounds if time.perf_counter() - t0 < sizes.slow_s else 1, iterations=1
        )
    else:
        result = benchmark(run)
    engine = result if step == "load_compiled+Engine" else af.Engine(result)
    _check_engine_answers(engine, workload, expected, sizes)


# ---- evaluate end to end ---------------------------------------------------------------------------
@pytest.fixture(scope="session")
def eval_workload(bench_workload: str, sizes) -> Workload:
    from aegisfwd.bench.workloads import make

    return make(bench_workload, sizes.eval_n)


def test_evaluate(benchmark, eval_workload, bench: Bench, bench_threads, sizes, tmp_path_factory) -> None:
    """``af.evaluate`` from a Parquet log to a Parquet decisions file; checked row by row (``Bench.evaluate``)."""
    pytest.importorskip("pyarrow", reason="evaluate needs the analysis extra")
    w = eval_workload
    benchmark.group = f"{w.name} | evaluate | {len(w):,} log rows"
    p = _prepared(lambda: bench.evaluate(w, tmp_path_factory.getbasetemp(), bench_threads, sizes.check_n))
    benchmark.extra_info.update(path=p.path, computes=p.computes, threads=bench_threads, rows=p.rows)
    if benchmark.enabled:
        t0 = time.perf_counter()
        assert p.check(p.run()), "evaluate's decisions disagree with the engine or the reference"
        rounds = sizes.rounds if time.perf_counter() - t0 < sizes.slow_s else 1
        benchmark.pedantic(p.run, rounds=rounds, iterations=1)
        benchmark.extra_info["decisions_per_s"] = p.rows / benchmark.stats.stats.min
    else:
        assert p.check(benchmark(p.run)), "evaluate's decisions disagree with the engine or the reference"
