"""``aegisfwd validate``, ``compile`` and ``decide``: the commands on one topology file."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import click

from ..errors import TopologyError
from ._common import (
    EXIT_INPUT_ERROR,
    FILE,
    CliError,
    FlowKey,
    decision_dict,
    distance_unit,
    human_bytes,
    id_summary,
    is_compiled_file,
    load_compiled,
    load_topology,
    open_engine,
    plural,
    topology_summary,
)

__all__ = ["compile_command", "decide", "validate"]


@click.command(short_help="Check a topology file; list every error with its path.")
@click.argument("file", type=FILE)
def validate(file: Path) -> None:
    """Check FILE against every rule of the topology format; list every error with its path.

    Exit code 0 and a one-line summary when FILE is valid, 2 when it is not. A compiled file is
    checked too (header, checksums, index ranges).
    """
    if is_compiled_file(file):
        compiled = load_compiled(file)  # checks header, checksums and every index range
        click.echo(f"{file}: valid compiled topology: {id_summary(compiled)}")
        return
    try:
        topo = load_topology(file)
    except TopologyError as exc:
        click.echo(f"{file}: invalid: {plural(len(exc.errors), 'error')}")
        for issue in exc.errors:
            click.echo(f"  {issue}")
        click.get_current_context().exit(EXIT_INPUT_ERROR)
    click.echo(f"{file}: valid: {topology_summary(topo)}")


@click.command(name="compile", short_help="Compile a topology into a binary table file.")
@click.argument("file", type=FILE)
@click.option(
    "-o",
    "--output",
    "out",
    required=True,
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Where to write the compiled topology.",
)
def compile_command(file: Path, out: Path) -> None:
    """Compile the topology FILE into a binary table file (-o) that `decide` and engines memory-map."""
    if is_compiled_file(file):
        raise CliError(f"{file} is already a compiled topology")
    t0 = time.perf_counter()
    topo = load_topology(file)
    t1 = time.perf_counter()
    compiled = topo.compile()
    t2 = time.perf_counter()
    try:
        compiled.save(out)
    except OSError as exc:
        raise CliError(f"cannot write {out}: {exc.strerror or exc}") from None
    t3 = time.perf_counter()
    size = out.stat().st_size
    counts = compiled.counts
    click.echo(f"{file}: {topology_summary(topo)}")
    click.echo(
        f"tables: {human_bytes(compiled.nbytes)} in {len(compiled.arrays)} arrays "
        f"({plural(counts.get('lists', 0), 'candidate list')}, {plural(counts.get('layouts', 0), 'layout')})"
    )
    click.echo(f"wrote {out}: {size:,} bytes ({human_bytes(size)})")
    click.echo(f"load {t1 - t0:.2f} s, compile {t2 - t1:.2f} s, save {t3 - t2:.2f} s")


@click.command(short_help="Decide where one request egresses from.")
@click.option(
    "-t",
    "--topology",
    "file",
    required=True,
    type=FILE,
    help="A topology file or a compiled file from `aegisfwd compile`.",
)
@click.option("-s", "--server", required=True, help="Ingress server id.")
@click.option("-p", "--pool", required=True, help="Aegis pool id.")
@click.option(
    "-f", "--family", required=True, type=click.Choice(["4", "6"]), help="Address family of the origin."
)
@click.option(
    "--flow",
    type=FlowKey(),
    default=0,
    show_default=True,
    help="64-bit flow key, decimal or 0x hex; it picks among equivalent candidates.",
)
@click.option("--explain", is_flag=True, help="Also print the trace of the rules tried.")
@click.option("--json", "as_json", is_flag=True, help="Print the decision as one JSON object.")
def decide(file: Path, server: str, pool: str, family: str, flow: int, explain: bool, as_json: bool) -> None:
    """Decide where one request egresses from: tier, egress server, DC, location, source IP, distance."""
    engine = open_engine(file)
    fam = int(family)
    d = engine.decide(server, pool, fam, flow=flow)
    unit = distance_unit(engine)
    if explain:
        click.echo(str(engine.explain(server, pool, fam, flow=flow)).rstrip("\n"))
        if not as_json:
            click.echo("")
    if as_json:
        click.echo(json.dumps(decision_dict(d, unit)))
        return
    dist = "-" if math.isnan(d.distance) else f"{d.distance:g} {unit}"
    rows = [
        ("tier", d.tier.name),
        ("server", d.server or "-"),
        ("dc", d.dc or "-"),
        ("location", d.location or "-"),
        ("ip", d.ip or "-"),
        ("distance", dist),
    ]
    for key, value in rows:
        click.echo(f"{key:<9} {value}")
