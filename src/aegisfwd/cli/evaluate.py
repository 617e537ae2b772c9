"""``aegisfwd evaluate`` and ``aegisfwd compare`` (loaded lazily by ``aegisfwd.cli``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from ..evaluation._prepare import FIELDS
from ._common import no_cache_option

_MAP_HELP = (
    "Use log column COL for FIELD (repeatable). FIELD is a Logpush field name "
    f"({', '.join(f for f in FIELDS if f[0].isupper())}) or ingress_server / pool. "
    "COL= (empty) ignores the field."
)


def _parse_maps(maps: tuple[str, ...]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for m in maps:
        if "=" not in m:
            raise click.BadParameter(f"{m!r}: expected COL=FIELD", param_hint="--map")
        col, field = (x.strip() for x in m.split("=", 1))
        if field not in FIELDS:
            hint = f" (did you mean {field}={col}?)" if col in FIELDS else ""
            raise click.BadParameter(
                f"{m!r}: unknown field {field!r}{hint}; fields are {', '.join(FIELDS)}", param_hint="--map"
            )
        out[field] = col or None
    return out


def _console() -> Any:
    from rich.console import Console

    return Console()


def use_lean_arrow_pool() -> None:
    """For the log commands (this process is ours): Arrow's jemalloc pool where the build has it.

    Measured on a 50M-row log (benchmarks/README.md, "Log evaluation figures"): the default mimalloc pool keeps
    ~150 MB more resident than jemalloc for the same work, at no speed gain. A pool chosen with
    ARROW_DEFAULT_MEMORY_POOL is left alone, and so is a build without jemalloc."""
    import os

    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        return
    import pyarrow as pa

    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except NotImplementedError:  # pragma: no cover - wheels without jemalloc (Windows)
        pass


_mismatches_option = click.option(
    "--mismatches",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write rows whose EdgeServerIP is not the predicted egress IP (.parquet, .csv or .ndjson).",
)

# Options evaluate and compare share, written once.
_report_option = click.option(
    "--report",
    "report_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write DIR/summary.json and DIR/report.html.",
)
_map_option = click.option("--map", "maps", multiple=True, metavar="COL=FIELD", help=_MAP_HELP)
_batch_rows_option = click.option(
    "--batch-rows", type=click.IntRange(min=1), default=1 << 18, show_default=True, help="Rows per batch."
)
_threads_option = click.option(
    "--threads", type=click.IntRange(min=1), default=None, help="Engine threads per batch."
)
_top_option = click.option(
    "--top", type=click.IntRange(min=1), default=10, show_default=True, help="Rows in top-N tables."
)
_progress_option = click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal)."
)

_spill_dir_option = click.option(
    "--spill-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Where concurrency events of long logs spill (default: the system temporary directory).",
)


@contextlib.contextmanager
def log_run_process() -> Iterator[None]:
    """How the log commands prepare their own process for one run: the lean Arrow pool, and the
    startup objects frozen while the run lasts."""
    use_lean_arrow_pool()
    with startup_objects_frozen():
        yield


@contextlib.contextmanager
def startup_objects_frozen() -> Iterator[None]:
    """For the log commands: while the run lasts, every object alive at its start (the imported
    libraries, ~60k objects) is out of the cyclic GC's reach (``gc.freeze``), so the full
    collections that a long run triggers do not traverse them again and again; unfrozen after.

    Each full collection cost ~40 ms, about one per million rows; `aegisfwd evaluate` on a 1M-row
    Parquet log measured 0.73-0.75 s instead of 0.76-0.89 s (benchmarks/README.md, "Log evaluation figures").
    ``gc.collect()`` first, so nothing that is already garbage is frozen."""
    import gc

    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _model(topology: Path, no_cache: bool) -> Any:
    """The evaluation model of a topology file, its compiled tables through the cache."""
    from ..evaluation._model import Model

    return Model(topology, cache=not no_cache)


def finish_run(summary: Any, source: str) -> None:
    """Notes and input errors on stderr; exit 2 (via ``LogInputError``) when no row was decided."""
    from ..evaluation._outcome import check_decided, stderr_lines

    for line in stderr_lines(summary):
        click.echo(line, err=True)
    check_decided(summary, source)


def _check_logs(logs: tuple[str, ...]) -> list[str]:
    for p in logs:
        if not Path(p).exists():
            from ..errors import LogInputError

            raise LogInputError(f"{p}: no such log file or directory")
    return list(logs)


@click.command(short_help="Evaluate request logs against a topology.")
@click.argument("logs", nargs=-1, required=True, metavar="LOG...")
@click.option(
    "--topology",
    "-t",
    "topology",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Topology file (YAML/JSON/TOML) or compiled file.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=True, path_type=Path),
    default=None,
    help="Write decisions to this Parquet file (a directory of part files with --scheduler).",
)
@_report_option
@click.option(
    "--rejects",
    type=click.Path(path_type=Path),
    default=None,
    help="Write rejected rows with their reason (.parquet, .csv or .ndjson by suffix).",
)
@_map_option
@click.option(
    "--scheduler", default=None, metavar="ADDRESS", help="Run on this Dask scheduler (one task per log file)."
)
@_batch_rows_option
@_threads_option
@_top_option
@_progress_option
@_spill_dir_option
@no_cache_option
@_mismatches_option
def evaluate(
    logs: tuple[str, ...],
    topology: Path,
    output: Path | None,
    report_dir: Path | None,
    rejects: Path | None,
    maps: tuple[str, ...],
    scheduler: str | None,
    batch_rows: int,
    threads: int | None,
    top: int,
    progress: bool | None,
    spill_dir: Path | None,
    no_cache: bool,
    mismatches: Path | None,
) -> None:
    """Evaluate request logs (Parquet, CSV, NDJSON; gzip or not; files or directories): where each
    request's connection to the origin egresses, the tier mix, forwarding flows, load and
    concurrency. Rows that cannot be evaluated are counted per reason, never dropped silently."""
    columns = _parse_maps(maps)
    paths = _check_logs(logs)
    if scheduler and mismatches is not None:
        raise click.BadParameter(
            "not with --scheduler (the report still has the table)", param_hint="--mismatches"
        )
    with log_run_process():
        model = _model(topology, no_cache)
        if scheduler:
            from ..evaluation._dask import evaluate_dask

            ev = evaluate_dask(
                paths,
                model,
                columns=columns,
                output=output,
                rejects=rejects,
                scheduler=scheduler,
                batch_rows=batch_rows,
                threads=threads,
                spill_dir=spill_dir,
            )
        else:
            from ..evaluation import evaluate as run

            ev = run(
                paths,
                model,
                columns=columns,
                output=output,
                rejects=rejects,
                batch_rows=batch_rows,
                progress=progress,
                threads=threads,
                keep_rows=0,
                spill_dir=spill_dir,
                mismatches=mismatches,
            )
    console = _console()
    ev.print(console, top=top)
    if output is not None:
        console.print(f"decisions: {output}")
    if rejects is not None:
        console.print(f"rejects: {rejects}")
    if mismatches is not None:
        console.print(f"mismatches: {mismatches}")
    if report_dir is not None:
        html = ev.report(report_dir, top=max(top, 20))
        console.print(f"report: {html} and {report_dir / 'summary.json'}")
    finish_run(ev.summary, ev.source)


@click.command(short_help="Compare evaluations of the same logs under two topologies.")
@click.argument("logs", nargs=-1, required=True, metavar="LOG...")
@click.option(
    "--topology",
    "-t",
    "topologies",
    multiple=True,
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Give twice: topology A (before), then B (after).",
)
@_report_option
@_map_option
@_batch_rows_option
@_threads_option
@_top_option
@_progress_option
@_spill_dir_option
@no_cache_option
@_mismatches_option
def compare(
    logs: tuple[str, ...],
    topologies: tuple[Path, ...],
    report_dir: Path | None,
    maps: tuple[str, ...],
    batch_rows: int,
    threads: int | None,
    top: int,
    progress: bool | None,
    spill_dir: Path | None,
    no_cache: bool,
    mismatches: Path | None,
) -> None:
    """What-if: evaluate the same logs under topology A and topology B (e.g. two IP placements) and
    show the tier-mix change, the rows and flows whose egress moved, and the distance saved or added."""
    if len(topologies) != 2:
        raise click.BadParameter(
            f"give --topology exactly twice (A then B), got {len(topologies)}", param_hint="--topology"
        )
    columns = _parse_maps(maps)
    paths = _check_logs(logs)
    from ..evaluation import compare as run

    with log_run_process():
        c = run(
            paths,
            _model(topologies[0], no_cache),
            _model(topologies[1], no_cache),
            columns=columns,
            batch_rows=batch_rows,
            progress=progress,
            threads=threads,
            spill_dir=spill_dir,
            mismatches=mismatches,
        )
    console = _console()
    c.print(console, top=top)
    if report_dir is not None:
        html = c.report(report_dir, top=max(top, 20))
        console.print(f"report: {html} and {report_dir / 'summary.json'}")
