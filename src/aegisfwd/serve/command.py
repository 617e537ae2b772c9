"""``aegisfwd serve``: the what-if explorer in the browser (loaded lazily by the CLI)."""

from __future__ import annotations

import ipaddress
import sys
import time
from pathlib import Path
from typing import Any

import click

DEFAULT_PORT = 8737


class ServeError(click.ClickException):
    """An input or environment error: ``Error: ...`` on stderr, exit code 2 like the other commands."""

    exit_code = 2


DEFAULT_SAMPLE = 1_000_000


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_session(
    topology: str | None,
    logs: tuple[str, ...],
    *,
    sample: int,
    seed: int,
    columns: dict[str, str | None] | None = None,
    threads: int | None = 2,
) -> Any:
    """Load the topology (or the built-in world) and the rows (the logs, or a request sample)."""
    import aegisfwd as af

    from .rows import log_rows, sample_rows
    from .session import Session

    if topology is None:
        topo = af.datasets.world(seed=0)
    else:
        path = Path(topology)
        with open(path, "rb") as f:
            if f.read(8) == b"AEGISFWD":
                raise ServeError(
                    "serve needs the topology file (YAML/JSON/TOML), not a compiled file: "
                    "placement moves and the YAML download edit the topology itself"
                )
        topo = af.load_topology(path)
    engine = af.Engine(topo)
    if logs:
        rows = log_rows(list(logs), engine.compiled, columns=columns)
    else:
        rows = sample_rows(topo, engine.compiled, sample, seed=seed)
    return Session(topo, rows, threads=threads, engine=engine)


@click.command("serve")
@click.argument("logs", nargs=-1, type=click.Path(exists=True))
@click.option(
    "-t",
    "--topology",
    type=click.Path(exists=True, dir_okay=False),
    help="Topology file (YAML/JSON/TOML). Default: the built-in world topology.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="TCP port (0: any free port).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Anything but loopback exposes the explorer to the network.",
)
@click.option(
    "--sample",
    type=click.IntRange(1, 50_000_000),
    default=DEFAULT_SAMPLE,
    show_default=True,
    help="Without LOGS: this many rows of datasets.requests on the topology.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the request sample.")
@click.option(
    "--map", "maps", multiple=True, metavar="COL=FIELD", help="Log column mapping, as for evaluate."
)
@click.option(
    "--threads", type=click.IntRange(1, 256), default=2, show_default=True, help="Threads per re-evaluation."
)
def serve(
    logs: tuple[str, ...],
    topology: str | None,
    port: int,
    host: str,
    sample: int,
    seed: int,
    maps: tuple[str, ...],
    threads: int,
) -> None:
    """Explore what-ifs in the browser: states, placement moves, where traffic egresses.

    Loads LOGS (Parquet, CSV, NDJSON; read and mapped as `evaluate` does) or, without LOGS, a sample
    of requests, then serves one page and a JSON API (docs/serve.md) until interrupted.
    """
    from aiohttp import web

    from ..cli.evaluate import _parse_maps
    from .app import create_app

    columns = _parse_maps(maps) if maps else None
    if not is_loopback(host):
        click.echo(
            f"warning: listening on {host}: anyone who can reach this address can use the explorer "
            "(no authentication)",
            err=True,
        )
    t0 = time.perf_counter()
    session = build_session(topology, logs, sample=sample, seed=seed, columns=columns, threads=threads)
    app = create_app(
        session, title=f"aegisfwd explorer: {Path(topology).name if topology else 'built-in world'}"
    )
    rows = session.rows
    click.echo(
        f"loaded {len(rows):,} rows from {rows.source} in {time.perf_counter() - t0:.1f} s "
        f"({rows.nbytes / 1e6:.0f} MB of index columns)",
        err=True,
    )
    if rows.rejects:
        click.echo(
            "rows not kept: " + ", ".join(f"{k} {v:,}" for k, v in sorted(rows.rejects.items())), err=True
        )

    import asyncio

    async def main() -> None:
        runner = web.AppRunner(app, handle_signals=True)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        for h, p, *_ in runner.addresses:
            click.echo(f"serving on http://{f'[{h}]' if ':' in h else h}:{p}/ (Ctrl-C to stop)")
        sys.stdout.flush()
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
