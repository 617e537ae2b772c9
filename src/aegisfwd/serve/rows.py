"""The requests the explorer re-decides on every change, held in memory as index columns.

A row is what the evaluator needs to decide it again under any state or placement: where it entered
(a *colo* code: a location or DC range of servers, or one named server), its pool, address family and
flow key. Logs are read once with the evaluation pipeline's own readers and column mapping
(``aegisfwd.evaluation``), so a row the explorer keeps is a row ``aegisfwd evaluate`` decides, and a
row it rejects is counted under the same reason. Without a log, a sample of ``datasets.requests``
stands in, each row entering at its sampled server's location.

Rows are sorted by pool once, so that the rows of one pool (the page's scope, or a pool whose
placement changed) are one contiguous slice.

Memory: ``colo`` int32 + ``pool`` int32 + ``family`` uint8 + ``flow`` uint64 + ``location`` int32
(the ingress location, kept to avoid a gather per summary) + the rows grouped by colo (int32, for
re-choosing only the ingress of rows whose colo a state change touched) = 25 bytes a row, 25 MB per
million rows. The session adds the decisions (baseline and current, 25 bytes a row each).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._ingress import choose_ingress
from ..compiled import CompiledTopology
from ..topology import Topology

ROW_BYTES = 4 + 4 + 1 + 8 + 4 + 4  # colo, pool, family, flow, location, rows by colo


@dataclass
class Rows:
    """Index columns of the loaded requests, sorted by pool, and the colo table their codes index."""

    colo: np.ndarray  # int32 code into colo_first / colo_end
    pool: np.ndarray  # int32 pool index
    family: np.ndarray  # uint8, 4 or 6
    flow: np.ndarray  # uint64 flow key
    location: np.ndarray  # int32 ingress location
    colo_first: np.ndarray  # int32 first server of each colo code
    colo_end: np.ndarray  # int32 end server of each colo code
    pool_start: np.ndarray  # int64, len(pools) + 1: rows of pool p are pool_start[p]:pool_start[p + 1]
    source: str
    rows_read: int = 0
    rejects: dict[str, int] = field(default_factory=dict)  # rows not kept, per evaluation reject reason
    errors: list[str] = field(default_factory=list)  # whole-source problems (a truncated gzip, ...)
    _colo_order: np.ndarray | None = field(default=None, repr=False)
    _colo_row_start: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return int(self.pool.shape[0])

    @property
    def nbytes(self) -> int:
        cols = (self.colo, self.pool, self.family, self.flow, self.location, self._colo_order)
        return int(sum(a.nbytes for a in cols if a is not None))

    def pool_slice(self, pool: int) -> slice:
        return slice(int(self.pool_start[pool]), int(self.pool_start[pool + 1]))

    def ingress(
        self,
        server_keys: np.ndarray,
        states: np.ndarray,
        threads: int | None = None,
        rows: np.ndarray | None = None,
    ) -> np.ndarray:
        """Ingress server of every row (or of ``rows``) under ``states``, as ``aegisfwd evaluate`` picks it.

        Rendezvous among the colo's up servers; a colo with no up server keeps its traffic and picks
        among all of its servers (docs/evaluate.md, "Ingress server"). A row naming one server gets it.
        """
        colo = self.colo if rows is None else self.colo[rows]
        flow = self.flow if rows is None else self.flow[rows]
        first = self.colo_first[colo]
        end = self.colo_end[colo]
        server = choose_ingress(first, end, flow, server_keys, states, threads=threads)
        none_up = np.flatnonzero(server < 0)
        if none_up.shape[0]:
            server[none_up] = choose_ingress(
                first[none_up],
                end[none_up],
                flow[none_up],
                server_keys,
                np.zeros_like(states),
                threads=threads,
            )
        return server

    def rows_entering(self, servers_changed: np.ndarray) -> np.ndarray:
        """Positions of the rows whose colo contains a server of the bool mask ``servers_changed``:
        the only rows whose ingress choice a change of those servers' up-ness can move."""
        seen = np.zeros(servers_changed.shape[0] + 1, dtype=np.int64)
        np.cumsum(servers_changed, out=seen[1:])
        colos = np.flatnonzero(seen[self.colo_end] - seen[self.colo_first] > 0)
        if colos.shape[0] == 0:
            return np.empty(0, dtype=np.int64)
        order, start = self._by_colo()
        return np.concatenate([order[start[c] : start[c + 1]] for c in colos.tolist()])

    def _by_colo(self) -> tuple[np.ndarray, np.ndarray]:
        """Row positions grouped by colo (built on first use: 4 bytes a row)."""
        if self._colo_order is None:
            self._colo_order = np.argsort(self.colo, kind="stable").astype(np.int32)
            start = np.zeros(len(self.colo_first) + 1, dtype=np.int64)
            np.cumsum(np.bincount(self.colo, minlength=len(self.colo_first)), out=start[1:])
            self._colo_row_start = start
        assert self._colo_row_start is not None
        return self._colo_order, self._colo_row_start


