"""``explain`` from a compiled file (the model rebuilt from the tables), and Topology equality."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import aegisfwd as af
from aegisfwd._decompile import topology_from_compiled
from aegisfwd.cli import main

ROOT = Path(__file__).resolve().parent.parent
TOPOLOGIES = [
    ROOT / "examples" / "topology.yaml",
    ROOT / "examples" / "edge-topology.yaml",
    ROOT / "tests" / "fixtures" / "topologies" / "spec-example.yaml",  # a distance matrix in ms
    ROOT / "tests" / "fixtures" / "logs" / "topology.yaml",  # an IP held by nobody
]


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.name)
def test_explain_from_a_compiled_file_equals_explain_from_the_topology(path: Path, tmp_path: Path) -> None:
    topo = af.load_topology(path)
    topo.compile().save(tmp_path / "t.aegis")
    loaded = af.Engine(af.load_compiled(tmp_path / "t.aegis"))
    assert loaded.topology is None
    direct = af.Engine(topo)
    for engine in (loaded, direct):
        engine.set_state(topo.server_ids[0], "down")  # live states are explained, not the file's
    for server in topo.server_ids:
        for pool in topo.pool_ids:
            for family in (4, 6):
                for flow in (0, 0x9E3779B97F4A7C15, 12345):
                    assert loaded.explain(server, pool, family, flow) == direct.explain(
                        server, pool, family, flow
                    )


def test_rebuilt_topology_decides_like_the_original() -> None:
    topo = af.load_topology(ROOT / "examples" / "edge-topology.yaml")
    rebuilt = topology_from_compiled(topo.compile())
    assert rebuilt.server_ids == topo.server_ids and rebuilt.pool_ids == topo.pool_ids
    req = af.datasets.requests(topo, 5_000, seed=3)
    a = af.ReferenceEngine(rebuilt).decide_batch(req.server, req.pool, req.family, req.flow)
    b = af.Engine(topo).decide_batch(req.server, req.pool, req.family, req.flow)
    for col in ("tier", "server", "dc", "location", "ip", "distance"):
        np.testing.assert_array_equal(getattr(a, col), getattr(b, col))  # NaN (UNAVAILABLE) equal to NaN


def test_cli_decide_explain_from_a_compiled_file(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "topo.aegis"
    assert (
        runner.invoke(main, ["compile", str(ROOT / "examples" / "topology.yaml"), "-o", str(out)]).exit_code
        == 0
    )
    result = runner.invoke(
        main,
        [
            "decide",
            "-t",
            str(out),
            "--server",
            "lhr01-s001",
            "--pool",
            "acme",
            "--family",
            "4",
            "--flow",
            "0x9e37",
            "--explain",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "3. SAME_LOCATION" in result.output and "tier      SAME_LOCATION" in result.output


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.name)
def test_topology_equals_itself_after_a_dict_round_trip(path: Path) -> None:
    topo = af.load_topology(path)
    assert af.Topology.from_dict(topo.to_dict()) == topo
    doc = topo.to_dict()
    doc["zones"] = {**doc.get("zones", {}), "other.example": topo.pool_ids[0]}
    assert af.Topology.from_dict(doc) != topo
