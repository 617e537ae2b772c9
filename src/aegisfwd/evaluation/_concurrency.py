"""Peak concurrent origin connections per (egress IP, origin IP, origin port), exact, in bounded memory.

A row with start ``t`` and origin duration ``d`` is one connection open over ``[t, t + d)``; with
bucket width ``r`` (``resolution_ms``) it counts in every bucket it overlaps: ``+1`` at
``floor(t / r)`` and ``-1`` at ``max(ceil((t + d) / r), floor(t / r) + 1)``. A key's level after a
bucket is the sum of its events up to and including that bucket; its peak is the largest level, and
``at`` the first bucket where it is reached. At 1 ms this is the exact peak up to millisecond
rounding; coarser widths give an upper bound.

How memory stays bounded (docs/evaluate.md "Concurrent connections"): connections are buffered a
million at a time, then become two *runs* (the opens and the closes), each one int64 per event
packing ``(bucket - base) << key_bits | key``, sorted by bucket (a radix sort,
``_core.concurrency.pack_by_bucket``). Runs stay in memory up to ``memory_events`` events, beyond which they are written to a
spill file (``spill_dir``, default the system temporary directory) and dropped from memory. Peaks
come from one k-way merge of all runs in bucket order (``_core.concurrency.fold_event_runs``, C++), reading
each spilled run a block at a time, with three int64 of state per key. Nothing is approximated: the
peaks equal those of the whole log held in memory, whatever its size or order.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from .. import _core
from ..errors import SpillError

# Documented limit (Cloudflare): concurrent connections per egress IP per origin IP:port.
CONNECTION_LIMIT = 40_000

_INT64_MAX = int(np.iinfo(np.int64).max)


@dataclass
class _Run:
    """Events sorted by bucket, all with delta ``sign``; in memory (``data``) or in the spill file
    at byte ``offset`` (``data is None``)."""

    data: np.ndarray | None
    size: int
    time_base: int
    key_bits: int
    sign: int
    offset: int = -1


def _pack(buckets: np.ndarray, keys: np.ndarray, sign: int) -> list[_Run]:
    """Runs holding the events (``buckets[i]``, ``keys[i]``) with delta ``sign``, sorted by bucket.

    Normally one run. Only when the buckets span more than ``2**(63 - key_bits)`` (timestamps
    centuries apart, or billions of keys) do they not fit one packed int64; then they are sorted by
    bucket and cut into consecutive runs that each fit."""
    n = int(buckets.shape[0])
    if n == 0:
        return []
    key_bits = max(1, int(keys.max()).bit_length())
    span_cap = 1 << (63 - key_bits)
    lo, hi = int(buckets.min()), int(buckets.max())
    if hi - lo < span_cap:
        return [_Run(_core.concurrency.pack_by_bucket(buckets, keys, lo, key_bits), n, lo, key_bits, sign)]
    order = np.argsort(buckets, kind="stable")
    b, k = buckets[order], keys[order]
    runs = []
    i = 0
    while i < n:
        base = int(b[i])
        j = int(np.searchsorted(b, base + span_cap, side="left")) if base + span_cap <= _INT64_MAX else n
        piece = b[i:j] - np.int64(base)
        piece <<= np.int64(key_bits)
        piece |= k[i:j]
        runs.append(_Run(piece, j - i, base, key_bits, sign))
        i = j
    return runs


def _unpack(run: _Run, data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(buckets, keys) of a run's events."""
    mask = np.int64((1 << run.key_bits) - 1)
    return (data >> np.int64(run.key_bits)) + np.int64(run.time_base), data & mask