def _sorted_by_pool(
    colo: np.ndarray,
    pool: np.ndarray,
    family: np.ndarray,
    flow: np.ndarray,
    location: np.ndarray,
    n_pools: int,
) -> tuple[np.ndarray, ...]:
    order = np.argsort(pool, kind="stable")
    counts = np.bincount(pool, minlength=n_pools)
    start = np.zeros(n_pools + 1, dtype=np.int64)
    np.cumsum(counts, out=start[1:])
    return (colo[order], pool[order], family[order], flow[order], location[order], start)


def sample_rows(topology: Topology, compiled: CompiledTopology, n: int, seed: int = 0) -> Rows:
    """``n`` rows of ``datasets.requests``, each entering at its sampled server's location."""
    from .. import datasets

    req = datasets.requests(topology, n, seed=seed)
    a = compiled.arrays
    loc_start = np.asarray(a["location_server_start"], dtype=np.int32)
    location = np.asarray(a["server_location"], dtype=np.int32)[req.server]
    colo, pool, family, flow, location, start = _sorted_by_pool(
        location.copy(), req.pool, req.family, req.flow, location, len(compiled.pools)
    )
    rows = Rows(
        colo,
        pool,
        family,
        flow,
        location,
        loc_start[:-1].copy(),
        loc_start[1:].copy(),
        start,
        source=f"datasets.requests(n={n:,}, seed={seed})",
        rows_read=n,
    )
    rows._by_colo()
    return rows


def log_rows(
    source: Any,
    compiled: CompiledTopology,
    *,
    columns: Mapping[str, str | None] | None = None,
    batch_rows: int | None = None,
) -> Rows:
    """Read a log (anything ``aegisfwd.evaluate`` reads) with the evaluation pipeline's readers and mapping.

    Rows the evaluator would reject are counted per reason (``Rows.rejects``) and not kept.
    """
    from ..evaluation import DEFAULT_BATCH_ROWS
    from ..evaluation._prepare import column_names, dictionary_columns, parse_common, resolve, resolve_columns
    from ..evaluation._read import open_source
    from ..evaluation._run import model_for
    from ..evaluation._summary import REASONS

    model = model_for(compiled)
    cols = resolve_columns(columns)
    src = open_source(
        source, column_names(cols), batch_rows or DEFAULT_BATCH_ROWS, dictionary=dictionary_columns(cols)
    )
    states = model.states()
    explicit = cols.get("ingress_server") is not None
    parts: list[tuple[np.ndarray, ...]] = []
    rejects: dict[str, int] = {}
    rows_read = 0
    any_explicit = False
    for chunk in src.chunks:
        if chunk.malformed:
            rejects[chunk.malformed_reason] = rejects.get(chunk.malformed_reason, 0) + len(chunk.malformed)
            rows_read += len(chunk.malformed)
        batch = chunk.batch
        if batch is None or batch.num_rows == 0:
            continue
        rows_read += batch.num_rows
        common = parse_common(batch, cols)
        res = resolve(common, model, states)
        ok = np.flatnonzero(res.reason == 0)
        if ok.shape[0] < common.n:
            for code, count in zip(*np.unique(res.reason[res.reason != 0], return_counts=True), strict=True):
                rejects[REASONS[int(code)]] = rejects.get(REASONS[int(code)], 0) + int(count)
        if explicit and common.cols["ingress_server"] is not None:
            # One named server per row: the colo code is the server itself (offset past the colos).
            colo = res.server[ok] + np.int32(len(model.colo_first))
            any_explicit = True
        else:
            colo = model.colo_codes(common.cols["EdgeColoCode"], common.n)[ok]
        parts.append(
            (colo.astype(np.int32), res.pool[ok], common.family[ok], common.flows[ok], res.location[ok])
        )
    n_servers = len(model.server_ids)
    first, end = model.colo_first, model.colo_end
    if any_explicit:
        servers = np.arange(n_servers, dtype=np.int32)
        first, end = np.concatenate([first, servers]), np.concatenate([end, servers + 1])

    def cat(k: int, dtype: Any) -> np.ndarray:
        return (
            np.concatenate([p[k] for p in parts]).astype(dtype, copy=False) if parts else np.empty(0, dtype)
        )

    colo, pool, family, flow, location, start = _sorted_by_pool(
        cat(0, np.int32),
        cat(1, np.int32),
        cat(2, np.uint8),
        cat(3, np.uint64),
        cat(4, np.int32),
        len(model.pool_ids),
    )
    rows = Rows(
        colo,
        pool,
        family,
        flow,
        location,
        np.asarray(first, np.int32),
        np.asarray(end, np.int32),
        start,
        source=src.description,
        rows_read=rows_read,
        rejects=rejects,
        errors=list(src.errors),
    )
    rows._by_colo()
    return rows


__all__: Sequence[str] = ("ROW_BYTES", "Rows", "log_rows", "sample_rows")
