"""``aegisfwd datasets``: write the built-in datasets to files (loaded lazily by ``aegisfwd.cli``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from ..errors import AegisError

_TOPOLOGY_SUFFIXES = (".json", ".yaml", ".yml", ".aegis")


@click.group(short_help="Write the built-in datasets to files.")
def datasets() -> None:
    """Write the built-in datasets (see ``aegisfwd.datasets``) to files, to inspect, edit, compile,
    or evaluate logs against."""


@datasets.command(short_help="Write the built-in world topology.")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write it: .json or .yaml/.yml (a topology file), .aegis (compiled).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the world.")
def world(output: Path, seed: int) -> None:
    """Write ``af.datasets.world(SEED)``: one location per real Cloudflare colo with coordinates,
    about 60,000 servers, 20,000 pools and their zones. A topology file (.json, .yaml) loads back
    with ``af.load_topology`` and equals the built-in world; .aegis is the compiled tables."""
    suffix = output.suffix.lower()
    if suffix not in _TOPOLOGY_SUFFIXES:
        raise AegisError(
            f"{output}: unsupported suffix {output.suffix!r}; use one of {', '.join(_TOPOLOGY_SUFFIXES)}"
        )
    from ..datasets import world as build

    t0 = time.perf_counter()
    topo = build(seed)
    try:
        if suffix == ".aegis":
            topo.compile().save(output)
        elif suffix == ".json":
            output.write_text(json.dumps(topo.to_dict(), separators=(",", ":")) + "\n", encoding="utf-8")
        else:
            import yaml

            Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
            with output.open("w", encoding="utf-8") as f:
                yaml.dump(topo.to_dict(), f, Dumper=Dumper, sort_keys=False, default_flow_style=None)
    except OSError as exc:
        raise AegisError(f"cannot write {output}: {exc.strerror or exc}") from None
    size = output.stat().st_size
    click.echo(
        f"wrote {output}: world (seed {seed}): {len(topo.locations):,} locations, "
        f"{len(topo.server_ids):,} servers, {len(topo.pools):,} pools, {len(topo.zones):,} zones; "
        f"{size / 2**20:.1f} MiB in {time.perf_counter() - t0:.1f} s"
    )