class _SpillFile:
    """An append-only temporary file of runs, removed when its owner is collected or the
    interpreter exits (``weakref.finalize``)."""

    def __init__(self, owner: object, spill_dir: str | os.PathLike[str] | None) -> None:
        try:
            self.dir = tempfile.mkdtemp(prefix="aegisfwd-concurrency-", dir=spill_dir)
            self.path = Path(self.dir) / "runs.bin"
            self.file: BinaryIO = open(self.path, "w+b")  # noqa: SIM115 - closed by the finalizer
        except OSError as exc:
            where = spill_dir if spill_dir is not None else tempfile.gettempdir()
            raise SpillError(
                f"cannot create the concurrency spill file in {where}: {exc} "
                "(choose another directory with spill_dir= / --spill-dir)"
            ) from exc
        self.size = 0
        self._finalizer = weakref.finalize(owner, _SpillFile._remove, self.file, self.dir)

    @staticmethod
    def _remove(file: BinaryIO, directory: str) -> None:
        file.close()
        shutil.rmtree(directory, ignore_errors=True)

    def append(self, data: np.ndarray) -> int:
        offset = self.size
        try:
            self.file.seek(offset)
            data.tofile(self.file)
            self.file.flush()
        except OSError as exc:
            raise SpillError(
                f"cannot write the concurrency spill file {self.path}: {exc} "
                "(choose another directory with spill_dir= / --spill-dir)"
            ) from exc
        self.size += data.nbytes
        return offset

    def read(self, offset: int, count: int) -> np.ndarray:
        try:
            self.file.seek(offset)
            out = np.fromfile(self.file, dtype=np.int64, count=count)
        except OSError as exc:
            raise SpillError(f"cannot read the concurrency spill file {self.path}: {exc}") from exc
        if out.shape[0] != count:
            raise SpillError(
                f"the concurrency spill file {self.path} is shorter than written "
                f"(read {out.shape[0]} of {count} events at byte {offset}): was it truncated?"
            )
        return out

    def close(self) -> None:
        self._finalizer()


class _Cursor:
    """Reads one run block by block for the merge."""

    def __init__(self, run: _Run, spill: _SpillFile | None, block: int) -> None:
        self.run = run
        self.spill = spill
        self.block = block
        if run.data is not None:
            self.buf, self.left = run.data, 0
        else:
            self.buf, self.left = np.zeros(0, np.int64), run.size
            self.refill()

    @property
    def args(self) -> tuple[np.ndarray, int, int, int]:
        return (self.buf, self.run.time_base, self.run.key_bits, self.run.sign)

    def last_bucket(self) -> int:
        return self.run.time_base + (int(self.buf[-1]) >> self.run.key_bits)

    def refill(self) -> None:
        """Read the next block after what is buffered (the buffer grows if it was not consumed)."""
        if self.left == 0 or self.spill is None:
            return
        count = min(self.block, self.left)
        done = self.run.size - self.left
        more = self.spill.read(self.run.offset + 8 * done, count)
        self.buf = np.concatenate([self.buf, more]) if self.buf.shape[0] else more
        self.left -= count


@dataclass
class _Folded:
    """The fold's result for the keys with connections: key ids, peaks, first bucket at the peak."""

    ids: np.ndarray
    values: np.ndarray
    peak_at: np.ndarray


