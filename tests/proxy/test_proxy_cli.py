"""The proxy as a user runs it: `aegisfwd proxy ...` commands, curl through the edge, the control
endpoint and /metrics of a running `proxy up`, and clear one-line errors for bad config."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from aegisfwd.cli import main
from aegisfwd.proxy.metrics import parse_exposition, total
from aegisfwd.proxy.scenario import DEDICATED, demo_config, demo_topology, edge_address, free_block, stand_ins


def _write(tmp: Path, **over: Any) -> Path:
    block = free_block()
    (tmp / "topo.yaml").write_text(yaml.safe_dump(demo_topology()))
    cfg = demo_config(block, topology="topo.yaml")
    for k, v in over.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v(cfg, block) if callable(v) else v
    (tmp / "proxy.yaml").write_text(yaml.safe_dump(cfg))
    return tmp / "proxy.yaml"


@pytest.mark.parametrize(
    ("over", "message"),
    [
        (
            {"stand_ins": lambda c, b: {**c["stand_ins"], DEDICATED["shop"]: "192.0.2.77"}},
            "stand_ins.192.0.2.10: stand-in 192.0.2.77 cannot be bound here",
        ),
        (
            {"stand_ins": lambda c, b: {k: v for k, v in c["stand_ins"].items() if k != DEDICATED["api"]}},
            "dedicated IP 192.0.2.20 (pool api, zone api.example) has no stand-in",
        ),
        (
            {"stand_ins": lambda c, b: {**c["stand_ins"], DEDICATED["cdn"]: "127.0.0.1"}},
            "stand-in 127.0.0.1 is IPv4, the address IPv6",
        ),
        (
            {"stand_ins": lambda c, b: {**c["stand_ins"], "198.51.100.1": "127.0.0.1"}},
            "not a dedicated IP of the topology",
        ),
        (
            {"zones": lambda c, b: {**c["zones"], "nope.example": {"origin": "127.0.0.1:1"}}},
            "zones.nope.example: not a zone of the topology's zones map",
        ),
        (
            {
                "servers": lambda c, b: {
                    **c["servers"],
                    "ghost": {"listen": "127.0.0.1:1", "forward": "127.0.0.1:2"},
                }
            },
            "servers.ghost: not a server of the topology",
        ),
        ({"zones": lambda c, b: {"shop.example": {"origin": "shop:443"}}}, "is not an IP address"),
        ({"topology": None}, "give exactly one of 'compiled'"),
        ({"engine": "psychic"}, "engine"),
    ],
)
def test_bad_config_is_one_line_exit_2(tmp_path: Path, over: dict[str, Any], message: str) -> None:
    path = _write(tmp_path, **over)
    res = CliRunner().invoke(main, ["proxy", "edge", str(path), "--server", "l1d1s1"])
    assert res.exit_code == 2, res.output
    assert res.output.startswith("Error: ") and message in res.output, res.output
    assert "Traceback" not in res.output and res.output.count("\n") == 1


def test_ctl_without_a_running_proxy_is_a_clear_error() -> None:
    res = CliRunner().invoke(main, ["proxy", "ctl", "--control", "127.0.0.1:9", "status"])
    assert res.exit_code == 2 and "control endpoint 127.0.0.1:9 unreachable" in res.output


def test_curl_through_a_running_proxy_and_the_control_endpoint(deployment_factory: Any) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed (.ci/run installs it with apt-get)")
    dep = deployment_factory()
    block = dep.block
    host, port = edge_address(block, "l2d2s1")  # api.example: SAME_LOCATION to l2d1s1
    origin = dep.config["zones"]["api.example"]["origin"]
    # curl -p -x: tunnel through the proxy with CONNECT; the origin echoes our request back
    out = subprocess.run(
        [curl, "-s", "-p", "-x", f"http://{host}:{port}", "--max-time", "20", "http://api.example:443/hello"],
        check=False,
        capture_output=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(b"GET /hello HTTP/1.1\r\n")  # the origin answers with curl's request
    assert out.stdout.endswith(
        f"seen from {stand_ins(block)[DEDICATED['api']]}:".encode() + out.stdout.rsplit(b":", 1)[1]
    )
    refused = subprocess.run(
        [
            curl,
            "-s",
            "-p",
            "-x",
            f"http://{host}:{port}",
            "--max-time",
            "20",
            "-o",
            "/dev/null",
            "-w",
            "%{http_connect}",
            "http://nowhere.example:443/",
        ],
        check=False,
        capture_output=True,
        timeout=30,
    )
    assert refused.stdout == b"404"
    seen = [o for o in dep.origin_records() if o.get("accepted")]
    assert [o["peer"] for o in seen] == [stand_ins(block)[DEDICATED["api"]]] and origin.endswith(":19002")

    # the control verb, through the CLI, as a user would
    ctl = [sys.executable, "-m", "aegisfwd.proxy.cli", "ctl", "--control", dep.control]
    res = subprocess.run(
        [*ctl, "state", "l2d1s1", "down"], check=False, capture_output=True, text=True, timeout=30
    )
    assert res.returncode == 0, res.stderr
    change = json.loads(res.stdout)
    assert change["acknowledged"] == change["processes"] == 8 and change["applied_all_us"] > 0
    again = subprocess.run(
        [
            curl,
            "-s",
            "-p",
            "-x",
            f"http://{host}:{port}",
            "--max-time",
            "20",
            "-o",
            "/dev/null",
            "-w",
            "%{http_connect}",
            "http://api.example:443/",
        ],
        check=False,
        capture_output=True,
        timeout=30,
    )
    assert again.stdout == b"503"  # api's only holder is down: fail closed
    bad = subprocess.run(
        [*ctl, "state", "atlantis", "down"], check=False, capture_output=True, text=True, timeout=30
    )
    assert bad.returncode == 2 and bad.stderr.startswith("Error: ") and "atlantis" in bad.stderr
    samples = parse_exposition(dep.metrics())
    assert total(samples, "aegisfwd_proxy_refusals_total", reason="unknown-zone") == 1
    assert total(samples, "aegisfwd_proxy_refusals_total", reason="unavailable") == 1
    assert total(samples, "aegisfwd_proxy_connections_total", tier="SAME_LOCATION") == 1
    assert total(samples, "aegisfwd_proxy_state_epoch", server="l1d1s1") == 1
