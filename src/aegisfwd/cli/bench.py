"""``aegisfwd bench``: compare the decision paths with the peers and the floor, in one run.

Loaded lazily by ``aegisfwd.cli`` (it needs the ``bench`` extra: duckdb for the SQL peer).
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace

import click

from ..bench.runner import Settings, WorkloadReport, fastest_peer_ratio, format_rate, records, run
from ..bench.workloads import WORKLOADS


def _print_tables(reports: list[WorkloadReport]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # piped into a file: don't squeeze the table into 80 columns
        console = Console(width=132)
    for rep in reports:
        mix = ", ".join(f"{name} {share:.0%}" for name, share in rep.tiers.items())
        floors = ", ".join(
            f"{t} thread{'s' if t > 1 else ''}: {format_rate(f.decisions_per_s)}/s ({f.gb_per_s:.1f} GB/s"
            + (f", copying on {f.threads}" if f.threads != t else "")
            + ")"
            for t, f in rep.floors.items()
        )
        table = Table(
            title=f"{rep.workload}: {rep.rows:,} requests ({mix})",
            caption=f"floor (NumPy copy of the 42 bytes a decision reads and writes) {floors}",
        )
        for name, justify in (
            ("path", "left"),
            ("threads", "right"),
            ("computes", "left"),
            ("rows", "right"),
            ("decisions/s", "right"),
            ("× fastest peer\n(same work)", "right"),
            ("of floor", "right"),
            ("agrees", "center"),
        ):
            table.add_column(name, justify=justify)  # type: ignore[arg-type]
        ratio = fastest_peer_ratio(rep.records)
        for i, r in enumerate(rep.records):
            table.add_row(
                escape(r.path),
                str(r.threads),
                r.computes,
                f"{r.rows:,}",
                format_rate(r.decisions_per_s),
                f"{ratio[i]:.3g}×" if i in ratio else "-",
                f"{r.fraction_of_floor:.3g}",
                "yes" if r.agrees else "[bold red]NO[/]",
            )
        console.print(table)
        for note in rep.skipped:
            console.print(f"[yellow]not measured:[/] {escape(note)}")


@click.command()
@click.option(
    "--quick", is_flag=True, help="A few-second run: the world workload, 2,000 requests, one repeat."
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of records instead of tables.")
@click.option(
    "-w",
    "--workload",
    "workloads",
    multiple=True,
    type=click.Choice(WORKLOADS),
    help="Workload to run (repeat for several; default: all, or world with --quick).",
)
@click.option(
    "-n", "--requests", "n", type=click.IntRange(min=1), help="Requests per workload (default 100,000)."
)
@click.option(
    "--scalar-rows",
    type=click.IntRange(min=1),
    help="Rows for the per-row paths: engine.decide, reference.decide, peer.python (default 1,000).",
)
@click.option(
    "-t",
    "--threads",
    multiple=True,
    type=click.IntRange(min=1),
    help="Thread count for the batch paths (repeat for several; default 1, 2, 4, ... and all cores).",
)
@click.option(
    "--repeat", type=click.IntRange(min=1), help="Timed calls per path; the best counts (default 3)."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the world and the requests.")
@click.option("--no-peers", is_flag=True, help="Leave out the peers (pure Python, NumPy, DuckDB).")
@click.option("--no-evaluate", is_flag=True, help="Leave out af.evaluate end to end from a Parquet log.")
def bench(
    quick: bool,
    as_json: bool,
    workloads: tuple[str, ...],
    n: int | None,
    scalar_rows: int | None,
    threads: tuple[int, ...],
    repeat: int | None,
    seed: int,
    no_peers: bool,
    no_evaluate: bool,
) -> None:
    """Benchmark every decision path against the peers and a memory-copy floor, checking every answer.

    Paths: the compiled engine's batch call on each thread count, its scalar calls (Cython and
    pybind11), ReferenceEngine, the peers (pure Python, NumPy, DuckDB SQL) and af.evaluate end to
    end from a Parquet log. Each is checked against ReferenceEngine before it is timed. The full
    suite is `pytest benchmarks/`.
    """
    s = Settings.quick() if quick else Settings.short()
    changes: dict[str, object] = {"seed": seed, "peers": not no_peers, "evaluate": not no_evaluate}
    if workloads:
        changes["workloads"] = tuple(dict.fromkeys(workloads))
    if n is not None:
        changes["n"] = n
    if scalar_rows is not None:
        changes["scalar_rows"] = scalar_rows
    if threads:
        changes["threads"] = tuple(threads)
    if repeat is not None:
        changes["repeat"] = repeat
    s = replace(s, **changes)  # type: ignore[arg-type]

    def progress(msg: str) -> None:  # on stderr, so that --json output stays clean
        click.echo(f"… {msg}", err=True)

    reports = run(s, progress)
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in records(reports)], indent=1))
    else:
        _print_tables(reports)
    if not all(r.agrees for r in records(reports)):
        click.echo("error: some path disagrees with the reference (see 'agrees')", err=True)
        sys.exit(1)
