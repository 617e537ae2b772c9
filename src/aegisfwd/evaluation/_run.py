"""``evaluate`` and ``compare``: stream a log through one or two engines, batch by batch."""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ._compare import CompareAccumulator, CompareSummary
from ._egress_check import MISMATCH_SCHEMA, EgressChecker
from ._model import Model
from ._output import (
    REJECT_SCHEMA,
    IdArrays,
    TableWriter,
    decisions_parquet_options,
    decisions_schema,
    decisions_table,
    malformed_table,
    rejects_table,
)
from ._prepare import KEY_FIELDS, column_names, dictionary_columns, parse_common, resolve, resolve_columns
from ._read import Chunk, open_source
from ._stages import Progress, Stage, prefetch
from ._summary import Accumulator, Summary

# Rows per batch: large enough that per-batch costs (one engine call, one Parquet row group, one
# weight matrix per colo for the ingress choice) vanish, small enough to keep memory in the tens
# of MiB for the needed columns.
DEFAULT_BATCH_ROWS = 1 << 18
# Without ``output=``, decisions are kept in memory up to this many rows (about 60 bytes a row
# before Arrow's dictionary sharing); beyond it they are dropped with a warning and only the
# summary remains: pass ``output=`` for larger logs.
DEFAULT_KEEP_ROWS = 5_000_000

_MODEL_CACHE: dict[int, tuple[Any, Model]] = {}


def model_for(topology: Any) -> Model:
    """A ``Model`` per engine object, cached (Dask workers evaluate many partitions with one engine)."""
    if isinstance(topology, Model):
        return topology
    hit = _MODEL_CACHE.get(id(topology))
    if hit is not None and hit[0] is topology:
        return hit[1]
    model = Model(topology)
    if not isinstance(topology, (str, Path)):
        if len(_MODEL_CACHE) > 8:
            _MODEL_CACHE.clear()
        _MODEL_CACHE[id(topology)] = (topology, model)
    return model


class Evaluation:
    """The result of ``evaluate``: the ``summary``, where decisions and rejects were written, timing."""

    def __init__(
        self,
        summary: Summary,
        *,
        output: Path | None,
        rejects: Path | None,
        decisions: pa.Table | None,
        dropped: bool,
        elapsed_s: float,
        source: str,
        topology: str,
    ) -> None:
        self.summary = summary
        self.output = output
        self.rejects = rejects
        self._decisions = decisions
        self._dropped = dropped
        self.elapsed_s = elapsed_s
        self.source = source
        self.topology = topology

    @property
    def rows_per_s(self) -> float:
        return self.summary.rows_in / self.elapsed_s if self.elapsed_s > 0 else float("nan")

    @property
    def decisions(self) -> pa.Table:
        """Decided rows as an Arrow table: kept in memory for logs up to ``keep_rows`` rows
        (default 5,000,000), else read back from ``output``."""
        if self._decisions is not None:
            return self._decisions
        if self.output is not None:
            import pyarrow.parquet as pq

            return pq.read_table(self.output)
        raise RuntimeError(
            "the decisions were not kept: the log has more rows than keep_rows; pass output=... to write them"
            if self._dropped
            else "no decisions were kept"
        )

    def report(self, directory: str | Path, *, top: int = 20, title: str | None = None) -> Path:
        """Write ``directory/summary.json`` and ``directory/report.html``; returns the HTML path."""
        from ._report import write_report

        return write_report(
            self.summary,
            directory,
            top=top,
            title=title or f"aegisfwd evaluation of {self.source}",
            meta=self._meta(),
        )

    def print(self, console: Any = None, *, top: int = 10) -> None:
        """The summary as rich tables on ``console`` (stdout by default)."""
        from ._report import print_summary

        print_summary(self.summary, console=console, top=top, meta=self._meta())

    def _meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "source": self.source,
            "topology": self.topology,
            "elapsed_s": round(self.elapsed_s, 3),
            "rows_per_s": int(self.rows_per_s) if self.rows_per_s == self.rows_per_s else 0,
        }
        if self.output is not None:
            meta["decisions"] = str(self.output)
        if self.rejects is not None:
            meta["rejects"] = str(self.rejects)
        return meta

    def __repr__(self) -> str:
        s = self.summary
        return (
            f"Evaluation({s.rows_in} rows: {s.rows_decided} decided, {s.rows_rejected} rejected; "
            f"{self.elapsed_s:.2f} s)"
        )


