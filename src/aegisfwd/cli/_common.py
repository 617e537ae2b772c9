"""What the command modules share: input errors, opening topology files, and formatting helpers."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..compiled import MAGIC as COMPILED_MAGIC
from ..errors import TopologyError

if TYPE_CHECKING:  # pragma: no cover
    from rich.console import Console

    from ..compiled import CompiledTopology
    from ..topology import Topology

EXIT_INPUT_ERROR = 2
#: A path option or argument naming an existing file.
FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


class CliError(click.ClickException):
    """An input error: printed as ``Error: …`` on stderr, exit code 2 (like click's usage errors)."""

    exit_code = EXIT_INPUT_ERROR


def topology_error_text(exc: TopologyError) -> str:
    where = f" in {exc.source}" if exc.source else ""
    lines = [f"{len(exc.errors)} error(s){where}:"]
    lines += [f"  {issue}" for issue in exc.errors]
    return "\n".join(lines)


def is_compiled_file(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(len(COMPILED_MAGIC)) == COMPILED_MAGIC
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None


def load_topology(path: Path) -> Topology:
    from .._loader import load_topology

    return load_topology(path)


def load_compiled(path: Path) -> CompiledTopology:
    from ..compiled import load_compiled

    return load_compiled(path)


def open_engine(path: Path) -> Any:
    """An ``Engine`` on a topology file or a compiled file (recognised by its magic bytes)."""
    from ..engine import Engine

    source: Any = load_compiled(path) if is_compiled_file(path) else load_topology(path)
    return Engine(source)


def plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (plural or word + 's')}"


def topology_summary(topo: Topology) -> str:
    ips = [ip for pool in topo.pools for ip in pool.ips]
    v4 = sum(ip.family == 4 for ip in ips)
    not_up = int((topo.initial_states() != 0).sum())
    parts = [
        plural(len(topo.locations), "location"),
        plural(len(topo.data_centers), "data center"),
        plural(len(topo.server_ids), "server"),
        plural(len(topo.pools), "pool"),
        f"{plural(len(ips), 'IP')} ({v4:,} IPv4, {len(ips) - v4:,} IPv6)",
    ]
    if topo.zones:
        parts.append(plural(len(topo.zones), "zone"))
    if not_up:
        parts.append(f"{not_up:,} not up")
    return ", ".join(parts)


def id_summary(engine: Any) -> str:
    """Counts from the id tables of an engine or a compiled topology."""
    return ", ".join(
        [
            plural(len(engine.locations), "location"),
            plural(len(engine.dcs), "data center"),
            plural(len(engine.servers), "server"),
            plural(len(engine.pools), "pool"),
            plural(len(engine.ips), "IP"),
        ]
    )


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError  # pragma: no cover


def rate_text(per_second: float) -> str:
    if per_second >= 1e6:
        return f"{per_second / 1e6:.1f} M"
    if per_second >= 1e3:
        return f"{per_second / 1e3:.1f} k"
    return f"{per_second:.0f}"


def distance_unit(engine: Any) -> str:
    for owner in (engine, getattr(engine, "compiled", None), getattr(engine, "topology", None)):
        unit = getattr(owner, "distance_unit", None)
        if isinstance(unit, str):
            return unit
    return "km"


def parse_flow(text: str) -> int:
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
            return parse_flow(str(value))
        except click.BadParameter as exc:
            self.fail(exc.message, param, ctx)


def decision_dict(d: Any, unit: str) -> dict[str, Any]:
    return {
        "tier": d.tier.name,
        "server": d.server,
        "dc": d.dc,
        "location": d.location,
        "ip": d.ip,
        "distance": None if math.isnan(d.distance) else d.distance,
        "distance_unit": unit,
    }


def rich_console(**kwargs: Any) -> Console:
    from rich.console import Console

    return Console(**kwargs)


@contextlib.contextmanager
def status(console: Console, text: str) -> Iterator[None]:
    """A spinner while a step runs, on a terminal only (piped output stays clean)."""
    if console.is_terminal:
        with console.status(text):
            yield
    else:
        yield
