"""The machinery a run is built from: background stages, read-ahead of chunks, and the progress bar.

Each overlaps one kind of work with the evaluation on the calling thread (Arrow's readers, gzip, the
compiled engine and Parquet encoding release the GIL).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import Any

from ._read import Chunk, Source

__all__ = ["Progress", "Stage", "prefetch"]


def prefetch(chunks: Iterator[Chunk], depth: int = 2) -> Iterator[Chunk]:
    """Read the next chunks on a background thread while this one is evaluated (Arrow's readers
    and gzip release the GIL). At most ``depth`` chunks wait; errors re-raise here."""
    import queue
    import threading

    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def run() -> None:
        try:
            for c in chunks:
                while not stop.is_set():
                    try:
                        q.put(c, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            q.put(exc)

    t = threading.Thread(target=run, name="aegisfwd-reader", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        t.join(timeout=5)


class Stage:
    """A background thread running submitted calls in order, at most ``depth`` of them waiting; a
    failure re-raises in the submitting thread (at its next submit, or at ``drain``)."""

    def __init__(self, name: str, depth: int = 2) -> None:
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        self._pool: Any = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._pending: Any = deque()
        self._depth = depth

    def submit(self, fn: Any, *args: Any) -> None:
        while len(self._pending) >= self._depth:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(fn, *args))

    def drain(self) -> None:
        while self._pending:
            self._pending.popleft().result()

    def close(self) -> None:
        try:
            self.drain()
        finally:
            for f in self._pending:
                f.cancel()
            self._pending.clear()
            self._pool.shutdown(wait=True)


class Progress:
    """A rich progress bar (rows, rows/s, ETA) on stderr; silent unless asked or on a terminal."""

    def __init__(self, enabled: bool | None, source: Source) -> None:
        if enabled is None:
            enabled = sys.stderr.isatty()
        self.enabled = bool(enabled)
        self.rows = 0
        self.t0 = time.perf_counter()
        self._bar: Any = None
        if not self.enabled:
            return
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[rows]:,} rows"),
            TextColumn("{task.fields[rate]:,.0f} rows/s"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._bar.start()
        self._task = self._bar.add_task(
            f"evaluating {source.description}", total=source.total, rows=0, rate=0.0
        )

    def advance(self, units: float, rows: int) -> None:
        self.rows += rows
        if self._bar is not None:
            rate = self.rows / max(time.perf_counter() - self.t0, 1e-9)
            self._bar.update(self._task, advance=units, rows=self.rows, rate=rate)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
