"""Duplicate RayIDs: some exporters write a record twice. Count them, keep a few, and tell the
concurrency analysis which rows repeat a request already seen (they must not count twice).

The set holds the 64-bit ``string_hash`` of every RayID seen (8 bytes a row) in sorted runs that
are merged as they grow (a log-structured set: each batch costs a sort of the batch and a binary
search per run). Beyond ``max_rows`` RayIDs the check stops, and says so, so memory stays bounded
on logs of any length (the default, 16M RayIDs, is 128 MiB at most).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from . import _arrow as ar

DEFAULT_MAX_ROWS = 16_000_000
EXAMPLES = 5


class RayIdSet:
    def __init__(self, max_rows: int = DEFAULT_MAX_ROWS) -> None:
        self.max_rows = max_rows
        self.runs: list[np.ndarray] = []
        self.size = 0
        self.duplicates = 0
        self.examples: list[str] = []
        self.stopped_at: int | None = None  # rows checked when the bound was reached

    def check(self, ray: pa.Array | None, rows: np.ndarray) -> np.ndarray:
        """Mask over ``rows`` (positions in the batch) of those whose RayID was seen before, in an
        earlier batch or earlier in this one. Empty and null RayIDs are never duplicates."""
        dup = np.zeros(rows.shape[0], dtype=bool)
        if ray is None or rows.shape[0] == 0 or self.stopped_at is not None:
            return dup
        h_all, ok_all = ar.hash_strings(ray, len(ray))
        h, ok = h_all[rows], ok_all[rows]
        pos = np.flatnonzero(ok)
        if pos.shape[0] == 0:
            return dup
        hv = h[pos]
        # within the batch: every occurrence after the first
        order = np.argsort(hv, kind="stable")
        sorted_h = hv[order]
        again = np.zeros(hv.shape[0], dtype=bool)
        again[order[1:][sorted_h[1:] == sorted_h[:-1]]] = True
        # against earlier batches
        for run in self.runs:
            k = np.searchsorted(run, hv)
            k[k == run.shape[0]] = 0
            again |= run[k] == hv
        dup[pos[again]] = True
        if again.any():
            self.duplicates += int(again.sum())
            if len(self.examples) < EXAMPLES:
                values = ar.to_string(ray).take(pa.array(rows[pos[again]][:EXAMPLES])).to_pylist()
                for v in values:
                    if v not in self.examples and len(self.examples) < EXAMPLES:
                        self.examples.append(str(v))
        self._add(np.unique(sorted_h))
        return dup

    def _add(self, new: np.ndarray) -> None:
        if self.size + new.shape[0] > self.max_rows:
            self.stopped_at = self.size
            self.runs = []
            return
        self.runs.append(new)
        self.size += new.shape[0]
        # merge runs of similar size (at most ~log2(n) runs are searched per batch)
        while len(self.runs) > 1 and self.runs[-2].shape[0] <= 2 * self.runs[-1].shape[0]:
            b = self.runs.pop()
            a = self.runs.pop()
            self.runs.append(np.union1d(a, b))
