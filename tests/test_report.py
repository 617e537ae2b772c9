"""Reports: summary.json and a self-contained report.html that a headless browser opens cleanly."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import aegisfwd as af

LOGS = Path(__file__).parent / "fixtures" / "logs"
SECTIONS = (
    "totals",
    "inputs",
    "rejects",
    "tier-mix",
    "tier-by-location",
    "tier-by-pool",
    "flows",
    "flow-map",
    "load-servers",
    "load-ips",
    "concurrency",
)
# Debian package "chromium" (apt-get install -y chromium) provides /usr/bin/chromium.
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("report")
    ev = af.evaluate(
        LOGS / "quirks.ndjson", LOGS / "topology.yaml", progress=False, rejects=d / "rejects.csv"
    )
    return ev.report(d, top=5)


def test_html_is_self_contained(report):
    text = report.read_text()
    for sid in SECTIONS:
        assert f'<section id="{sid}">' in text
    # nothing loaded from outside: every src is inline data, no scripts, no stylesheets by URL
    srcs = re.findall(r'src="([^"]*)"', text)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "<script" not in text and "<link" not in text and "http://" not in text and "https://" not in text
    for s in srcs:
        assert base64.b64decode(s.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"


def test_summary_json(report):
    doc = json.loads((report.parent / "summary.json").read_text())
    s = doc["summary"]
    assert s["rows_in"] == 20 and s["rows_decided"] + s["rows_rejected"] == 20
    assert s["rejects"]["malformed-json"] == 2
    assert s["tiers"] == {"LOCAL": 8, "SAME_DC": 0, "SAME_LOCATION": 1, "REMOTE": 1, "UNAVAILABLE": 1}
    assert s["concurrency"]["limit_per_egress_ip_per_origin"] == 40_000
    assert s["top_flows"][0]["ingress_location"] == "LHR" and s["top_flows"][0]["egress_location"] == "AMS"
    assert doc["meta"]["source"].endswith("quirks.ndjson")
    assert "rows_per_s" in doc["meta"] and "elapsed_s" in doc["meta"]  # the keys scripts read


def test_page_says_what_each_number_is(report):
    # The header table names the run's figures in words (summary.json keeps the keys), and the
    # flows table tells the per-row distance from the total over the flow's rows.
    text = report.read_text()
    assert "<td>rows per second</td>" in text and "<td>elapsed (s)</td>" in text
    assert "rows_per_s" not in text
    assert "distance per row (km)" in text and "added distance, all rows (km)" in text


def test_report_without_timing_or_coordinates(tmp_path):
    import pyarrow as pa

    topo = {
        "locations": [{"id": "A"}, {"id": "B"}],
        "data_centers": [
            {"id": "A1", "location": "A", "servers": ["a1"]},
            {"id": "B1", "location": "B", "servers": ["b1"]},
        ],
        "pools": [{"id": "p", "ips": [{"address": "192.0.2.1", "holders": ["B"]}]}],
        "zones": {"z.example": "p"},
        "distances": {"unit": "ms", "locations": ["A", "B"], "matrix": [[0, 12.5], [12.5, 0]]},
    }
    t = pa.table(
        {
            "EdgeColoCode": ["A", "B"],
            "ZoneName": ["z.example"] * 2,
            "OriginIP": ["203.0.113.1"] * 2,
            "RayID": ["x", "y"],
        }
    )
    ev = af.evaluate(t, af.Topology.from_dict(topo), progress=False)
    assert ev.summary.distance_unit == "ms" and ev.summary.distance_sum == 12.5
    text = ev.report(tmp_path).read_text()
    assert "no coordinates in the topology" in text
    assert "no usable start timestamps" in text
    assert "distance (ms)" in text


def test_terminal_tables(capsys):
    from rich.console import Console

    ev = af.evaluate(LOGS / "basic.csv", LOGS / "topology.yaml", progress=False)
    console = Console(width=160, record=True)
    ev.print(console)
    out = console.export_text()
    for title in (
        "Totals",
        "Rejected rows",
        "Tier mix",
        "Top forwarding flows",
        "Load per egress server",
        "Load per egress IP",
        "Peak concurrent connections",
    ):
        assert title in out
    assert "203.0.113.2:443" in out


@pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (Debian package 'chromium': apt-get install -y chromium)"
)
def test_report_opens_in_headless_chromium(report, tmp_path):
    proc = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--enable-logging=stderr",
            "--v=0",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            report.as_uri(),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    for sid in SECTIONS:
        assert f'id="{sid}"' in dom
    assert dom.count("<img") >= 7
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    assert console == [], console


def test_report_traces_rejects_and_files(report):
    text = report.read_text()
    # the per-file table, the rejects file's path, example rows per reason with their row number
    assert "quirks.ndjson" in text and "share rejected" in text
    assert str(report.parent / "rejects.csv") in text
    assert "malformed-json: 2 example rows" in text and "row 19" in text
    assert "OriginIP &quot;&quot; or null: the request never reached the origin" in text
    # one format per column: shares as percentages, counts as integers
    assert "10.0%" in text and "0.100" not in text


def test_tier_colours_are_colour_blind_safe():
    from aegisfwd.evaluation._report import TIER_COLORS

    okabe_ito = {"#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"}
    assert set(TIER_COLORS.values()) <= okabe_ito and len(set(TIER_COLORS.values())) == len(TIER_COLORS)


@pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (Debian package 'chromium': apt-get install -y chromium)"
)
def test_report_screenshot_renders(report, tmp_path):
    shot = tmp_path / "report.png"
    proc = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--hide-scrollbars",
            "--window-size=1250,4000",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            report.as_uri(),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and shot.exists(), proc.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size == (1250, 4000)
        # the page is drawn: many colours (maps, charts), not a blank or error page
        assert len(im.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 200


def test_whole_numbers_in_a_float_column_print_without_decimals():
    # Percentiles of row counts are floats; on a small log they fall on whole rows and read "5", not
    # "5.00"; a column with a fractional value keeps the decimals its magnitude needs.
    from aegisfwd.evaluation._report import _column_format

    assert [_column_format("rows", [2.0, 3.0, 5.0])(v) for v in (2.0, 5.0)] == ["2", "5"]
    assert _column_format("rows", [2.5, 3.0])(2.5) == "2.50"
    assert _column_format("rows", [2.5, 1500.0])(1500.0) == "1,500"


def test_an_in_memory_topology_is_named_by_what_it_holds(tmp_path):
    topo = af.load_topology(LOGS / "topology.yaml")
    ev = af.evaluate(LOGS / "basic.csv", af.Engine(topo), progress=False)
    assert ev.topology.startswith("Engine in memory: ") and " servers, " in ev.topology
    assert "Engine in memory" in ev.report(tmp_path).read_text()
    assert af.evaluate(LOGS / "basic.csv", LOGS / "topology.yaml", progress=False).topology.endswith(
        "topology.yaml"
    )
