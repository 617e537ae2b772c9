"""The reference floor: how fast this machine streams the bytes a decision reads and writes.

A decision reads its request (server int32, pool int32, family uint8, flow uint64: 17 bytes) and
writes its answer (tier uint8, server/dc/location/ip int32, distance float64: 25 bytes). The floor is
a plain NumPy copy of exactly those ten columns for the same number of rows, ``src -> dst`` column
by column (each copy reads and writes its column, so 84 bytes of memory traffic per row). With
``threads > 1`` the rows are split into contiguous slices copied concurrently (NumPy releases the GIL
while it copies). Every path is then reported as ``decisions_per_s / floor_decisions_per_s`` where the
floor for ``t`` threads is the fastest copy on at most ``t`` threads (``runner.best_floors``): 1.0 would
be a decision as cheap as moving its inputs and outputs once.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

__all__ = ["BYTES_PER_DECISION", "COLUMNS", "CopyColumns", "Floor", "best_time", "measure_floor"]

INPUT_COLUMNS = (("server", np.int32), ("pool", np.int32), ("family", np.uint8), ("flow", np.uint64))
OUTPUT_COLUMNS = (
    ("tier", np.uint8),
    ("server", np.int32),
    ("dc", np.int32),
    ("location", np.int32),
    ("ip", np.int32),
    ("distance", np.float64),
)
COLUMNS = INPUT_COLUMNS + OUTPUT_COLUMNS
BYTES_PER_DECISION = sum(np.dtype(t).itemsize for _, t in COLUMNS)  # 42: read 17, write 25


@dataclass(frozen=True)
class Floor:
    rows: int
    threads: int
    seconds: float

    @property
    def decisions_per_s(self) -> float:
        return self.rows / self.seconds

    @property
    def gb_per_s(self) -> float:
        """Memory traffic of the copy (read + write of every column), in GB/s."""
        return 2 * BYTES_PER_DECISION * self.rows / self.seconds / 1e9


def best_time(
    fn: Callable[[], object], repeat: int = 3, min_seconds: float = 0.0, max_seconds: float = float("inf")
) -> float:
    """Smallest wall time of ``repeat`` calls of ``fn``.

    At least one call; more (up to 100) until ``min_seconds`` have been spent, since tiny inputs are
    noisy; fewer than ``repeat`` once ``max_seconds`` have been spent, since slow paths (pure Python)
    vary little from call to call and would dominate the run.
    """
    best = float("inf")
    spent = 0.0
    calls = 0
    while calls == 0 or (calls < repeat and spent < max_seconds) or (spent < min_seconds and calls < 100):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best = min(best, dt)
        spent += dt
        calls += 1
    return best


class CopyColumns:
    """The floor's work as a callable: copy the ten columns of ``rows`` rows on ``threads`` threads.

    ``close()`` (or use as a context manager) stops its thread pool.
    """

    def __init__(self, rows: int, threads: int = 1) -> None:
        self.rows = max(1, int(rows))
        self.threads = max(1, int(threads))
        rng = np.random.default_rng(0)
        # Filled with data (not zero pages) so that reads touch real memory.
        self.src = [rng.integers(0, 100, size=self.rows).astype(t) for _, t in COLUMNS]
        self.dst = [np.empty_like(a) for a in self.src]
        bounds = np.linspace(0, self.rows, self.threads + 1).astype(np.int64).tolist()
        self.slices = [slice(a, b) for a, b in itertools.pairwise(bounds)]
        self.pool = ThreadPoolExecutor(self.threads) if self.threads > 1 else None

    def _copy(self, sl: slice) -> None:
        for s, d in zip(self.src, self.dst, strict=True):
            np.copyto(d[sl], s[sl])

    def __call__(self) -> None:
        if self.pool is None:
            self._copy(slice(None))
        else:
            list(self.pool.map(self._copy, self.slices))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None

    def __enter__(self) -> CopyColumns:  # noqa: PYI034 - typing.Self needs Python 3.11
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def measure_floor(rows: int, threads: int = 1, repeat: int = 5, min_seconds: float = 0.05) -> Floor:
    """Time ``CopyColumns(rows, threads)``: best of ``repeat`` calls (more for tiny inputs)."""
    with CopyColumns(rows, threads) as copy:
        seconds = best_time(copy, repeat, min_seconds)
    return Floor(copy.rows, copy.threads, seconds)
