"""``aegisfwd demo``: the world topology, sample decisions, and a log evaluation end to end."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from ._common import distance_unit, human_bytes, rate_text, rich_console, status, topology_summary

__all__ = ["demo"]


@click.command(short_help="Build the world, decide sample requests, show the tier mix.")
@click.option(
    "-n",
    "--requests",
    "n_requests",
    type=click.IntRange(min=1),
    default=1_000_000,
    show_default=True,
    help="How many sample requests to decide.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the world and the requests.")
@click.option(
    "--log-rows",
    type=click.IntRange(min=0),
    default=1_000_000,
    show_default=True,
    help="Rows of the Logpush-style log to generate and evaluate end to end (0 skips that step).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("aegisfwd-demo"),
    show_default=True,
    help="Where the log, decisions.parquet and report/ (report.html, summary.json) are written.",
)
def demo(n_requests: int, seed: int, log_rows: int, out_dir: Path) -> None:
    """The main job on a built-in default: the world topology, decisions, and a log evaluation.

    Builds the built-in world (real Cloudflare locations), compiles it, decides sample requests and
    prints the tier mix and two explained decisions (one forwarded inside the ingress location, one to
    another location). Then generates a Logpush-style NDJSON.gz log for the same world, evaluates it
    end to end, prints the summary tables and writes report.html (needs the ``analysis`` extra).
    """
    import numpy as np
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table
    from rich.text import Text

    from .._types import Tier
    from ..datasets import requests as sample_requests
    from ..datasets import world
    from ..engine import Engine

    console = rich_console(highlight=False)

    with status(console, f"Building the world topology (seed {seed})…"):
        t0 = time.perf_counter()
        topo = world(seed)
        t_world = time.perf_counter() - t0
    console.print(f"[bold]world[/]: {topology_summary(topo)} [dim]({t_world:.2f} s)[/]", soft_wrap=True)

    with status(console, "Compiling…"):
        t0 = time.perf_counter()
        compiled = topo.compile()
        t1 = time.perf_counter()
        engine = Engine(compiled)
        t2 = time.perf_counter()
    console.print(
        f"[bold]compiled[/] into {human_bytes(compiled.nbytes)} of tables [dim]({t1 - t0:.2f} s; "
        f"{type(engine).__name__} ready in {t2 - t1:.2f} s)[/]",
        soft_wrap=True,
    )

    with status(console, f"Drawing {n_requests:,} requests…"):
        req = sample_requests(topo, n_requests, seed=seed)

    chunk = 100_000
    tiers = np.empty(n_requests, dtype=np.uint8)
    distance = np.empty(n_requests, dtype=np.float64)
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    decide_time = 0.0
    with progress:
        task = progress.add_task("Deciding", total=n_requests)
        for a in range(0, n_requests, chunk):
            b = min(a + chunk, n_requests)
            t0 = time.perf_counter()
            result = engine.decide_batch(req.server[a:b], req.pool[a:b], req.family[a:b], req.flow[a:b])
            decide_time += time.perf_counter() - t0
            tiers[a:b] = result.tier
            distance[a:b] = result.distance
            progress.advance(task, b - a)
    rate = n_requests / decide_time if decide_time > 0 else float("inf")
    console.print(
        f"[bold]decided[/] {n_requests:,} requests with decide_batch in {decide_time:.2f} s "
        f"[dim]({rate_text(rate)} decisions/s)[/]",
        soft_wrap=True,
    )

    unit = distance_unit(engine)
    counts = np.bincount(tiers, minlength=256)
    table = Table(title="Tier mix", title_justify="left")
    table.add_column("tier")
    table.add_column("requests", justify="right")
    table.add_column("share", justify="right")
    table.add_column(f"median distance ({unit})", justify="right")
    for tier in Tier:
        c = int(counts[tier])
        if not c and tier == Tier.INVALID:
            continue
        med = "-"
        if tier == Tier.REMOTE and c:
            med = f"{float(np.median(distance[tiers == tier])):,.0f}"
        table.add_row(tier.name, f"{c:,}", f"{100.0 * c / n_requests:.1f}%", med)
    console.print(table)

    examples = [
        ("forwarded inside the location", (Tier.SAME_DC, Tier.SAME_LOCATION)),
        ("forwarded to another location", (Tier.REMOTE,)),
    ]
    for title, wanted in examples:
        rows = np.flatnonzero(np.isin(tiers, [int(t) for t in wanted]))
        if not rows.size:
            console.print(f"[dim]no {'/'.join(t.name for t in wanted)} decision in this sample[/]")
            continue
        i = int(rows[0])
        server = topo.server_ids[int(req.server[i])]
        pool = topo.pool_ids[int(req.pool[i])]
        fam = int(req.family[i])
        flow = int(req.flow[i])
        text = str(engine.explain(server, pool, fam, flow=flow)).rstrip("\n")
        command = f"decide --server {server} --pool {pool} --family {fam} --flow {flow:#x} --explain"
        console.print(f"\n[bold]{title}[/] [dim]({escape(command)})[/]", soft_wrap=True)
        console.print(Text(text), soft_wrap=True)  # explain lines are long: never re-wrap them

    if log_rows:
        _demo_log_evaluation(console, out_dir, log_rows, seed)


def _demo_log_evaluation(console: Any, out_dir: Path, rows: int, seed: int) -> None:
    """Second half of the demo: generate a Logpush-style log, evaluate it, write the report."""
    try:
        from ..evaluation.demo import run_demo
    except ImportError as exc:  # pyarrow & co. come with the analysis extra
        console.print(
            f"[yellow]skipping the log evaluation: {exc}. "
            'Install it with: pip install "aegisfwd[analysis]"[/]',
            soft_wrap=True,
        )
        return
    console.rule(f"[bold]Evaluating a {rows:,}-row Logpush log[/]")
    run_demo(out_dir, rows=rows, seed=seed, console=console, progress=console.is_terminal)