# ---------------------------------------------------------------------------------------------
# One run over one model
# ---------------------------------------------------------------------------------------------
class Runner:
    """Evaluate chunks with one model; collects the summary and writes decisions / rejects.

    With ``pipeline=True``, ``process`` only parses, resolves and decides on the calling thread; the
    rest (summary counts, rejects, the decisions table) runs on a background thread, in batch order,
    while the next batch is decided, and Parquet encoding on the writer's own thread: reading,
    deciding, summarising and writing overlap (the compiled parts and Arrow release the GIL).
    """

    def __init__(
        self,
        model: Model,
        cols: Mapping[str, str | None],
        *,
        output: str | Path | None = None,
        rejects: str | Path | None = None,
        keep_rows: int = 0,
        threads: int | None = None,
        concurrency_resolution_ms: int = 1,
        spill_dir: str | Path | None = None,
        pipeline: bool = False,
        fold_concurrency: bool = False,
        mismatches: str | Path | None = None,
    ) -> None:
        self.model = model
        self.cols = dict(cols)
        self.ids = IdArrays(model)
        self.acc = Accumulator(model, concurrency_resolution_ms, spill_dir)
        self.rows_in = 0
        self.threads = threads
        self.writer = (
            TableWriter(output, parquet_options=decisions_parquet_options) if output is not None else None
        )
        self.reject_writer = TableWriter(rejects, REJECT_SCHEMA) if rejects is not None else None
        self.keep_rows = keep_rows
        self.kept: list[pa.Table] = []
        self.kept_rows = 0
        self.dropped = False
        self._warned = False
        self.key_fields: tuple[str, ...] | None = None
        self._stage = Stage("aegisfwd-summary") if pipeline else None
        self.fold_concurrency = fold_concurrency  # fold in finish() (not for Dask parts: they merge first)
        # EdgeServerIP against the prediction; mismatching rows to ``mismatches`` when given
        self.egress_check = EgressChecker(
            model, TableWriter(mismatches, MISMATCH_SCHEMA) if mismatches is not None else None
        )

    def process(self, chunk: Chunk) -> int:
        """Evaluate one chunk; returns the number of records it held."""
        n_bad = len(chunk.malformed)
        if n_bad:
            self._run(self._add_malformed, chunk)
        batch = chunk.batch
        if batch is None or batch.num_rows == 0:
            self.rows_in += n_bad
            return n_bad
        n = batch.num_rows
        self.rows_in += n_bad + n
        if self.key_fields is None:
            present = set(batch.schema.names)
            self.key_fields = tuple(f for f in KEY_FIELDS if self.cols.get(f) and self.cols[f] in present)
        common = parse_common(batch, self.cols)
        decided = self.decide(common)
        self._run(self.consume, common, chunk, decided)
        self._warn_dropped()
        return n_bad + n

    def _run(self, fn: Any, *args: Any) -> None:
        if self._stage is None:
            fn(*args)
        else:
            self._stage.submit(fn, *args)

    def _add_malformed(self, chunk: Chunk) -> None:
        self.acc.add_reason(chunk.malformed_reason, len(chunk.malformed))
        self.acc.add_file(chunk.source, len(chunk.malformed), 0, len(chunk.malformed))
        for number, text in chunk.malformed[:3]:
            self.acc.add_example(chunk.malformed_reason, f"{chunk.source} row {number}: {text[:500]}")
        if self.reject_writer is not None:
            self.reject_writer.write(malformed_table(chunk.source, chunk.malformed, chunk.malformed_reason))

    def evaluate_common(
        self, common: Any, chunk: Chunk, states: np.ndarray | None = None
    ) -> tuple[Any, Any, np.ndarray]:
        """Decide and consume one parsed batch on this thread; returns ``(resolved, result, ok rows)``."""
        decided = self.decide(common, states)
        self.consume(common, chunk, decided)
        self._warn_dropped()
        return decided[0], decided[1], decided[2]

    def decide(self, common: Any, states: np.ndarray | None = None) -> tuple[Any, Any, np.ndarray]:
        """Resolve and decide a parsed batch: ``(resolved, engine result, positions of the decided rows)``."""
        m = self.model
        res = resolve(common, m, m.states() if states is None else states, self.threads)
        if res.all_ok:  # the common case: decide the batch as it is, no gathers
            ok = np.arange(common.n)
            r = m.decide(res.server, res.pool, common.family, common.flows, self.threads)
        else:
            ok = np.flatnonzero(res.reason == 0)
            r = m.decide(res.server[ok], res.pool[ok], common.family[ok], common.flows[ok], self.threads)
        return res, r, ok

    def consume(self, common: Any, chunk: Chunk, decided: tuple[Any, Any, np.ndarray]) -> None:
        """Count a decided batch in the summary, write its rejects and decisions."""
        res, r, ok = decided
        n = common.n
        dup = self.acc.observe(common, chunk.source, chunk.rows_of, res.reason, ok)

        def take(a: np.ndarray) -> np.ndarray:
            return a if res.all_ok else a[ok]

        # The decisions table first: the writer thread (the busiest stage) starts encoding it while
        # the counts below are taken.
        want_table = self.writer is not None or (self.keep_rows and not self.dropped)
        if want_table and ok.shape[0]:
            table = decisions_table(
                common.cols,
                ok,
                self.key_fields or (),
                self.ids,
                take(res.server),
                r,
                n=n,
                trace=(
                    chunk.source,
                    chunk.rows_of(ok),
                    take(common.start_ns),
                    take(common.start_ok if common.start_ok is not None else common.timed),
                ),
            )
            if self.writer is not None:
                self.writer.write(table)
            if self.keep_rows and not self.dropped:
                if self.kept_rows + table.num_rows > self.keep_rows:
                    self.dropped = True
                    self.kept = []
                else:
                    self.kept.append(table)
                    self.kept_rows += table.num_rows
        if not res.all_ok:
            bad = np.flatnonzero(res.reason != 0)
            self.acc.add_rejects(res.reason[bad])
            if self.reject_writer is not None:
                rows = chunk.rows_of(bad)
                self.reject_writer.write(rejects_table(chunk.source, rows, res.reason[bad], common.cols, bad))
        self.acc.add_decisions(
            take(res.location), take(res.pool), r.tier, r.server, r.location, r.ip, r.distance
        )
        self.acc.fallback += int(res.fallback.sum())
        self.egress_check.add(common, chunk, res, r, ok)
        timed = take(common.timed)
        if dup.any():  # a repeated record is one request: its connection counts once
            timed = timed & ~dup
        if timed.any():
            sel = timed & (r.ip >= 0)
            if sel.all():
                self.acc.add_timing(take(common.start_ns))
                self.acc.add_concurrency(
                    r.ip,
                    common.origin_dict,
                    take(common.origin_idx),
                    take(common.port),
                    take(common.start_ns),
                    take(common.duration_ns),
                )
            else:
                self.acc.add_timing(take(common.start_ns)[timed])
                rows = ok[sel]
                self.acc.add_concurrency(
                    r.ip[sel],
                    common.origin_dict,
                    common.origin_idx[rows],
                    common.port[rows],
                    common.start_ns[rows],
                    common.duration_ns[rows],
                )

    def _warn_dropped(self) -> None:
        """Warn (on the calling thread) once decisions stopped being kept in memory."""
        if self.dropped and not self._warned:
            self._warned = True
            warnings.warn(
                f"more than {self.keep_rows:,} decided rows: decisions are not kept in memory; "
                "pass output= to write them to Parquet",
                RuntimeWarning,
                stacklevel=4,
            )

    def close(self) -> None:
        """Stop the background stage after a failure (``finish`` does it after a complete run)."""
        if self._stage is not None:
            stage, self._stage = self._stage, None
            with contextlib.suppress(BaseException):  # the caller is already handling the first error
                stage.close()
        self.egress_check.close()

    def empty_decisions_schema(self) -> pa.Schema:
        return decisions_schema(self.key_fields or ())

    def finish(self) -> Summary:
        if self._stage is not None:
            stage, self._stage = self._stage, None
            stage.close()  # every batch counted and handed to the writer (re-raises a failure)
        self._warn_dropped()
        # The summary first: it is built while the writer thread still encodes the last batch, and
        # so is the concurrency fold (C++, without the GIL) when the caller will show the peaks.
        summary = self.acc.finish()
        summary.egress_check = self.egress_check.finish()
        if self.fold_concurrency:
            summary.concurrency.fold()
        if self.writer is not None:
            self.writer.close(self.empty_decisions_schema())
        if self.reject_writer is not None:
            self.reject_writer.close()
        if summary.rows_in != self.rows_in:  # pragma: no cover - an accounting bug, never user input
            raise AssertionError(f"rows read {self.rows_in} != decided + rejected {summary.rows_in}")
        return summary

    def decisions(self) -> pa.Table | None:
        if not self.keep_rows or self.dropped:
            return None
        if not self.kept:
            return self.empty_decisions_schema().empty_table()
        return pa.concat_tables(self.kept, promote_options="permissive")


