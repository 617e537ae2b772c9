"""Shared setup of the benchmark suite: sizes, workloads, expected answers, floors.

Sizes come from the environment, with defaults that depend on whether pytest-benchmark times anything:

=============================  ======================  ==================================
variable                       timed (default)         ``--benchmark-disable`` (smoke)
=============================  ======================  ==================================
``AEGISFWD_BENCH_N``           10,000,000 requests     2,000
``AEGISFWD_BENCH_SCALAR_N``    20,000 (per-row paths)  200
``AEGISFWD_BENCH_CHECK_N``     20,000 (reference)      2,000
``AEGISFWD_BENCH_EVAL_N``      1,000,000 log rows      2,000
``AEGISFWD_BENCH_ROUNDS``      3                       1
``AEGISFWD_BENCH_THREADS``     1,2,4,… and all cores   1 and all cores
``AEGISFWD_BENCH_WORKLOADS``   world,ipv6-heavy,scarce-ipv4
``AEGISFWD_BENCH_SLOW_S``      5 (a path whose checked call takes longer is timed in one round)
=============================  ======================  ==================================

Expensive objects (engines, peers, reference answers) are built once per session and shared by every
test on the same topology.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from aegisfwd.bench.floor import Floor, measure_floor
from aegisfwd.bench.paths import Bench, Prepared, all_cores, compare_columns
from aegisfwd.bench.runner import default_threads
from aegisfwd.bench.workloads import WORKLOADS, Workload, make


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value.replace("_", "")) if value else default


def _env_list(name: str, default: tuple[Any, ...], cast: type = str) -> tuple[Any, ...]:
    value = os.environ.get(name)
    return tuple(cast(v.strip()) for v in value.split(",") if v.strip()) if value else default


@dataclass(frozen=True)
class Sizes:
    n: int
    scalar_n: int
    check_n: int
    eval_n: int
    rounds: int
    threads: tuple[int, ...]
    workloads: tuple[str, ...]
    slow_s: float


def _sizes(timed: bool) -> Sizes:
    threads = default_threads() if timed else tuple(sorted({1, all_cores()}))
    n = _env_int("AEGISFWD_BENCH_N", 10_000_000 if timed else 2_000)
    return Sizes(
        n=n,
        scalar_n=min(n, _env_int("AEGISFWD_BENCH_SCALAR_N", 20_000 if timed else 200)),
        check_n=min(n, _env_int("AEGISFWD_BENCH_CHECK_N", 20_000 if timed else 2_000)),
        eval_n=_env_int("AEGISFWD_BENCH_EVAL_N", 1_000_000 if timed else 2_000),
        rounds=_env_int("AEGISFWD_BENCH_ROUNDS", 3 if timed else 1),
        threads=tuple(sorted(set(_env_list("AEGISFWD_BENCH_THREADS", threads, int)) | {1})),
        workloads=_env_list("AEGISFWD_BENCH_WORKLOADS", WORKLOADS),
        slow_s=float(os.environ.get("AEGISFWD_BENCH_SLOW_S") or 5.0),
    )


_SIZES: Sizes | None = None


def sizes_of(config: pytest.Config) -> Sizes:
    global _SIZES
    if _SIZES is None:
        _SIZES = _sizes(timed=not config.getoption("benchmark_disable", False))
    return _SIZES


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    s = sizes_of(metafunc.config)
    # Distinct names, so that no other benchmark module's own ``threads``/``workload`` is parametrized.
    if "bench_workload" in metafunc.fixturenames:
        metafunc.parametrize("bench_workload", s.workloads, scope="session")
    if "bench_threads" in metafunc.fixturenames:
        metafunc.parametrize("bench_threads", s.threads, ids=lambda t: f"{t}t")


@pytest.fixture(scope="session")
def sizes(request: pytest.FixtureRequest) -> Sizes:
    return sizes_of(request.config)


@pytest.fixture(scope="session")
def bench() -> Bench:
    """Engines and peers, built once per topology."""
    return Bench()


class _Session:
    """Per-workload objects computed once: the workload, its reference answers, the engine's answer, floors."""

    def __init__(self) -> None:
        self.workloads: dict[str, Workload] = {}
        self.expected: dict[str, dict[str, np.ndarray]] = {}
        self.truth: dict[str, dict[str, np.ndarray]] = {}
        self.floors: dict[tuple[str, int], Floor] = {}


