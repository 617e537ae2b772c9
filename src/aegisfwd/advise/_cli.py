"""``aegisfwd advise`` (loaded lazily by ``aegisfwd.cli``)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..cli.evaluate import _check_logs, _map_option, _parse_maps, log_run_process
from ._objective import METRICS, WEIGHTS


@click.command(short_help="Advise where a pool's IPv4 addresses should be held.")
@click.argument("logs", nargs=-1, required=True, metavar="LOG...")
@click.option(
    "--topology",
    "-t",
    "topology",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Topology file (YAML/JSON/TOML; not a compiled file: the patch rewrites holder lists).",
)
@click.option("--zone", "zones", multiple=True, help="Advise the pool of this zone (repeatable).")
@click.option(
    "--pool", "pools", multiple=True, help="Advise this pool (repeatable). Default: every pool with IPv4."
)
@click.option(
    "--steps", "-k", type=click.IntRange(min=0), default=3, show_default=True, help="Moves per pool."
)
@click.option(
    "--objective",
    type=click.Choice(METRICS),
    default="mean",
    show_default=True,
    help="forwarded: share not LOCAL; mean / p95: added distance.",
)
@click.option(
    "--weight",
    type=click.Choice(WEIGHTS),
    default="requests",
    show_default=True,
    help="Weigh rows by requests or by distinct flows.",
)
@click.option(
    "--new-addresses",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="New addresses a pool may get.",
)
@click.option(
    "--address",
    "addresses",
    multiple=True,
    metavar="IPV4",
    help="Address to use for new-address moves (repeatable; default: documentation-range placeholders).",
)
@click.option(
    "--exact/--no-exact",
    default=None,
    help="Also solve the optimum with a MILP (default: when the scope is one pool).",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1, min_open=True),
    default=0.8,
    show_default=True,
    help="Concurrency advice above this share of the 40,000 limit.",
)
@click.option("--no-concurrency", is_flag=True, help="Skip the concurrency figures (keeps no connections).")
@click.option(
    "--patch",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the topology with the advised moves applied (.yaml/.yml/.json).",
)
@click.option(
    "--apply",
    "apply_top",
    type=click.IntRange(min=1),
    default=None,
    help="With --patch: apply only the first N ranked moves (and the steps they build on).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the advice as JSON.")
@_map_option
@click.option("--top", type=click.IntRange(min=1), default=20, show_default=True, help="Rows in the tables.")
def advise(
    logs: tuple[str, ...],
    topology: Path,
    zones: tuple[str, ...],
    pools: tuple[str, ...],
    steps: int,
    objective: str,
    weight: str,
    new_addresses: int,
    addresses: tuple[str, ...],
    exact: bool | None,
    threshold: float,
    no_concurrency: bool,
    patch: Path | None,
    apply_top: int | None,
    as_json: bool,
    maps: tuple[str, ...],
    top: int,
) -> None:
    """Rank placement moves for the IPv4 addresses of the pools in scope from request logs: add a
    location to an address, a new address, or a swap at the four-location limit; with the change of
    each tier's share, of the mean and p95 added distance, and the peak concurrency after each move.
    Also lists holders that served no traffic and addresses needed to stay under the connection limit."""
    from ._advise import advise as run

    columns = _parse_maps(maps)
    paths = _check_logs(logs)
    with log_run_process():
        a = run(
            paths,
            topology,
            pools=list(pools) or None,
            zones=list(zones) or None,
            steps=steps,
            objective=objective,
            weight=weight,
            new_addresses=new_addresses,
            addresses=list(addresses) or None,
            exact=exact,
            concurrency=not no_concurrency,
            threshold=threshold,
            columns=columns,
        )
    if as_json:
        click.echo(json.dumps(a.to_dict(), indent=1, default=str))
    else:
        from rich.console import Console

        a.print(Console(), top=top)
    if patch is not None:
        a.write_patch(patch, apply_top)
        click.echo(f"patched topology: {patch}", err=as_json)
