"""Run the comparison: every path on every workload, checked, then timed, against the floor of the same run.

For each workload, in one process and one run (the machine may be shared and noisy, so only ratios
measured side by side are compared):

1. the floor (``floor.measure_floor``) on the workload's row count, at every thread count used;
2. the expected answers: ``ReferenceEngine`` on the first ``check_rows`` requests;
3. every path: one untimed call whose answer is checked, then the best of ``repeat`` timed calls.
   A path ``agrees`` when its columns (all six for ``computes="full"``; tier, location and distance for
   ``"tier+location"``) equal the reference's on the rows both have, and equal the compiled engine's
   single-threaded batch answer on every row the path decided.

``Settings.quick()`` is the few-second run the tests use, ``Settings.short()`` the default of
``aegisfwd bench`` (under a minute on 2 cores once the compiled engine is in); the full suite is
``pytest benchmarks/`` (pytest-benchmark).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from .._types import TIER_NAMES
from .floor import Floor, best_time, measure_floor
from .paths import Bench, Prepared, Unavailable, all_cores, compare_columns
from .workloads import WORKLOADS, Workload, make

__all__ = ["Record", "Settings", "WorkloadReport", "default_threads", "run"]


def default_threads() -> tuple[int, ...]:
    """1, 2, 4, ... up to every core, and every core."""
    cores = all_cores()
    out = []
    t = 1
    while t < cores:
        out.append(t)
        t *= 2
    out.append(cores)
    return tuple(out)


@dataclass(frozen=True)
class Settings:
    workloads: tuple[str, ...] = WORKLOADS
    n: int = 100_000
    scalar_rows: int = 1_000
    check_rows: int = 2_000
    threads: tuple[int, ...] = field(default_factory=default_threads)
    repeat: int = 3
    seed: int = 0
    min_seconds: float = 0.05  # per path: repeat fast paths until timed this long (up to 100 calls)
    max_seconds: float = 1.0  # per path: stop repeating once a path has been timed this long
    peers: bool = True
    evaluate: bool = True
    shared: bool = True  # the SharedEngine paths (where POSIX shared memory exists)

    @classmethod
    def short(cls) -> Settings:
        return cls()

    @classmethod
    def quick(cls) -> Settings:
        cores = all_cores()
        return cls(
            workloads=("world",),
            n=2_000,
            scalar_rows=200,
            check_rows=2_000,
            threads=tuple(sorted({1, cores})),
            repeat=1,
        )

    def normalized(self) -> Settings:
        threads = tuple(sorted(set(self.threads) | {1}))  # 1 thread is the reference answer for the rest
        return replace(
            self,
            threads=threads,
            scalar_rows=min(self.scalar_rows, self.n),
            check_rows=min(self.check_rows, self.n),
        )


@dataclass(frozen=True)
class Record:
    """One measured path on one workload (``aegisfwd bench --json`` prints a list of these)."""

    path: str
    workload: str
    threads: int
    computes: str
    decisions_per_s: float
    agrees: bool
    fraction_of_floor: float
    rows: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class WorkloadReport:
    """Records of one workload with what the table prints around them."""

    workload: str
    rows: int
    tiers: dict[str, float]
    floors: dict[int, Floor]
    records: list[Record]
    skipped: list[str] = field(default_factory=list)


def format_rate(rate: float) -> str:
    """``14.7 M``, ``608 k``: three significant digits and an SI prefix."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if rate >= scale:
            return f"{rate / scale:.3g} {unit}"
    return f"{rate:.3g}"


def best_floors(measured: dict[int, Floor]) -> dict[int, Floor]:
    """The floor at ``t`` threads is the fastest copy measured on at most ``t`` threads: a path given
    ``t`` threads could always copy on fewer (on small inputs a thread pool costs more than it gives)."""
    out = {}
    for t in sorted(measured):
        candidates = [f for k, f in measured.items() if k <= t]
        out[t] = min(candidates, key=lambda f: f.seconds)
    return out


def _tier_mix(tier: np.ndarray) -> dict[str, float]:
    counts = np.bincount(tier, minlength=256)
    return {name: float(counts[t]) / max(1, len(tier)) for t, name in TIER_NAMES.items() if counts[t]}