class Concurrency:
    """Open origin connections per (egress IP, origin IP, origin port), folded into exact peaks.

    ``add_events`` takes connections a batch at a time; ``peaks()`` gives the peak per key. Two
    of these (for parts of one log) ``merge`` exactly. See the module docstring for the memory
    bound; ``spill_dir`` chooses where long logs spill (default: the system temporary directory)."""

    # Connections buffered before they are sorted into runs (24 bytes each while buffered).
    run_rows = 1 << 20
    # Events kept in in-memory runs (8 bytes each) before the runs are written to the spill file.
    memory_events = 1 << 22
    # Read buffers of the final merge, shared by the spilled runs (at least merge_min_block events each).
    merge_buffer_bytes = 32 << 20
    merge_min_block = 8192

    def __init__(self, resolution_ms: int = 1, spill_dir: str | os.PathLike[str] | None = None) -> None:
        if resolution_ms < 1:
            raise ValueError("resolution_ms must be >= 1")
        self.resolution_ms = int(resolution_ms)
        self.spill_dir = spill_dir
        self.keys: list[tuple[str, str, int]] = []
        self._key_index: dict[tuple[str, str, int], int] = {}
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (key, first, last) per batch
        self._pending_rows = 0
        self._runs: list[_Run] = []
        self._memory_events = 0
        self._spill: _SpillFile | None = None
        self._fold_result: _Folded | None = None

    # ---- keys ----------------------------------------------------------------------------------
    def key_ids(self, keys: Iterable[tuple[str, str, int]]) -> np.ndarray:
        out = []
        idx = self._key_index
        for k in keys:
            i = idx.get(k)
            if i is None:
                i = idx[k] = len(self.keys)
                self.keys.append(k)
            out.append(i)
        return np.asarray(out, dtype=np.int64)

    def add_new_keys(self, keys: list[tuple[str, str, int]]) -> int:
        """Number keys known to be new (no check per key, unlike ``key_ids``); returns the first id."""
        if len(set(keys)) != len(keys) or not self._key_index.keys().isdisjoint(keys):
            raise ValueError("add_new_keys was given a key twice or one it already had")
        first = len(self.keys)
        self._key_index.update(zip(keys, range(first, first + len(keys)), strict=True))
        self.keys.extend(keys)
        return first

    # ---- events --------------------------------------------------------------------------------
    def add_events(self, key: np.ndarray, start_ns: np.ndarray, duration_ns: np.ndarray) -> None:
        """One connection per row: key id (from ``key_ids``/``add_new_keys``), start in Unix ns and
        origin duration in ns (>= 0)."""
        n = key.shape[0]
        if n == 0:
            return
        key = np.asarray(key, dtype=np.int64)
        start_ns = np.asarray(start_ns, dtype=np.int64)
        duration_ns = np.asarray(duration_ns, dtype=np.int64)
        if start_ns.shape[0] != n or duration_ns.shape[0] != n:
            raise ValueError(
                f"key, start_ns and duration_ns must have one length; got {n}, "
                f"{start_ns.shape[0]}, {duration_ns.shape[0]}"
            )
        if int(key.min()) < 0 or int(key.max()) >= len(self.keys):
            raise ValueError(f"key ids must be in [0, {len(self.keys)}): number keys with key_ids first")
        if int(duration_ns.min()) < 0:
            raise ValueError("duration_ns must be >= 0")
        r = np.int64(self.resolution_ms) * np.int64(1_000_000)
        first = start_ns // r
        # start + duration without overflow: a duration past the end of int64 time ends there.
        end_ns = start_ns + np.minimum(duration_ns, np.int64(_INT64_MAX) - np.maximum(start_ns, 0))
        last = -((-end_ns) // r)  # ceil
        np.maximum(last, first + 1, out=last)
        self._pending.append((key, first, last))
        self._pending_rows += n
        self._fold_result = None
        if self._pending_rows >= self.run_rows:
            self._flush_pending()

    def _flush_pending(self) -> None:
        """Sort the buffered connections into two runs (opens, closes)."""
        if not self._pending:
            return
        pending, self._pending, self._pending_rows = self._pending, [], 0
        keys = np.concatenate([p[0] for p in pending])
        for column, sign in ((1, 1), (2, -1)):
            buckets = np.concatenate([p[column] for p in pending])
            self._add_runs(_pack(buckets, keys, sign))
            del buckets

    def _add_runs(self, runs: list[_Run]) -> None:
        for run in runs:
            self._runs.append(run)
            self._memory_events += run.size
        if self._memory_events > self.memory_events:
            self._spill_runs()

    def _spill_runs(self) -> None:
        """Move every in-memory run to the spill file."""
        if self._spill is None:
            self._spill = _SpillFile(self, self.spill_dir)
        for run in self._runs:
            if run.data is not None:
                run.offset = self._spill.append(run.data)
                run.data = None
        self._memory_events = 0

    def _run_data(self, run: _Run) -> np.ndarray:
        if run.data is not None:
            return run.data
        assert self._spill is not None
        return self._spill.read(run.offset, run.size)

    @property
    def events(self) -> int:
        """Events held (two per connection), buffered, in memory or spilled."""
        return 2 * self._pending_rows + sum(r.size for r in self._runs)

    @property
    def spilled_bytes(self) -> int:
        return self._spill.size if self._spill is not None else 0

    # ---- merging -------------------------------------------------------------------------------
    def merge(self, other: Concurrency) -> None:
        """Add ``other``'s connections (its keys are matched by value)."""
        if other.resolution_ms != self.resolution_ms:
            raise ValueError(
                f"cannot merge concurrency at {other.resolution_ms} ms into one at {self.resolution_ms} ms"
            )
        other._flush_pending()
        if not other._runs:
            return
        remap = self.key_ids(other.keys)
        identity = bool(remap.shape[0] == 0 or (remap == np.arange(remap.shape[0])).all())
        self._fold_result = None
        for run in other._runs:
            data = other._run_data(run)  # one run at a time: at most run_rows events
            if identity:
                self._add_runs([_Run(data, run.size, run.time_base, run.key_bits, run.sign)])
            else:
                buckets, keys = _unpack(run, data)
                del data
                self._add_runs(_pack(buckets, remap[keys], run.sign))

    # ---- peaks ---------------------------------------------------------------------------------
    def _fold(self) -> tuple[np.ndarray, np.ndarray]:
        """(peak, peak bucket) per key id: one k-way merge of every run in bucket order."""
        self._flush_pending()
        n = len(self.keys)
        level = np.zeros(n, np.int64)
        peak = np.zeros(n, np.int64)
        peak_at = np.zeros(n, np.int64)
        spilled = sum(1 for r in self._runs if r.data is None)
        block = max(self.merge_min_block, self.merge_buffer_bytes // 8 // max(1, spilled))
        cursors = [_Cursor(r, self._spill, block) for r in self._runs]
        while True:
            live = [c for c in cursors if c.buf.shape[0] or c.left]
            if not live:
                break
            # Below the smallest last buffered bucket of the runs still on disk, every event of
            # every run is in memory: fold those.
            waiting = [c for c in live if c.left]
            limit = min((c.last_bucket() for c in waiting), default=_INT64_MAX)
            consumed = _core.concurrency.fold_event_runs([c.args for c in live], limit, level, peak, peak_at)
            for c, used in zip(live, consumed.tolist(), strict=True):
                if used:
                    c.buf = c.buf[used:]
            for c in waiting:
                # Refill a nearly drained buffer; a buffer that is all one bucket (== limit) has
                # consumed nothing and grows, so the limit moves on.
                if c.buf.shape[0] < c.block // 2 or c.last_bucket() == limit:
                    c.refill()
        return peak, peak_at

    def fold(self) -> None:
        """Fold every connection now (``peaks()`` and ``counts()`` then only read the result);
        ``evaluate`` calls it while its writer thread still encodes the last batches."""
        self._folded()

    def _folded(self) -> _Folded:
        if self._fold_result is None:
            peak, peak_at = self._fold()
            ids = np.flatnonzero(peak > 0)
            self._fold_result = _Folded(ids, peak[ids], peak_at[ids])
        return self._fold_result

    def _ranked(self, top: int | None) -> np.ndarray:
        """Positions (into ``_folded()``) of the ``top`` largest peaks, ties by key; all when None.

        Only keys whose peak reaches the top-th largest value can be in the top, so only those are
        sorted by key: a handful for the report's top 20, instead of every key."""
        f = self._folded()
        n = f.values.shape[0]
        if top is not None and top < n:
            if top <= 0:
                return np.zeros(0, np.int64)
            threshold = np.partition(f.values, n - top)[n - top]
            pos = np.flatnonzero(f.values >= threshold)
        else:
            pos = np.arange(n)
        keys = [self.keys[i] for i in f.ids[pos].tolist()]
        if not keys:
            return pos
        # numpy str arrays order by code point, as Python compares str: the order of sorting
        # (-peak, key) tuples, in a fraction of the time on tens of thousands of keys.
        order = np.lexsort(
            (
                np.array([k[2] for k in keys], dtype=np.int64),
                np.array([k[1] for k in keys], dtype=str),
                np.array([k[0] for k in keys], dtype=str),
                -f.values[pos],
            )
        )
        return pos[order[:top]]

    def peaks(self, top: int | None = None) -> list[dict[str, Any]]:
        """Per key: the peak of open connections and the start of the first bucket where it occurs,
        largest peak first (the first ``top`` only, when given); equal peaks by key (egress IP,
        origin, port), so the order does not depend on the order keys were met in (batches,
        partitions, dictionary order). The fold runs once and is kept until more connections
        arrive."""
        f = self._folded()
        pos = self._ranked(top)
        if pos.shape[0] == 0:
            return []
        r_ns = np.int64(self.resolution_ms) * np.int64(1_000_000)
        at = np.datetime_as_string((f.peak_at[pos] * r_ns).astype("datetime64[ns]"), unit="ns").tolist()
        out = []
        for i, v, t in zip(f.ids[pos].tolist(), f.values[pos].tolist(), at, strict=True):
            ip, origin, port = self.keys[i]
            out.append(
                {
                    "egress_ip": ip,
                    "origin": _origin_text(origin, port),
                    "peak": v,
                    "at": t + "Z",
                    "share_of_limit": v / CONNECTION_LIMIT,
                }
            )
        return out

    def counts(self) -> tuple[int, int]:
        """(keys with connections, keys whose peak exceeds CONNECTION_LIMIT)."""
        f = self._folded()
        return int(f.values.shape[0]), int((f.values > CONNECTION_LIMIT).sum())

    # ---- pickling (Dask ships partition summaries to the client) -----------------------------
    def __getstate__(self) -> dict[str, Any]:
        """Every event travels (spilled runs are read back): what ships is exact and mergeable."""
        self._flush_pending()
        runs = [(self._run_data(r), r.time_base, r.key_bits, r.sign) for r in self._runs]
        return {"resolution_ms": self.resolution_ms, "keys": self.keys, "runs": runs}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["resolution_ms"])  # type: ignore[misc]
        self.key_ids(state["keys"])
        self._add_runs([_Run(d, int(d.shape[0]), int(b), int(k), int(s)) for d, b, k, s in state["runs"]])


def _origin_text(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