@pytest.fixture(scope="session")
def _session() -> _Session:
    return _Session()


@pytest.fixture(scope="session")
def workload(bench_workload: str, sizes: Sizes, _session: _Session) -> Workload:
    """The workload named by the ``bench_workload`` parameter, with ``sizes.n`` requests."""
    if bench_workload not in _session.workloads:
        _session.workloads[bench_workload] = make(bench_workload, sizes.n)
    return _session.workloads[bench_workload]


@pytest.fixture(scope="session")
def expected(workload: Workload, bench: Bench, sizes: Sizes, _session: _Session) -> dict[str, np.ndarray]:
    """ReferenceEngine's answers for the first ``check_n`` requests."""
    if workload.name not in _session.expected:
        _session.expected[workload.name] = bench.reference_columns(workload, sizes.check_n)
    return _session.expected[workload.name]


@pytest.fixture(scope="session")
def truth(
    workload: Workload, bench: Bench, expected: dict[str, np.ndarray], sizes: Sizes, _session: _Session
) -> dict[str, np.ndarray]:
    """The compiled engine's single-threaded answers for every request, checked against the reference."""
    if workload.name not in _session.truth:
        p = bench.batch(workload, 1)
        cols = p.columns(p.run())
        assert compare_columns(cols, expected, "full", rows=sizes.check_n), (
            "engine disagrees with ReferenceEngine"
        )
        _session.truth[workload.name] = cols
    return _session.truth[workload.name]


@pytest.fixture(scope="session")
def floor_of(workload: Workload, sizes: Sizes, _session: _Session):
    """``floor_of(threads)``: the copy floor on this workload's row count (measured once per thread count)."""

    def get(threads: int) -> Floor:
        key = (workload.name, threads)
        if key not in _session.floors:
            _session.floors[key] = measure_floor(len(workload), threads)
        return _session.floors[key]

    return get


@pytest.fixture
def check_then_time(
    benchmark: Any, expected: dict[str, np.ndarray], truth: dict[str, np.ndarray], sizes: Sizes
):
    """``check_then_time(prepared, floor=None)``: see ``_check_then_time``."""
    return lambda p, floor=None: _check_then_time(benchmark, p, expected, truth, sizes, floor)


def _check_then_time(
    benchmark: Any,
    p: Prepared,
    expected: dict[str, np.ndarray],
    truth: dict[str, np.ndarray],
    sizes: Sizes,
    floor: Floor | None = None,
) -> None:
    """Check ``p`` against the reference (first ``check_n`` rows) and the engine (every row it decides),
    then time it; the result of every timed call is checked again in smoke mode (one untimed call)."""

    def check(result: Any) -> None:
        cols = p.columns(result)
        assert compare_columns(cols, expected, p.computes, rows=min(p.rows, sizes.check_n)), (
            f"{p.path} disagrees with ReferenceEngine"
        )
        assert compare_columns(cols, truth, p.computes, rows=p.rows), f"{p.path} disagrees with the engine"

    benchmark.extra_info.update(path=p.path, computes=p.computes, threads=p.threads, rows=p.rows)
    if not benchmark.enabled:
        check(benchmark(p.run))
        return
    t0 = time.perf_counter()
    check(p.run())
    # A path slower than AEGISFWD_BENCH_SLOW_S per call (pure Python, DuckDB and NumPy on 10M rows)
    # is timed once: call-to-call variation is small next to its cost, and it would dominate the run.
    rounds = sizes.rounds if time.perf_counter() - t0 < sizes.slow_s else 1
    benchmark.pedantic(p.run, rounds=rounds, iterations=1)
    best = benchmark.stats.stats.min
    benchmark.extra_info["decisions_per_s"] = p.rows / best
    if floor is not None:
        benchmark.extra_info["fraction_of_floor"] = p.rows / best / floor.decisions_per_s
