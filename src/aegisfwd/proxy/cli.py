"""``aegisfwd proxy``: origin, edge, up, ctl, demo (a click group registered in the main CLI).

Runs as ``python -m aegisfwd.proxy.cli`` too (how ``proxy up`` starts its edge processes).
Input errors print one ``Error: ...`` line on stderr and exit with code 2.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ..errors import AegisError

EXIT_INPUT_ERROR = 2


class _InputError(click.ClickException):
    exit_code = EXIT_INPUT_ERROR


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AegisError as exc:
            raise _InputError(str(exc)) from None
        except ModuleNotFoundError as exc:
            if exc.name in ("prometheus_client", "uvloop", "yaml"):
                raise _InputError(f'the proxy needs {exc.name}: pip install "aegisfwd[proxy]"') from None
            raise


def _config(path: str) -> Any:
    from .config import load_proxy_config

    return load_proxy_config(path)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
def proxy() -> None:
    """A loopback edge proxy that egresses from dedicated IPs as the engine decides [proxy extra]."""


@proxy.command()
@click.option("--listen", "listen", multiple=True, required=True, help="ADDR:PORT to listen on (repeatable).")
@click.option(
    "--allow", "allow", multiple=True, required=True, help="CIDR admitted (repeatable): the firewall."
)
@click.option("--log", "log", default=None, help="JSON-lines log of every admitted and refused peer.")
def origin(listen: tuple[str, ...], allow: tuple[str, ...], log: str | None) -> None:
    """Run a test origin that admits only peers inside --allow and echoes."""
    import ipaddress

    from .config import parse_hostport
    from .origin import run_origin

    for a in listen:
        try:
            parse_hostport(a)
        except ValueError as exc:
            raise _InputError(f"--listen: {exc}") from None
    for c in allow:
        try:
            ipaddress.ip_network(c, strict=True)
        except ValueError as exc:
            raise _InputError(f"--allow: {exc}") from None
    run_origin(listen, allow, log)


@proxy.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--server", required=True, help="The edge server (topology id) this process serves as.")
@click.option("--worker", default=0, show_default=True, help="Worker number (several processes per server).")
@click.option("--control-socket", default=None, help="Supervisor's Unix socket (set by `proxy up`).")
@click.option("--journal", default=None, help="JSON-lines journal of every connection.")
@click.option("--shm-name", default=None, help="Shared engine segment to attach (set by `proxy up`).")
def edge(
    config: str,
    server: str,
    worker: int,
    control_socket: str | None,
    journal: str | None,
    shm_name: str | None,
) -> None:
    """Run one edge process for one server of CONFIG (standalone, or under `proxy up`)."""
    from ..compiled import load_compiled
    from .config import ProxyConfigError, check_config
    from .edge import run_edge_process
    from .supervisor import prepare_compiled

    cfg = _config(config)
    if server not in cfg.servers:
        raise ProxyConfigError(f"--server {server}: not a server of {config}")
    if cfg.compiled is not None:
        path = str(cfg.path(cfg.compiled))
        compiled = load_compiled(path)
    else:
        import tempfile

        path, compiled = prepare_compiled(
            cfg, __import__("pathlib").Path(tempfile.mkdtemp(prefix="aegisfwd-edge-"))
        )
    if control_socket is None:
        check_config(cfg, compiled)  # under `proxy up` the supervisor checked it once
    run_edge_process(cfg, path, server, worker, control=control_socket, journal=journal, shm_name=shm_name)


@proxy.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option(
    "--run-dir", default=None, help="Journals, logs, metrics (default: config's run_dir or a temp dir)."
)
@click.option("--control", default=None, help="Control endpoint ADDR:PORT (default: the config's).")
def up(config: str, run_dir: str | None, control: str | None) -> None:
    """Start every configured edge server's processes and the control endpoint; run until Ctrl-C."""
    from .supervisor import run_up

    run_up(_config(config), run_dir=run_dir, control=control)


@proxy.group(cls=_Group)
@click.option("--control", default="127.0.0.1:18900", show_default=True, help="Control endpoint ADDR:PORT.")
@click.pass_context
def ctl(ctx: click.Context, control: str) -> None:
    """Talk to a running `proxy up`: states, status, decision costs, metrics."""
    ctx.obj = control


@ctl.command("state")
@click.argument("target")
@click.argument("state", type=click.Choice(["up", "draining", "down"]))
@click.pass_obj
def ctl_state(control: str, target: str, state: str) -> None:
    """Set a server, DC or location TARGET to STATE on every process; print the apply time."""
    from .control import request

    click.echo(json.dumps(request(control, "POST", "/state", {"target": target, "state": state})))


@ctl.command("status")
@click.pass_obj
def ctl_status(control: str) -> None:
    """Processes, epoch and server states."""
    from .control import request

    click.echo(json.dumps(request(control, "GET", "/status"), indent=1))


@ctl.command("stats")
@click.option("--reset", is_flag=True, help="Clear the samples after reading them.")
@click.pass_obj
def ctl_stats(control: str, reset: bool) -> None:
    """Decision+bind cost percentiles of every process (exact, from its samples)."""
    from .control import request

    click.echo(json.dumps(request(control, "GET", "/stats" + ("?reset=1" if reset else "")), indent=1))


@ctl.command("metrics")
@click.pass_obj
def ctl_metrics(control: str) -> None:
    """The Prometheus exposition of all processes."""
    from .control import request

    sys.stdout.write(request(control, "GET", "/metrics"))


@proxy.command()
@click.option("--connections", default=2000, show_default=True, help="Client connections in the load.")
@click.option("--engine", type=click.Choice(["private", "shared"]), default="private", show_default=True)
@click.option("--run-dir", default=None, help="Keep the run here (default: a temp dir, removed).")
def demo(connections: int, engine: str, run_dir: str | None) -> None:
    """Two locations x two DCs x two servers, an origin, a load, one fault of each kind, a summary."""
    from .demo import run_demo

    if not 50 <= connections <= 100_000:
        raise _InputError("--connections must be in [50, 100000]")
    run_demo(connections=connections, engine=engine, run_dir=run_dir)


if __name__ == "__main__":
    proxy()
