"""Predicted vs. actual egress: the log's EdgeServerIP against the predicted egress IP."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

import aegisfwd as af
from aegisfwd.cli import main
from aegisfwd.evaluation import Summary

TOPO = {
    "locations": [{"id": "A", "lat": 0.0, "lon": 0.0}, {"id": "B", "lat": 0.0, "lon": 20.0}],
    "data_centers": [
        {"id": "A1", "location": "A", "servers": ["a1"]},
        {"id": "B1", "location": "B", "servers": ["b1"]},
    ],
    "pools": [
        {
            "id": "p",
            "ips": [
                {"address": "192.0.2.1", "holders": ["A"]},
                {"address": "192.0.2.2", "holders": ["B"]},
                {"address": "2001:db8:a::/48", "holders": ["A", "B"]},
            ],
        },
        {"id": "q", "ips": [{"address": "198.51.100.1", "holders": ["A", "B"]}]},
    ],
    "zones": {"p.example": "p", "q.example": "q"},
}


def _log() -> pa.Table:
    # Rows at B for zone p (IPv4): predicted LOCAL at b1, egress 192.0.2.2.
    rows = [
        ("B", "p.example", "192.0.2.99", "192.0.2.2"),  # agree
        ("B", "p.example", "192.0.2.99", " 192.0.2.2 "),  # agree (whitespace)
        ("B", "p.example", "192.0.2.99", "192.0.2.1"),  # other-pool-ip
        ("B", "p.example", "192.0.2.99", "198.51.100.1"),  # not-pool-ip (another pool's)
        ("B", "p.example", "192.0.2.99", "203.0.113.9"),  # not-pool-ip
        ("B", "p.example", "192.0.2.99", "garbage"),  # not-pool-ip
        ("B", "p.example", "192.0.2.99", ""),  # no-origin-request
        ("B", "p.example", "192.0.2.99", None),  # no-origin-request
        ("A", "p.example", "2001:db8::1", "2001:db8:a::77"),  # IPv6: inside the predicted prefix: agree
        ("A", "p.example", "2001:db8::1", "2001:db8:b::1"),  # not-pool-ip
        ("A", "q.example", "192.0.2.99", "198.51.100.1"),  # agree
    ]
    cols = list(zip(*rows, strict=True))
    n = len(rows)
    return pa.table(
        {
            "EdgeColoCode": list(cols[0]),
            "ZoneName": list(cols[1]),
            "OriginIP": list(cols[2]),
            "EdgeServerIP": list(cols[3]),
            "ClientIP": [f"10.0.0.{i}" for i in range(n)],
            "ClientSrcPort": list(range(2000, 2000 + n)),
            "RayID": [f"ray{i}" for i in range(n)],
        }
    )


def test_outcomes_per_pool_and_tier(tmp_path) -> None:
    topo = af.Topology.from_dict(TOPO)
    ev = af.evaluate(_log(), topo, mismatches=tmp_path / "mm.parquet")
    check = ev.summary.egress_check
    assert check.totals() == {"agree": 4, "other-pool-ip": 1, "not-pool-ip": 4, "no-origin-request": 2}
    assert check.by_pool()["p"]["LOCAL"] == {
        "agree": 3,
        "other-pool-ip": 1,
        "not-pool-ip": 4,
        "no-origin-request": 2,
    }
    assert check.by_pool()["q"] == {
        "LOCAL": {"agree": 1, "other-pool-ip": 0, "not-pool-ip": 0, "no-origin-request": 0}
    }
    mm = pq.read_table(tmp_path / "mm.parquet").to_pylist()
    assert [(r["RayID"], r["outcome"], r["predicted_ip"]) for r in mm] == [
        ("ray2", "other-pool-ip", "192.0.2.2"),
        ("ray3", "not-pool-ip", "192.0.2.2"),
        ("ray4", "not-pool-ip", "192.0.2.2"),
        ("ray5", "not-pool-ip", "192.0.2.2"),
        ("ray9", "not-pool-ip", "2001:db8:a::/48"),
    ]
    assert mm[0]["row"] == 2 and mm[0]["EdgeServerIP"] == "192.0.2.1" and mm[0]["pool"] == "p"
    # summary.json and the report carry the table; parts merge exactly
    html = ev.report(tmp_path / "r")
    doc = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert doc["summary"]["egress_check"]["outcomes"]["not-pool-ip"] == 4
    assert 'id="egress-check"' in html.read_text()
    log = _log()
    parts = [af.evaluate(log.slice(0, 5), topo).summary, af.evaluate(log.slice(5), topo).summary]
    assert Summary.merge_all(parts).egress_check.counts == check.counts


def test_no_field_no_section(tmp_path) -> None:
    topo = af.Topology.from_dict(TOPO)
    ev = af.evaluate(_log().drop_columns(["EdgeServerIP"]), topo, mismatches=tmp_path / "mm.csv")
    assert ev.summary.egress_check.rows == 0
    assert 'id="egress-check"' not in ev.report(tmp_path / "r").read_text()
    assert (tmp_path / "mm.csv").exists()


@pytest.mark.parametrize("command", ["evaluate", "compare"])
def test_cli_mismatches(tmp_path, command: str) -> None:
    topo = tmp_path / "t.yaml"
    topo.write_text(yaml.safe_dump(TOPO))
    log = tmp_path / "log.parquet"
    pq.write_table(_log(), log)
    out = tmp_path / "mm.ndjson"
    args = [command, str(log), "-t", str(topo)] + (["-t", str(topo)] if command == "compare" else [])
    res = CliRunner().invoke(main, [*args, "--mismatches", str(out)])
    assert res.exit_code == 0, res.output
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 5 and {x["outcome"] for x in lines} == {"other-pool-ip", "not-pool-ip"}
    if command == "evaluate":
        assert "EdgeServerIP" in res.output
