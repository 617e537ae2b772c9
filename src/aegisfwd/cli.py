"""The ``aegisfwd`` command line: validate, compile, decide, demo (and lazily loaded analysis commands).

Library errors (``TopologyError``, ``UnknownIdError``, ``CompiledFileError``, ``InvalidFamilyError``, …)
become one clean message on stderr and exit code 2, never a traceback. ``aegisfwd --help`` imports no
analysis module: ``evaluate``, ``compare`` and ``bench`` live in their own modules and are imported only
when run (click's documented "lazy group" pattern).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import __version__
from .errors import AegisError, TopologyError

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

    from .compiled import CompiledTopology
    from .topology import Topology

# Commands defined in other modules: name -> "module:attribute". Imported only when the command runs
# (or its own --help is asked for); the group's --help shows LAZY_HELP instead of importing them.
LAZY_COMMANDS: dict[str, str] = {
    "evaluate": "aegisfwd._cli_evaluate:evaluate",
    "compare": "aegisfwd._cli_evaluate:compare",
    "bench": "aegisfwd._cli_bench:bench",
    "serve": "aegisfwd.serve.command:serve",
}
LAZY_HELP: dict[str, str] = {
    "evaluate": "Evaluate request logs against a topology [analysis extra].",
    "compare": "Compare the same logs under two topologies [analysis extra].",
    "bench": "Benchmark every decision path against peers [bench extra].",
    "serve": "Explore what-ifs (states, placement) on a map in the browser [serve extra].",
}
# Which extra provides the third-party modules a lazy command needs.
_EXTRA_OF_MODULE = {
    "pyarrow": "analysis",
    "pandas": "analysis",
    "matplotlib": "analysis",
    "dask": "dask",
    "distributed": "dask",
    "duckdb": "bench",
    "pytest_benchmark": "bench",
    "aiohttp": "serve",
}
_LAZY_EXTRA = {"evaluate": "analysis", "compare": "analysis", "bench": "bench"}

COMPILED_MAGIC = b"AEGISFWD"
EXIT_INPUT_ERROR = 2


class CliError(click.ClickException):
    """An input error: printed as ``Error: …`` on stderr, exit code 2 (like click's usage errors)."""

    exit_code = EXIT_INPUT_ERROR


class LazyGroup(click.Group):
    """A group whose extra commands are imported on first use (click docs, "Lazily Loading Subcommands")."""

    def __init__(self, *args: Any, lazy_subcommands: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_subcommands = dict(lazy_subcommands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy_subcommands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy_subcommands and cmd_name not in self.commands:
            return self._lazy_load(cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # click's default imports every command to read its short help; use the static text instead.
        rows = []
        for name in self.list_commands(ctx):
            if name in self.lazy_subcommands and name not in self.commands:
                rows.append((name, LAZY_HELP.get(name, "")))
                continue
            cmd = self.commands.get(name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit=formatter.width - 6 - len(name))))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def _lazy_load(self, cmd_name: str) -> click.Command:
        module_name, attr = self.lazy_subcommands[cmd_name].split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            missing = exc.name or ""
            if missing == module_name or module_name.startswith(missing + "."):
                raise click.ClickException(
                    f"the '{cmd_name}' command is not part of this installation of aegisfwd "
                    f"(module {module_name} not found)"
                ) from None
            extra = _EXTRA_OF_MODULE.get(missing.split(".")[0], _LAZY_EXTRA.get(cmd_name, "analysis"))
            raise click.ClickException(
                f"the '{cmd_name}' command needs {missing or 'a module'} which is not installed: "
                f'pip install "aegisfwd[{extra}]"'
            ) from None
        except ImportError as exc:  # e.g. an installed dependency of an incompatible version
            raise click.ClickException(f"the '{cmd_name}' command could not be loaded: {exc}") from None
        command = getattr(module, attr, None)
        if not isinstance(command, click.Command):
            raise click.ClickException(f"{module_name}:{attr} is not a click command")
        return command

    def invoke(self, ctx: click.Context) -> Any:
        # Library input errors raised by any subcommand (lazy ones included) end here.
        try:
            return super().invoke(ctx)
        except TopologyError as exc:
            raise CliError(_topology_error_text(exc)) from None
        except AegisError as exc:
            raise CliError(str(exc)) from None


@click.group(
    cls=LazyGroup,
    lazy_subcommands=LAZY_COMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="aegisfwd")
def main() -> None:
    """Decide where connections to a customer's origin egress from (dedicated egress IPs, "Aegis").

    FILE arguments are topology files (.yaml/.yml, .json, .toml) or, where said, compiled topologies
    written by `aegisfwd compile`. Invalid input exits with code 2.
    """


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
def _topology_error_text(exc: TopologyError) -> str:
    where = f" in {exc.source}" if exc.source else ""
    lines = [f"{len(exc.errors)} error(s){where}:"]
    lines += [f"  {issue}" for issue in exc.errors]
    return "\n".join(lines)


def _is_compiled_file(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(len(COMPILED_MAGIC)) == COMPILED_MAGIC
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None


def _load_topology(path: Path) -> Topology:
    from .topology import load_topology

    return load_topology(path)


def _load_compiled(path: Path) -> CompiledTopology:
    from .compiled import load_compiled

    return load_compiled(path)


def _open_engine(path: Path) -> Any:
    """An ``Engine`` on a topology file or a compiled file (recognised by its magic bytes)."""
    from .engine import Engine

    source: Any = _load_compiled(path) if _is_compiled_file(path) else _load_topology(path)
    return Engine(source)


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (plural or word + 's')}"


def _topology_summary(topo: Topology) -> str:
    ips = [ip for pool in topo.pools for ip in pool.ips]
    v4 = sum(ip.family == 4 for ip in ips)
    not_up = int((topo.initial_states() != 0).sum())
    parts = [
        _plural(len(topo.locations), "location"),
        _plural(len(topo.data_centers), "data center"),
        _plural(len(topo.server_ids), "server"),
        _plural(len(topo.pools), "pool"),
        f"{_plural(len(ips), 'IP')} ({v4:,} IPv4, {len(ips) - v4:,} IPv6)",
    ]
    if topo.zones:
        parts.append(_plural(len(topo.zones), "zone"))
    if not_up:
        parts.append(f"{not_up:,} not up")
    return ", ".join(parts)


def _id_summary(engine: Any) -> str:
    """Counts from the id tables of an engine or a compiled topology."""
    return ", ".join(
        [
            _plural(len(engine.locations), "location"),
            _plural(len(engine.dcs), "data center"),
            _plural(len(engine.servers), "server"),
            _plural(len(engine.pools), "pool"),
            _plural(len(engine.ips), "IP"),
        ]
    )


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError  # pragma: no cover


def _rate(per_second: float) -> str:
    if per_second >= 1e6:
        return f"{per_second / 1e6:.1f} M"
    if per_second >= 1e3:
        return f"{per_second / 1e3:.1f} k"
    return f"{per_second:.0f}"


def _distance_unit(engine: Any) -> str:
    for owner in (engine, getattr(engine, "compiled", None), getattr(engine, "topology", None)):
        unit = getattr(owner, "distance_unit", None)
        if isinstance(unit, str):
            return unit
    return "km"


def _parse_flow(text: str) -> int:
    t = text.strip().replace("_", "")
    try:
        value = int(t, 0) if t.lower().startswith("0x") else int(t, 10)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a decimal or 0x-hex integer") from None
    if not 0 <= value < 1 << 64:
        raise click.BadParameter(f"{text} is outside [0, 2**64)")
    return value


class FlowKey(click.ParamType):
    name = "FLOW"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return _parse_flow(str(value))
        except click.BadParameter as exc:
            self.fail(exc.message, param, ctx)


def _decision_dict(d: Any, unit: str) -> dict[str, Any]:
    return {
        "tier": d.tier.name,
        "server": d.server,
        "dc": d.dc,
        "location": d.location,
        "ip": d.ip,
        "distance": None if math.isnan(d.distance) else d.distance,
        "distance_unit": unit,
    }


def _console(**kwargs: Any) -> Console:
    from rich.console import Console

    return Console(**kwargs)


@contextlib.contextmanager
def _status(console: Console, text: str) -> Iterator[None]:
    """A spinner while a step runs, on a terminal only (piped output stays clean)."""
    if console.is_terminal:
        with console.status(text):
            yield
    else:
        yield


# ---------------------------------------------------------------------------------------------
# validate / compile / decide
# ---------------------------------------------------------------------------------------------
_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@main.command(short_help="Check a topology file; list every error with its path.")
@click.argument("file", type=_FILE)
def validate(file: Path) -> None:
    """Check FILE against every rule of the topology format; list every error with its path.

    Exit code 0 and a one-line summary when FILE is valid, 2 when it is not. A compiled file is
    checked too (header, checksums, index ranges).
    """
    if _is_compiled_file(file):
        compiled = _load_compiled(file)  # checks header, checksums and every index range
        click.echo(f"{file}: valid compiled topology: {_id_summary(compiled)}")
        return
    try:
        topo = _load_topology(file)
    except TopologyError as exc:
        click.echo(f"{file}: invalid: {_plural(len(exc.errors), 'error')}")
        for issue in exc.errors:
            click.echo(f"  {issue}")
        click.get_current_context().exit(EXIT_INPUT_ERROR)
    click.echo(f"{file}: valid: {_topology_summary(topo)}")


@main.command(name="compile", short_help="Compile a topology into a binary table file.")
@click.argument("file", type=_FILE)
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
    if _is_compiled_file(file):
        raise CliError(f"{file} is already a compiled topology")
    t0 = time.perf_counter()
    topo = _load_topology(file)
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
    click.echo(f"{file}: {_topology_summary(topo)}")
    click.echo(
        f"tables: {_human_bytes(compiled.nbytes)} in {len(compiled.arrays)} arrays "
        f"({_plural(counts.get('lists', 0), 'candidate list')}, {_plural(counts.get('layouts', 0), 'layout')})"
    )
    click.echo(f"wrote {out}: {size:,} bytes ({_human_bytes(size)})")
    click.echo(f"load {t1 - t0:.2f} s, compile {t2 - t1:.2f} s, save {t3 - t2:.2f} s")


@main.command(short_help="Decide where one request egresses from.")
@click.option(
    "-t",
    "--topology",
    "file",
    required=True,
    type=_FILE,
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
    engine = _open_engine(file)
    fam = int(family)
    d = engine.decide(server, pool, fam, flow=flow)
    unit = _distance_unit(engine)
    if explain:
        click.echo(str(engine.explain(server, pool, fam, flow=flow)).rstrip("\n"))
        if not as_json:
            click.echo("")
    if as_json:
        click.echo(json.dumps(_decision_dict(d, unit)))
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


# ---------------------------------------------------------------------------------------------
# demo
# ---------------------------------------------------------------------------------------------
@main.command(short_help="Build the world, decide sample requests, show the tier mix.")
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

    from ._types import Tier
    from .datasets import requests as sample_requests
    from .datasets import world
    from .engine import Engine

    console = _console(highlight=False)

    with _status(console, f"Building the world topology (seed {seed})…"):
        t0 = time.perf_counter()
        topo = world(seed)
        t_world = time.perf_counter() - t0
    console.print(f"[bold]world[/]: {_topology_summary(topo)} [dim]({t_world:.2f} s)[/]", soft_wrap=True)

    with _status(console, "Compiling…"):
        t0 = time.perf_counter()
        compiled = topo.compile()
        t1 = time.perf_counter()
        engine = Engine(compiled)
        t2 = time.perf_counter()
    console.print(
        f"[bold]compiled[/] into {_human_bytes(compiled.nbytes)} of tables [dim]({t1 - t0:.2f} s; "
        f"{type(engine).__name__} ready in {t2 - t1:.2f} s)[/]",
        soft_wrap=True,
    )

    with _status(console, f"Drawing {n_requests:,} requests…"):
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
        f"[dim]({_rate(rate)} decisions/s)[/]",
        soft_wrap=True,
    )

    unit = _distance_unit(engine)
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
        from .evaluation.demo import run_demo
    except ImportError as exc:  # pyarrow & co. come with the analysis extra
        console.print(
            f"[yellow]skipping the log evaluation: {exc}. "
            'Install it with: pip install "aegisfwd[analysis]"[/]',
            soft_wrap=True,
        )
        return
    console.rule(f"[bold]Evaluating a {rows:,}-row Logpush log[/]")
    run_demo(out_dir, rows=rows, seed=seed, console=console, progress=console.is_terminal)


__all__ = ["LAZY_COMMANDS", "LazyGroup", "main"]
