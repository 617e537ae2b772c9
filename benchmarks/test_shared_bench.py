"""``af.SharedEngine`` against the per-process ``af.Engine`` on the world workload (pytest-benchmark).

The same decision code runs on both; what differs is where the derived tables live (a shared-memory
segment, 4 KiB pages unless tmpfs gives huge pages, against huge-page-advised private memory) and
that the seqlock word is read through a pointer. Groups, each holding both engines on the same input:

* ``shared vs private | batch | N rows``: ``decide_batch`` on 1 and 2 threads;
* ``shared vs private | scalar | M calls``: ``decide`` and ``decide_indices`` per call from Python;
* ``shared vs private | set_state``: one server down then up again (the shared engine takes a
  process-shared robust mutex instead of a std::mutex).

Every path's answers are checked against the generic per-process kernel before it is timed.

    pytest benchmarks/test_shared_bench.py --benchmark-columns=min,median,rounds
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from test_engine_bench import World, _rows, _time

import aegisfwd as af

KINDS = ("private", "shared")


@pytest.fixture(scope="module")
def world(sizes) -> World:
    return World(sizes.n, sizes.check_n)


@pytest.fixture(scope="module")
def engines(world: World) -> Iterator[dict[str, af.Engine]]:
    with af.SharedEngine.create(world.compiled) as owner:
        worker = af.SharedEngine.attach(owner.name, world.compiled)  # what a worker process runs
        yield {"private": af.Engine(world.compiled), "shared": worker}
        worker.close()


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("kind", KINDS)
def test_batch(benchmark, world: World, engines, sizes, kind: str, threads: int) -> None:
    n = len(world.args[0])
    benchmark.group = f"shared vs private | batch | {n:,} rows"
    engine = engines[kind]
    assert world.same_as_truth(engine.decide_batch(*world.args, threads=threads))
    _time(benchmark, lambda: engine.decide_batch(*world.args, threads=threads), sizes.rounds)
    benchmark.extra_info.update(kind=kind, threads=threads, rows=n)
    if benchmark.enabled:
        benchmark.extra_info["decisions_per_s"] = n / benchmark.stats.stats.min


@pytest.mark.parametrize("method", ["decide", "decide_indices"])
@pytest.mark.parametrize("kind", KINDS)
def test_scalar(benchmark, world: World, engines, sizes, kind: str, method: str) -> None:
    m = sizes.scalar_n
    benchmark.group = f"shared vs private | scalar | {m:,} calls"
    rows = _rows(world, m)
    call = getattr(engines[kind], method)
    t = world.truth
    for k, row in enumerate(rows[:2000]):
        got = call(*row)
        got = (
            (int(got.tier), got.server_index, got.ip_index)
            if method == "decide"
            else (got[0], got[1], got[4])
        )
        assert got == (int(t.tier[k]), int(t.server[k]), int(t.ip[k]))

    def run() -> None:
        for a, b, c, d in rows:
            call(a, b, c, d)

    _time(benchmark, run, sizes.rounds)
    if benchmark.enabled:
        benchmark.extra_info["ns_per_call"] = benchmark.stats.stats.min / m * 1e9


@pytest.mark.parametrize("kind", KINDS)
def test_set_state(benchmark, world: World, engines, sizes, kind: str) -> None:
    benchmark.group = "shared vs private | set_state"
    engine = engines[kind]
    rng = np.random.default_rng(9)
    targets = [engine.servers[int(i)] for i in rng.integers(0, len(engine.servers), 200)]
    before = engine.states

    def run() -> None:
        for target in targets:
            engine.set_state(target, "down")
            engine.set_state(target, "up")

    _time(benchmark, run, sizes.rounds)
    engine.set_states(before)
    assert world.same_as_truth(engine.decide_batch(*world.args))
    if benchmark.enabled:
        benchmark.extra_info["us_per_change"] = benchmark.stats.stats.min / (2 * len(targets)) * 1e6