def _has_shm() -> bool:
    return Path("/dev/shm").is_dir()


def path_builders(
    bench: Bench, w: Workload, s: Settings, folder: Path
) -> list[Callable[[], Prepared | list[Prepared]]]:
    """Every path of a run, the single-threaded engine batch first (its answer checks the rest)."""
    out: list[Callable[[], Prepared | list[Prepared]]] = [partial(bench.batch, w, t) for t in s.threads]
    out.append(partial(bench.scalar, w, s.scalar_rows))
    if s.shared and _has_shm():
        out += [partial(bench.shared_batch, w, t) for t in s.threads]
        out.append(partial(bench.shared_scalar, w, s.scalar_rows))
    if s.peers:
        out.append(partial(bench.python_peer, w, s.scalar_rows))
        out.append(partial(bench.numpy_peer, w, "full"))
        out.append(partial(bench.numpy_peer, w, "tier+location"))
        out += [partial(bench.duckdb_peer, w, t) for t in s.threads]
    if s.evaluate:
        out += [partial(bench.evaluate, w, folder, t, s.check_rows) for t in s.threads]
    return out


def run_workload(
    bench: Bench,
    w: Workload,
    s: Settings,
    progress: Callable[[str], None] | None = None,
    folder: Path | None = None,
) -> WorkloadReport:
    """Measure every path on ``w``; files (the evaluate path's log and output) go to ``folder``
    (default: a temporary directory removed afterwards)."""
    if folder is None:
        with tempfile.TemporaryDirectory(prefix="aegisfwd-bench-") as tmp:
            return run_workload(bench, w, s, progress, Path(tmp))
    say = progress or (lambda _msg: None)
    say(f"{w.name}: floor")
    floors = best_floors({t: measure_floor(len(w), t) for t in s.threads})
    say(f"{w.name}: reference answers for {s.check_rows} rows")
    expected = bench.reference_columns(w, s.check_rows)
    truth: dict[str, np.ndarray] | None = None
    records = []
    skipped = []
    prepared: list[Prepared] = []
    for build in path_builders(bench, w, s, folder):
        try:
            got = build()
        except Unavailable as exc:
            skipped.append(str(exc))
            continue
        prepared += got if isinstance(got, list) else [got]
    for p in prepared:
        say(f"{w.name}: {p.path} (threads={p.threads}, rows={p.rows})")
        result = p.run()
        if p.check is not None:
            agrees = p.check(result)
        else:
            cols = p.columns(result)
            if truth is None:
                truth = cols  # engine.decide_batch on 1 thread, every row
            agrees = compare_columns(
                cols, expected, p.computes, rows=min(p.rows, s.check_rows)
            ) and compare_columns(cols, truth, p.computes, rows=p.rows)
            del cols
        del result
        seconds = best_time(p.run, s.repeat, s.min_seconds, s.max_seconds)
        rate = p.rows / seconds
        records.append(
            Record(
                p.path,
                w.name,
                p.threads,
                p.computes,
                rate,
                bool(agrees),
                rate / floors[p.threads].decisions_per_s,
                p.rows,
            )
        )
    assert truth is not None
    return WorkloadReport(w.name, len(w), _tier_mix(truth["tier"]), floors, records, skipped)


def run(settings: Settings, progress: Callable[[str], None] | None = None) -> list[WorkloadReport]:
    s = settings.normalized()
    bench = Bench()
    return [run_workload(bench, make(name, s.n, s.seed), s, progress) for name in s.workloads]


def records(reports: Sequence[WorkloadReport]) -> list[Record]:
    return [r for rep in reports for r in rep.records]


def fastest_peer_ratio(records: Sequence[Record]) -> dict[int, float]:
    """For each record of one workload (by position): its rate over that of the fastest peer that
    computes the same thing (``full`` or ``tier+location``), i.e. the ratio at equal work."""
    best: dict[str, float] = {}
    for r in records:
        if r.path.startswith("peer.") and r.agrees:
            best[r.computes] = max(best.get(r.computes, 0.0), r.decisions_per_s)
    return {i: r.decisions_per_s / best[r.computes] for i, r in enumerate(records) if r.computes in best}
