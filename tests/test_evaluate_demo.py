"""The demo: a small Logpush-style log on the world topology, evaluated end to end."""

from __future__ import annotations

import gzip
import io
import json

from rich.console import Console

from aegisfwd.evaluation.demo import run_demo


def test_run_demo_small(tmp_path):
    buf = io.StringIO()
    ev = run_demo(tmp_path, rows=3000, seed=0, console=Console(file=buf, width=140), progress=False)
    s = ev.summary
    assert s.rows_in == 3001  # 3000 records and the truncated last line
    assert s.rows_in == s.rows_decided + s.rows_rejected
    assert s.rejects.get("malformed-json") == 1
    assert s.rows_decided > 2900
    assert (
        set(s.tiers) <= {"LOCAL", "SAME_DC", "SAME_LOCATION", "REMOTE", "UNAVAILABLE"} and "REMOTE" in s.tiers
    )
    assert s.timed_rows > 2500 and s.concurrency.peaks()
    out = buf.getvalue()
    assert "Tier mix" in out and "report:" in out
    for name in (
        "http_requests.ndjson.gz",
        "decisions.parquet",
        "rejects.parquet",
        "report/report.html",
        "report/summary.json",
    ):
        assert (tmp_path / name).exists(), name
    lines = gzip.decompress((tmp_path / "http_requests.ndjson.gz").read_bytes()).decode().splitlines()
    first = json.loads(lines[0])
    assert {
        "RayID",
        "EdgeColoCode",
        "ZoneName",
        "ClientIP",
        "ClientSrcPort",
        "OriginIP",
        "EdgeStartTimestamp",
    } <= set(first)
    # segments from other jobs: RFC 3339 timestamps (30-31 %) and OriginResponseTime (90-90.5 %)
    assert isinstance(json.loads(lines[905])["EdgeStartTimestamp"], str)
    assert "OriginResponseTime" in json.loads(lines[2705])