def evaluate(
    source: Any,
    topology: Any,
    *,
    columns: Mapping[str, str | None] | None = None,
    output: str | Path | None = None,
    rejects: str | Path | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: bool | None = None,
    threads: int | None = None,
    keep_rows: int = DEFAULT_KEEP_ROWS,
    concurrency_resolution_ms: int = 1,
    spill_dir: str | Path | None = None,
    mismatches: str | Path | None = None,
) -> Evaluation:
    """Evaluate a request log against a topology: where every request's origin connection egresses.

    ``source``: a path, a list of paths or a directory (Parquet, CSV, NDJSON; gzip or not), a pyarrow
    Table / RecordBatchReader, or any object with ``__arrow_c_stream__`` (pandas, Polars, DuckDB).
    ``topology``: a ``Topology``, ``CompiledTopology``, engine, or path to a topology file or saved
    compiled file. ``columns`` maps fields (Logpush names, plus ``ingress_server`` and ``pool``) to the
    log's column names (``None`` to ignore one). Decisions go to ``output`` (Parquet, written batch by
    batch) and/or stay in memory up to ``keep_rows`` rows; rows that cannot be evaluated are counted
    per reason and written to ``rejects`` (Parquet, CSV or NDJSON by suffix) when given. Connections
    for the concurrency peaks beyond a few million spill to a temporary file in ``spill_dir``
    (default: the system temporary directory, ``TMPDIR``), removed when the summary is dropped.
    Where the log has ``EdgeServerIP``, rows whose value is not the predicted egress IP are written
    to ``mismatches`` (Parquet, CSV or NDJSON by suffix) when given (``summary.egress_check``).
    """
    if batch_rows < 1:
        raise ValueError("batch_rows must be >= 1")
    t0 = time.perf_counter()
    model = model_for(topology)
    cols = resolve_columns(columns)
    src = open_source(source, column_names(cols, hints=True), batch_rows, dictionary=dictionary_columns(cols))
    runner = Runner(
        model,
        cols,
        output=output,
        rejects=rejects,
        keep_rows=keep_rows if output is None else 0,
        threads=threads,
        concurrency_resolution_ms=concurrency_resolution_ms,
        spill_dir=spill_dir,
        pipeline=True,
        fold_concurrency=True,
        mismatches=mismatches,
    )
    bar = Progress(progress, src)
    try:
        for chunk in prefetch(src.chunks):
            rows = runner.process(chunk)
            bar.advance(chunk.progress, rows)
    except BaseException:
        runner.close()
        raise
    finally:
        bar.close()
    runner.acc.input_errors.extend(src.errors)
    runner.acc.notes.extend(src.notes)
    runner.acc.given.update(src.given_by_file())
    summary = runner.finish()
    return Evaluation(
        summary,
        output=Path(output) if output is not None else None,
        rejects=Path(rejects) if rejects is not None else None,
        decisions=runner.decisions(),
        dropped=runner.dropped,
        elapsed_s=time.perf_counter() - t0,
        source=src.description,
        topology=model.source,
    )


