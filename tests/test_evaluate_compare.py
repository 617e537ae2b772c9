"""af.compare on two placements with a known difference, and the evaluate / compare CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import aegisfwd as af
from aegisfwd.cli import main

LOGS = Path(__file__).parent / "fixtures" / "logs"
A = LOGS / "topology.yaml"
B = LOGS / "topology-b.yaml"  # the "remote" pool's IPv4 moved from AMS to LHR


def test_compare_known_difference():
    ta, tb = af.load_topology(A), af.load_topology(B)
    d = ta.distance_matrix()
    li = ta.location_index
    lhr_ams, jfk_ams, jfk_lhr = d[li["LHR"], li["AMS"]], d[li["JFK"], li["AMS"]], d[li["JFK"], li["LHR"]]
    c = af.compare(LOGS / "basic.csv", ta, tb, progress=False)
    x = c.diff
    assert x.rows_in == 10 and x.rows_both == 9 and x.rejected_a == 1 and x.rejected_b == 1
    # b02 LHR: REMOTE(AMS) -> LOCAL; b03 JFK: REMOTE(AMS) -> REMOTE(LHR); b04 AMS: LOCAL -> REMOTE(LHR)
    assert x.moved_location == 3
    assert x.moved_server == 3
    assert x.moved_ip == 0  # the address moved, not the pool: all three still leave from 192.0.2.2
    assert x.transitions[("REMOTE", "LOCAL")] == 1
    assert x.transitions[("REMOTE", "REMOTE")] == 1
    assert x.transitions[("LOCAL", "REMOTE")] == 1
    assert x.tier_change()["REMOTE"] == {"a": 2, "b": 2, "change": 0}
    assert x.changed_flows == {("LHR", "AMS", "LHR"): 1, ("JFK", "AMS", "LHR"): 1, ("AMS", "AMS", "LHR"): 1}
    assert x.changed_flow_distance[("JFK", "AMS", "LHR")] == pytest.approx(jfk_lhr - jfk_ams)
    assert x.distance_saved == pytest.approx(lhr_ams + (jfk_ams - jfk_lhr))
    assert x.distance_added == pytest.approx(lhr_ams)
    assert x.net_distance_change == pytest.approx(jfk_lhr - jfk_ams)
    assert x.rows_closer == 2 and x.rows_farther == 1
    assert x.became_unavailable == 0 and x.became_available == 0
    assert x.moved_by_pool == {"remote": 3}
    assert c.a.tiers["REMOTE"] == 2 and c.b.tiers["REMOTE"] == 2


def test_compare_identical_topologies_changes_nothing():
    c = af.compare(LOGS / "quirks.ndjson", A, A, progress=False)
    x = c.diff
    assert x.moved_location == x.moved_server == x.moved_ip == 0
    assert x.distance_added == x.distance_saved == 0
    assert all(a == b for a, b in x.transitions)
    assert c.a.counts_equal(c.b)


def test_compare_report(tmp_path):
    c = af.compare(LOGS / "basic.csv", A, B, progress=False)
    html = c.report(tmp_path / "rep")
    text = html.read_text()
    for section in ("compare-totals", "tier-change", "transitions", "changed-flows", "moved-pools"):
        assert f'id="{section}"' in text
    doc = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert doc["diff"]["moved_location"] == 3


def test_cli_evaluate(tmp_path):
    out, rej, rep = tmp_path / "d.parquet", tmp_path / "rej.csv", tmp_path / "report"
    r = CliRunner().invoke(
        main,
        [
            "evaluate",
            str(LOGS / "quirks.ndjson"),
            "--topology",
            str(A),
            "-o",
            str(out),
            "--rejects",
            str(rej),
            "--report",
            str(rep),
            "--no-progress",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "Tier mix" in r.output and "malformed-json" in r.output
    assert pq.read_table(out).num_rows == 11
    assert len(rej.read_text().splitlines()) == 1 + 9
    doc = json.loads((rep / "summary.json").read_text())
    assert doc["summary"]["rows_in"] == 20 and doc["summary"]["rejects"]["malformed-json"] == 2
    assert (rep / "report.html").exists()


def test_cli_evaluate_map(tmp_path):
    log = tmp_path / "renamed.csv"
    text = (LOGS / "basic.csv").read_text().replace("EdgeColoCode", "colo", 1).replace("ZoneName", "zone", 1)
    log.write_text(text)
    r = CliRunner().invoke(
        main,
        [
            "evaluate",
            str(log),
            "-t",
            str(A),
            "--map",
            "colo=EdgeColoCode",
            "--map",
            "zone=ZoneName",
            "--no-progress",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "missing-colo" not in r.output
    bad = CliRunner().invoke(main, ["evaluate", str(log), "-t", str(A), "--map", "EdgeColoCode=colo"])
    assert bad.exit_code == 2 and "did you mean colo=EdgeColoCode" in bad.output


def test_cli_compare(tmp_path):
    r = CliRunner().invoke(
        main,
        [
            "compare",
            str(LOGS / "basic.csv"),
            "-t",
            str(A),
            "-t",
            str(B),
            "--report",
            str(tmp_path / "rep"),
            "--no-progress",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "Flows that changed" in r.output
    assert json.loads((tmp_path / "rep" / "summary.json").read_text())["diff"]["moved_server"] == 3
    once = CliRunner().invoke(main, ["compare", str(LOGS / "basic.csv"), "-t", str(A)])
    assert once.exit_code == 2 and "exactly twice" in once.output


def test_cli_missing_log():
    r = CliRunner().invoke(main, ["evaluate", "/nonexistent/log.json", "-t", str(A)])
    assert r.exit_code == 2 and "no such log file" in r.output


def test_log_commands_freeze_startup_objects_only_while_they_run():
    import gc

    from aegisfwd.cli.evaluate import startup_objects_frozen

    assert gc.get_freeze_count() == 0
    with startup_objects_frozen():
        assert gc.get_freeze_count() > 1000  # the imported libraries at least
    assert gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError), startup_objects_frozen():
        raise RuntimeError("a failed run unfreezes too")
    assert gc.get_freeze_count() == 0
