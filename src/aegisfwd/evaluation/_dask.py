"""Evaluate a log on a Dask cluster: ``af.evaluate_dask(ddf, topology)``.

The engine (the compiled topology: one flat buffer when pickled) is shipped to every worker once,
with ``client.scatter(engine, broadcast=True)``; each task gets the future of that one copy, never
its own. Every partition is evaluated by the same code as ``af.evaluate`` and returns a mergeable
``Summary``; the summaries are merged on the client, so the counts equal a single-machine run
exactly. Decisions (and rejects) are written one Parquet file per partition into ``output``
(``rejects``) directories when given.

Without a distributed client (``client=None`` and none running), the local Dask scheduler runs the
same graph with the engine as a single shared graph key.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import LogInputError
from ._prepare import column_names, dictionary_columns, resolve_columns
from ._read import Chunk, expand_paths, is_path_like, open_source
from ._run import DEFAULT_BATCH_ROWS, Evaluation, Runner, model_for
from ._summary import Summary

__all__ = ["evaluate_dask"]

SCHEDULER_TIMEOUT_S = 10  # an unreachable --scheduler fails after this, not distributed's 30 s


def _evaluate_part(
    part: Any,
    engine: Any,
    index: int,
    columns: Mapping[str, str | None],
    output: str | None,
    rejects: str | None,
    batch_rows: int,
    threads: int | None,
    resolution_ms: int,
) -> Summary:
    """Runs on a worker: one partition (a pandas/Arrow frame, or a log file path) through the engine."""
    import pyarrow as pa

    model = model_for(engine)  # cached per engine object: built once per worker, not per partition
    cols = dict(columns)
    out = os.path.join(output, f"part-{index:05d}.parquet") if output else None
    rej = os.path.join(rejects, f"part-{index:05d}.parquet") if rejects else None
    runner = Runner(
        model, cols, output=out, rejects=rej, threads=threads, concurrency_resolution_ms=resolution_ms
    )
    if isinstance(part, (str, os.PathLike)):
        src = open_source(
            part, column_names(cols, hints=True), batch_rows, dictionary=dictionary_columns(cols)
        )
        chunks = src.chunks
    else:
        if not isinstance(part, (pa.Table, pa.RecordBatch)) and not hasattr(part, "__arrow_c_stream__"):
            raise TypeError(f"cannot evaluate a partition of type {type(part).__name__}")
        if not isinstance(part, (pa.Table, pa.RecordBatch)):
            try:
                import pandas as pd

                if isinstance(part, pd.DataFrame):
                    part = pa.Table.from_pandas(part, preserve_index=False)
            except ImportError:  # pragma: no cover
                pass
        src = open_source(
            part, column_names(cols, hints=True), batch_rows, dictionary=dictionary_columns(cols)
        )
        chunks = src.chunks
    for chunk in chunks:
        if isinstance(chunk, Chunk) and chunk.source == "<arrow>":
            chunk.source = f"<partition {index}>"
        runner.process(chunk)
    runner.acc.input_errors.extend(src.errors)
    runner.acc.notes.extend(src.notes)
    return runner.finish()


def evaluate_dask(
    data: Any,
    topology: Any,
    *,
    columns: Mapping[str, str | None] | None = None,
    output: str | os.PathLike[str] | None = None,
    rejects: str | os.PathLike[str] | None = None,
    client: Any = None,
    scheduler: str | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    threads: int | None = None,
    concurrency_resolution_ms: int = 1,
    spill_dir: str | os.PathLike[str] | None = None,
) -> Evaluation:
    """Evaluate ``data`` on Dask and return an ``Evaluation`` whose summary merges every partition.

    ``data``: a Dask DataFrame (each partition is one task), or log paths / a directory (each file is
    one task, read on the worker with the same readers as ``af.evaluate``: workers must see the
    files). ``client``: a ``distributed.Client``; else ``scheduler`` (an address) connects one; else
    a running client is used if there is one, else Dask's local scheduler. ``output`` / ``rejects``
    are directories that get one Parquet file per partition. Partition summaries are merged on the
    client as they arrive (their concurrency connections spill to ``spill_dir`` beyond a few
    million, as in ``af.evaluate``), so the client holds about one partition's summary at a time.
    """
    import dask

    t0 = time.perf_counter()
    cols = resolve_columns(columns)
    model = model_for(topology)
    engine = model.engine
    own_client = False
    if client is None and scheduler is not None:
        from distributed import Client

        try:
            client = Client(scheduler, timeout=SCHEDULER_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            raise LogInputError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
        own_client = True
    if client is None:
        try:
            from distributed import get_client

            client = get_client()
        except (ImportError, ValueError):
            client = None

    if is_path_like(data):
        parts: Sequence[Any] = [str(p) for p in expand_paths(data)]
        description = f"{len(parts)} files" if len(parts) != 1 else str(parts[0])
    elif hasattr(data, "to_delayed"):
        parts = data.to_delayed()
        description = f"dask dataframe ({len(parts)} partitions)"
    else:
        raise TypeError(
            "evaluate_dask takes a Dask DataFrame or log paths; use af.evaluate for in-memory data"
        )

    out_dir = rej_dir = None
    if output is not None:
        Path(output).mkdir(parents=True, exist_ok=True)
        out_dir = str(Path(output).resolve())
    if rejects is not None:
        Path(rejects).mkdir(parents=True, exist_ok=True)
        rej_dir = str(Path(rejects).resolve())

    try:
        if client is not None:
            # One copy per worker, shipped once; every task refers to it by its key.
            shared = client.scatter(engine, broadcast=True, hash=False)
        else:
            shared = dask.delayed(engine, pure=True)
        tasks = [
            dask.delayed(_evaluate_part, pure=False)(
                p, shared, i, cols, out_dir, rej_dir, batch_rows, threads, concurrency_resolution_ms
            )
            for i, p in enumerate(parts)
        ]
        if client is not None:
            from distributed import as_completed

            errors: dict[int, list[str]] = {}

            def arriving() -> Iterator[Summary]:
                futures = client.compute(tasks)
                index = {f.key: i for i, f in enumerate(futures)}
                for future, part in as_completed(futures, with_results=True):
                    errors[index[future.key]] = part.input_errors
                    future.release()
                    yield part

            summary = Summary.merge_all(arriving(), spill_dir=spill_dir)
            # Merged in arrival order; input errors are listed in partition order all the same.
            summary.input_errors = [e for i in sorted(errors) for e in errors[i]]
        else:
            summary = Summary.merge_all(dask.compute(*tasks), spill_dir=spill_dir)
    finally:
        if own_client:
            client.close()

    if not summary.coords:
        summary.coords = dict(model.coords)
    return Evaluation(
        summary,
        output=Path(out_dir) if out_dir else None,
        rejects=Path(rej_dir) if rej_dir else None,
        decisions=None,
        dropped=False,
        elapsed_s=time.perf_counter() - t0,
        source=description,
        topology=model.source,
    )