# ---------------------------------------------------------------------------------------------
# compare
# ---------------------------------------------------------------------------------------------
class Comparison:
    """The result of ``compare``: both evaluations' summaries and what changed (``diff``)."""

    def __init__(
        self,
        a: Summary,
        b: Summary,
        diff: CompareSummary,
        *,
        elapsed_s: float,
        source: str,
        topologies: tuple[str, str],
    ) -> None:
        self.a = a
        self.b = b
        self.diff = diff
        self.elapsed_s = elapsed_s
        self.source = source
        self.topologies = topologies

    def report(self, directory: str | Path, *, top: int = 20, title: str | None = None) -> Path:
        from ._report import write_compare_report

        return write_compare_report(
            self, directory, top=top, title=title or f"aegisfwd comparison on {self.source}"
        )

    def print(self, console: Any = None, *, top: int = 10) -> None:
        from ._report import print_comparison

        print_comparison(self, console=console, top=top)

    def __repr__(self) -> str:
        d = self.diff
        return (
            f"Comparison({d.rows_both} rows decided by both: {d.moved_location} moved location, "
            f"{d.moved_server} moved server)"
        )


def compare(
    source: Any,
    topology_a: Any,
    topology_b: Any,
    *,
    columns: Mapping[str, str | None] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: bool | None = None,
    threads: int | None = None,
    concurrency_resolution_ms: int = 1,
    spill_dir: str | Path | None = None,
    mismatches: str | Path | None = None,
) -> Comparison:
    """What-if: evaluate one log against two topologies (e.g. two IP placements) row by row.

    Each row is parsed once; each topology picks its own ingress server (by its own up servers) and
    decides. ``Comparison.diff`` counts tier transitions, rows whose egress server / location / IP
    moved, the distance saved or added, and the forwarding flows that changed. ``mismatches``: the
    rows whose ``EdgeServerIP`` is not topology A's predicted egress IP (A is what was deployed when
    the log was written; both summaries carry the comparison).
    """
    t0 = time.perf_counter()
    ma, mb = model_for(topology_a), model_for(topology_b)
    cols = resolve_columns(columns)
    src = open_source(source, column_names(cols), batch_rows, dictionary=dictionary_columns(cols))
    ra = Runner(
        ma,
        cols,
        threads=threads,
        concurrency_resolution_ms=concurrency_resolution_ms,
        spill_dir=spill_dir,
        mismatches=mismatches,
    )
    rb = Runner(
        mb, cols, threads=threads, concurrency_resolution_ms=concurrency_resolution_ms, spill_dir=spill_dir
    )
    diff = CompareAccumulator(ma, mb)
    bar = Progress(progress, src)
    try:
        for chunk in src.chunks:
            n_bad = len(chunk.malformed)
            for r in (ra, rb):
                if n_bad:
                    r.acc.add_reason(chunk.malformed_reason, n_bad)
                r.rows_in += n_bad
            diff.rows_in += n_bad
            if chunk.batch is not None and chunk.batch.num_rows:
                n = chunk.batch.num_rows
                for r in (ra, rb):
                    r.rows_in += n
                diff.rows_in += n
                common = parse_common(chunk.batch, cols)
                res_a, dec_a, ok_a = ra.evaluate_common(common, chunk)
                res_b, dec_b, ok_b = rb.evaluate_common(common, chunk)
                diff.add(n, res_a, dec_a, ok_a, res_b, dec_b, ok_b)
                bar.advance(chunk.progress, n + n_bad)
            else:
                bar.advance(chunk.progress, n_bad)
    finally:
        bar.close()
    ra.acc.input_errors.extend(src.errors)
    rb.acc.input_errors.extend(src.errors)
    return Comparison(
        ra.finish(),
        rb.finish(),
        diff.finish(),
        elapsed_s=time.perf_counter() - t0,
        source=src.description,
        topologies=(ma.source, mb.source),
    )
