"""The compiled engine's own paths on the world workload (pytest-benchmark).

Groups:

* ``engine | batch | N rows``: ``Engine.decide_batch`` for every C++ kernel this CPU runs
  (generic, AVX2, AVX-512) on 1 and 2 threads, on the same N requests;
* ``engine | scalar | M calls``: ``Engine.decide`` (Cython, returns a ``FastDecision``) and
  ``Engine.decide_indices`` (a plain tuple), one Python call per request;
* ``engine | set_state``: one state change on a server, a DC or a location (down, then up again);
* ``engine | construction``: ``Engine(compiled)`` from compiled tables (validation + derived indexes).

Every path is checked before it is timed: batch columns against ``ReferenceEngine`` on the first
``AEGISFWD_BENCH_CHECK_N`` requests and against the generic single-threaded kernel on every request;
scalar results against the batch; state changes by deciding again afterwards. Sizes come from
``benchmarks/conftest.py`` (``AEGISFWD_BENCH_N``, ``_SCALAR_N``, ``_CHECK_N``, ``_ROUNDS``); with
``--benchmark-disable`` each test runs once, small, still checked.

    pytest benchmarks/test_engine_bench.py --benchmark-columns=min,median,rounds
"""

from __future__ import annotations

import time

import numpy as np
import pytest

import aegisfwd as af
from aegisfwd import datasets
from aegisfwd.engine import available_isas

COLUMNS = ("tier", "server", "dc", "location", "ip", "distance")


class World:
    def __init__(self, n: int, check_n: int) -> None:
        self.topo = datasets.world()
        self.compiled = self.topo.compile()
        req = datasets.requests(self.topo, n, seed=1)
        self.args = (req.server, req.pool, req.family, req.flow)
        ref = af.ReferenceEngine(self.topo)
        self.expected = ref.decide_batch(*(a[:check_n] for a in self.args))
        self.check_n = check_n
        self.engine = af.Engine(self.compiled)
        self.truth = af.Engine(self.compiled, isa="generic").decide_batch(*self.args, threads=1)
        assert self.agrees(self.truth), "the generic kernel disagrees with ReferenceEngine"

    def agrees(self, r: af.BatchResult) -> bool:
        k = self.check_n
        return all(
            np.array_equal(getattr(r, c)[:k], getattr(self.expected, c), equal_nan=(c == "distance"))
            for c in COLUMNS
        )

    def same_as_truth(self, r: af.BatchResult) -> bool:
        return r.equals(self.truth)


@pytest.fixture(scope="module")
def world(sizes) -> World:
    return World(sizes.n, sizes.check_n)


def _time(benchmark, fn, rounds: int):
    if benchmark.enabled:
        benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)
    else:
        benchmark(fn)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("isa", available_isas())
def test_batch(benchmark, world: World, sizes, isa: str, threads: int) -> None:
    n = len(world.args[0])
    benchmark.group = f"engine | batch | {n:,} rows"
    engine = af.Engine(world.compiled, isa=isa)
    result = engine.decide_batch(*world.args, threads=threads)
    assert world.agrees(result) and world.same_as_truth(result)
    _time(benchmark, lambda: engine.decide_batch(*world.args, threads=threads), sizes.rounds)
    benchmark.extra_info.update(isa=isa, threads=threads, rows=n)
    if benchmark.enabled:
        benchmark.extra_info["decisions_per_s"] = n / benchmark.stats.stats.min


def _rows(world: World, m: int) -> list[tuple[int, int, int, int]]:
    return list(zip(*(a[:m].tolist() for a in world.args), strict=True))


@pytest.mark.parametrize("method", ["decide", "decide_indices"])
def test_scalar(benchmark, world: World, sizes, method: str) -> None:
    m = sizes.scalar_n
    benchmark.group = f"engine | scalar | {m:,} calls"
    rows = _rows(world, m)
    call = getattr(world.engine, method)
    t = world.truth
    for k, row in enumerate(rows[:2000]):
        got = call(*row)
        if method == "decide":
            assert (int(got.tier), got.server_index, got.ip_index) == (
                int(t.tier[k]),
                int(t.server[k]),
                int(t.ip[k]),
            )
        else:
            assert got[:5] == (
                int(t.tier[k]),
                int(t.server[k]),
                int(t.dc[k]),
                int(t.location[k]),
                int(t.ip[k]),
            )

    def run() -> None:
        for a, b, c, d in rows:
            call(a, b, c, d)

    _time(benchmark, run, sizes.rounds)
    if benchmark.enabled:
        benchmark.extra_info["ns_per_call"] = benchmark.stats.stats.min / m * 1e9


@pytest.mark.parametrize("kind", ["server", "dc", "location"])
def test_set_state(benchmark, world: World, sizes, kind: str) -> None:
    benchmark.group = "engine | set_state"
    engine = af.Engine(world.compiled)
    rng = np.random.default_rng(9)
    ids = {"server": engine.servers, "dc": engine.dcs, "location": engine.locations}[kind]
    targets = [ids[int(i)] for i in rng.integers(0, len(ids), 200 if kind == "server" else 20)]
    before = engine.states

    def run() -> None:
        for target in targets:
            engine.set_state(target, "down")
            engine.set_state(target, "up")

    _time(benchmark, run, sizes.rounds)
    after = engine.states
    # Everything went back up (the file's draining/down servers too, where a target covered them).
    assert ((after == before) | (after == 0)).all()
    sample = tuple(a[:2000] for a in world.args)
    ref = af.ReferenceEngine(world.topo)
    for s, code in enumerate(after.tolist()):
        if code != before[s]:
            ref.set_state(s, "up")
    assert engine.decide_batch(*sample).equals(ref.decide_batch(*sample))
    if benchmark.enabled:
        benchmark.extra_info["us_per_change"] = benchmark.stats.stats.min / (2 * len(targets)) * 1e6


def test_construction(benchmark, world: World, sizes) -> None:
    benchmark.group = "engine | construction"
    t0 = time.perf_counter()
    engine = af.Engine(world.compiled)
    first = time.perf_counter() - t0
    sample = tuple(a[:2000] for a in world.args)
    assert engine.decide_batch(*sample).equals(world.engine.decide_batch(*sample))
    _time(benchmark, lambda: af.Engine(world.compiled), sizes.rounds)
    benchmark.extra_info.update(first_s=first, core_build_ms=engine.build_stats["build_ms"])
