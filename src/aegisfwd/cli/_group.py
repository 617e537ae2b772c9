"""The ``aegisfwd`` command group: lazily loaded commands, and library errors as one-line input errors.

Library errors (``TopologyError``, ``UnknownIdError``, ``CompiledFileError``, ``InvalidFamilyError``, …)
become one clean message on stderr and exit code 2, never a traceback. ``aegisfwd --help`` imports no
analysis module: ``evaluate``, ``compare`` and ``bench`` are imported only when run (click's
documented "lazy group" pattern).
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from .._version import __version__
from ..errors import AegisError, TopologyError
from ._common import CliError, topology_error_text

__all__ = ["LAZY_COMMANDS", "LAZY_HELP", "LazyGroup", "main"]

# Commands defined in other modules: name -> "module:attribute". Imported only when the command runs
# (or its own --help is asked for); the group's --help shows LAZY_HELP instead of importing them.
LAZY_COMMANDS: dict[str, str] = {
    "evaluate": "aegisfwd.cli.evaluate:evaluate",
    "compare": "aegisfwd.cli.evaluate:compare",
    "bench": "aegisfwd.cli.bench:bench",
    "proxy": "aegisfwd.proxy.cli:proxy",
    "datasets": "aegisfwd.cli.datasets:datasets",
    "advise": "aegisfwd.advise._cli:advise",
    "serve": "aegisfwd.serve.command:serve",
}
LAZY_HELP: dict[str, str] = {
    "evaluate": "Evaluate request logs against a topology [analysis extra].",
    "compare": "Compare the same logs under two topologies [analysis extra].",
    "bench": "Benchmark every decision path against peers [bench extra].",
    "proxy": "A loopback edge proxy egressing from dedicated IPs [proxy extra].",
    "datasets": "Write the built-in datasets (the world topology) to files.",
    "advise": "Advise where IPv4 addresses should be held, from logs [advise extra].",
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
    "scipy": "advise",
    "aiohttp": "serve",
}
_LAZY_EXTRA = {"evaluate": "analysis", "compare": "analysis", "bench": "bench", "advise": "advise"}


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
            raise CliError(topology_error_text(exc)) from None
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
