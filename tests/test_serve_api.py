"""The explorer's HTTP API on a real server on loopback: answers, and 4xx (never 5xx) for bad input."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("aiohttp")

from serve_helpers import CLI, call, running, serve_cli, stop_serve_cli

import aegisfwd as af
from aegisfwd.serve import Session, log_rows

LOGS = Path(__file__).parent / "fixtures" / "logs"
TOPOLOGY = LOGS / "topology.yaml"
TIERS = ("LOCAL", "SAME_DC", "SAME_LOCATION", "REMOTE", "UNAVAILABLE")


@pytest.fixture(scope="module")
def server():
    topo = af.load_topology(TOPOLOGY)
    engine = af.Engine(topo)
    session = Session(topo, log_rows(LOGS / "basic.csv", engine.compiled), engine=engine, threads=1)
    with running(session) as base:
        yield base, session


def tiers_from_engine(session: Session, states: dict[str, str]) -> dict[str, int]:
    """What af.Engine answers for the loaded rows with ``states`` set (ingress as evaluate picks it)."""
    engine = af.Engine(af.load_topology(TOPOLOGY))
    for target, state in states.items():
        engine.set_state(target, state)
    rows = session.rows
    ingress = rows.ingress(engine.compiled.arrays["server_key"], engine.states)
    r = engine.decide_batch(ingress, rows.pool, rows.family, rows.flow)
    counts = np.bincount(r.tier, minlength=5)
    return {t: int(counts[i]) for i, t in enumerate(TIERS)}


def test_page_and_assets(server):
    base, _ = server
    status, text, headers = call(base, "GET", "/")
    assert status == 200 and '<svg id="map"' in text and headers["Content-Type"].startswith("text/html")
    # nothing is fetched from anywhere but the explorer itself
    for name in ("index.html", "app.js", "style.css"):
        status, body, _ = call(base, "GET", f"/static/{name}")
        assert status == 200 and "http://" not in body.replace('"http://www.w3.org/2000/svg"', "")
        assert "https://" not in body
    assert call(base, "GET", "/static/../app.py")[0] == 404
    status, land, _ = call(base, "GET", "/api/land")
    assert status == 200 and len(land["rings"]) > 100


def test_summary_state_change_and_reset(server):
    base, session = server
    call(base, "POST", "/api/reset")
    status, s, _ = call(base, "GET", "/api/summary")
    assert status == 200 and s["tiers"] == s["baseline_tiers"] == tiers_from_engine(session, {})
    assert s["scope"] == {"pool": None, "rows": len(session.rows)}

    status, s2, _ = call(base, "POST", "/api/states", {"states": {"AMS": "down"}})
    assert status == 200 and s2["version"] > s["version"]
    assert s2["tiers"] == tiers_from_engine(session, {"AMS": "down"}) != s2["baseline_tiers"]
    assert s2["changed"]["rows_changed_egress"] > 0 and s2["location_states"]["AMS"] == [0, 0, 2]
    assert s2["timings_ms"]["total"] > 0

    status, scoped, _ = call(base, "GET", "/api/summary?zone=remote.example")
    assert status == 200 and scoped["scope"]["pool"] == "remote"
    assert scoped == call(base, "GET", "/api/summary?pool=remote")[1] | {"timings_ms": scoped["timings_ms"]}

    status, loc, _ = call(base, "GET", "/api/location/AMS")
    assert status == 200 and loc["data_centers"][0]["servers"] == [["ams01-s1", "down"], ["ams01-s2", "down"]]

    status, s3, _ = call(base, "POST", "/api/reset")
    assert status == 200 and s3["tiers"] == s["tiers"] and s3["changed"]["rows_changed_egress"] == 0


def test_placement_and_downloads(server):
    base, _ = server
    call(base, "POST", "/api/reset")
    status, pool, _ = call(base, "GET", "/api/pool/remote")
    assert status == 200 and pool["ips"][0] == {
        "address": "192.0.2.2",
        "family": 4,
        "holders": ["AMS"],
        "locations": ["AMS"],
    }
    status, s, _ = call(
        base, "POST", "/api/placement?pool=remote", {"address": "192.0.2.2", "add": ["LHR", "JFK"]}
    )
    assert status == 200, s
    assert (
        s["moves"][0]["after"] == ["AMS", "LHR", "JFK"]
        and s["tiers"]["REMOTE"] < s["baseline_tiers"]["REMOTE"]
    )
    call(base, "POST", "/api/states", {"states": {"jfk01-s1": "draining"}})

    status, text, headers = call(base, "GET", "/api/topology.yaml")
    assert status == 200 and "attachment" in headers["Content-Disposition"]
    topo = af.Topology.from_dict(yaml.safe_load(text))  # valid: the loader accepts it
    assert topo.pools[topo.pool_index["remote"]].ips[0].holders == ("AMS", "LHR", "JFK")
    assert topo.server_states == {"jfk01-s1": "draining"}

    status, doc, headers = call(base, "GET", "/api/summary.json?pool=remote")
    assert status == 200 and "attachment" in headers["Content-Disposition"]
    assert doc["scope"]["pool"] == "remote" and doc["changed_states"] == {"jfk01-s1": "draining"}
    call(base, "POST", "/api/reset")


def test_pool_search_and_meta(server):
    base, session = server
    status, meta, _ = call(base, "GET", "/api/meta")
    assert status == 200 and [x["id"] for x in meta["locations"]] == ["LHR", "AMS", "JFK"]
    assert meta["rows"]["rows"] == len(session.rows) and meta["rows"]["bytes"] > 0
    status, res, _ = call(base, "GET", "/api/pools?q=dc.exa")
    assert status == 200 and res["pools"][0]["id"] == "dcpool" and res["pools"][0]["zone"] == "dc.example"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "fragment"),
    [
        ("POST", "/api/states", b"{not json", 400, "malformed JSON"),
        ("POST", "/api/states", b"[1, 2]", 400, "JSON object"),
        (
            "POST",
            "/api/states",
            b'{"states": {"NOPE": "down"}}',
            400,
            "unknown server, DC or location: 'NOPE'",
        ),
        ("POST", "/api/states", b'{"states": {"LHR": "off"}}', 400, "invalid state 'off'"),
        ("POST", "/api/states", b'{"states": "LHR"}', 400, "non-empty object"),
        ("POST", "/api/states", b'{"states": {"LHR": "down"}, "x": 1}', 400, "unknown field"),
        ("POST", "/api/states", b"\xff\xfe", 400, "malformed JSON"),
        ("POST", "/api/placement", b'{"address": "192.0.2.9", "add": ["LHR"]}', 400, "in no pool"),
        ("POST", "/api/placement", b'{"address": 7, "add": ["LHR"]}', 400, "non-empty string"),
        (
            "POST",
            "/api/placement",
            b'{"address": "192.0.2.2", "add": ["Mars"]}',
            400,
            "unknown holder 'Mars'",
        ),
        ("POST", "/api/placement", b'{"address": "192.0.2.2", "add": [1]}', 400, "not an id"),
        ("POST", "/api/placement", b'{"address": "192.0.2.2", "add": {"a": 1}}', 400, "must be a list"),
        ("GET", "/api/summary?pool=nope", None, 400, "unknown pool: 'nope'"),
        ("GET", "/api/summary?zone=nope.example", None, 400, "unknown zone"),
        ("GET", "/api/summary?pool=remote&zone=remote.example", None, 400, "not both"),
        ("GET", "/api/location/NOPE", None, 400, "unknown location"),
        ("GET", "/api/pool/NOPE", None, 400, "unknown pool"),
        ("GET", "/api/pools?limit=x", None, 400, "limit"),
        ("GET", "/api/nothing", None, 404, "Not Found"),
        ("DELETE", "/api/states", None, 405, "Method Not Allowed"),
        ("POST", "/api/states", b"[" * (2 << 20), 413, "body size"),
    ],
)
def test_bad_input_is_a_4xx_with_a_message(server, method, path, body, status, fragment):
    base, session = server
    v = session.version
    got, doc, _ = call(base, method, path, raw=body)
    assert got == status, doc
    assert isinstance(doc, dict) and fragment.lower() in doc["error"].lower(), doc
    assert session.version == v  # nothing changed
    assert call(base, "GET", "/api/summary")[0] == 200  # and the server still answers


def test_four_location_limit_is_a_400():
    locs = [{"id": f"L{i}", "lat": float(i), "lon": 0.0} for i in range(5)]
    dcs = [{"id": f"D{i}", "location": f"L{i}", "servers": [f"s{i}"]} for i in range(5)]
    topo = af.Topology.from_dict(
        {
            "locations": locs,
            "data_centers": dcs,
            "pools": [{"id": "p", "ips": [{"address": "192.0.2.1", "holders": ["L0", "L1", "L2", "L3"]}]}],
        }
    )
    engine = af.Engine(topo)
    from aegisfwd.serve import sample_rows

    session = Session(topo, sample_rows(topo, engine.compiled, 1000), engine=engine, threads=1)
    with running(session) as base:
        status, doc, _ = call(base, "POST", "/api/placement", {"address": "192.0.2.1", "add": ["L4"]})
        assert status == 400 and "at most 4 locations" in doc["error"]
        status, doc, _ = call(
            base, "POST", "/api/placement", {"address": "192.0.2.1", "add": ["L4"], "remove": ["L0"]}
        )
        assert status == 200 and doc["moves"][0]["locations"] == ["L1", "L2", "L3", "L4"]


# The console script's entry point, run with this interpreter (no reliance on PATH).
def test_cli_serves_the_built_in_world():
    t0 = time.monotonic()
    proc, base = serve_cli("--sample", "100000")
    started = time.monotonic() - t0
    try:
        status, s, _ = call(base, "GET", "/api/summary")
        assert status == 200 and s["scope"]["rows"] == 100_000
        status, s2, _ = call(base, "POST", "/api/states", {"states": {"FRA": "down"}})
        assert status == 200 and s2["changed"]["rows_changed_egress"] > 0
    finally:
        stop_serve_cli(proc)
    print(f"aegisfwd serve (built-in world, 100k rows) answered after {started:.1f} s")


def test_cli_with_a_log():
    proc, base = serve_cli("-t", str(TOPOLOGY), str(LOGS / "basic.csv"))
    try:
        status, s, _ = call(base, "GET", "/api/meta")
        assert status == 200 and s["rows"]["source"].endswith("basic.csv")
    finally:
        stop_serve_cli(proc)


def test_cli_input_errors(tmp_path):
    compiled = tmp_path / "t.aegis"
    af.load_topology(TOPOLOGY).compile().save(compiled)
    bad = tmp_path / "bad.yaml"
    bad.write_text("locations: 3\n")
    for args, fragment in (
        (["-t", str(compiled)], "not a compiled file"),
        (["-t", str(bad)], "error(s)"),
        (["--host", "127.0.0.1", "--port", "70000"], "70000"),
    ):
        r = subprocess.run(
            [*CLI, "serve", *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
            env={**os.environ, "COLUMNS": "200"},
        )
        assert r.returncode == 2, r.stderr
        assert fragment in r.stderr and "Traceback" not in r.stderr
