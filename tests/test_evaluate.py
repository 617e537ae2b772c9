"""af.evaluate on small hand-made logs with known answers, in every input format."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

import aegisfwd as af
from aegisfwd._ingress import choose_ingress_py
from aegisfwd.evaluation._arrow import flow_key_py
from aegisfwd.evaluation._summary import TIERS

LOGS = Path(__file__).parent / "fixtures" / "logs"
TOPOLOGY = LOGS / "topology.yaml"

# basic.csv: RayID -> tier (or reject reason)
BASIC_EXPECTED = {
    "b01": "LOCAL",
    "b02": "REMOTE",
    "b03": "REMOTE",
    "b04": "LOCAL",
    "b05": "LOCAL",
    "b06": "SAME_LOCATION",
    "b07": "UNAVAILABLE",
    "b08": "LOCAL",
    "b09": "LOCAL",
}
BASIC_REJECTS = {"missing-zone": 1}

# quirks.ndjson: RayID (or record number) -> tier, and the rejects per reason
QUIRKS_TIERS = {
    "r01": "LOCAL",
    "r02": "REMOTE",
    "r03": "LOCAL",  # IPv6 origin: the pool's /48 is everywhere
    "r04": "LOCAL",
    "r05": "LOCAL",
    "r06": "SAME_LOCATION",
    "r07": "UNAVAILABLE",
    "r15": "LOCAL",
    "r16": "LOCAL",
    "r17": "LOCAL",
    "r18": "LOCAL",
}
QUIRKS_REJECTS = {
    "no-origin-connection": 1,  # r08: OriginIP "" (Logpush: never reached the origin)
    "bad-origin-ip": 1,  # r09 garbage
    "missing-colo": 1,  # r10
    "unknown-colo": 1,  # r11
    "unknown-zone": 1,  # r12
    "missing-zone": 1,  # r13
    "missing-flow-key": 1,  # record 13: neither client address nor RayID
    "malformed-json": 2,  # a JSON array, and the truncated last line
}


@pytest.fixture(scope="module")
def topo() -> af.Topology:
    return af.load_topology(TOPOLOGY)


@pytest.fixture(scope="module")
def basic_table() -> pa.Table:
    return pcsv.read_csv(LOGS / "basic.csv", convert_options=pcsv.ConvertOptions(strings_can_be_null=True))


def _tiers_by_ray(table: pa.Table) -> dict[str, str]:
    d = table.select(["RayID", "tier"]).to_pydict()
    return {r: str(t) for r, t in zip(d["RayID"], d["tier"], strict=True)}


def _write_formats(table: pa.Table, d: Path) -> dict[str, Path]:
    out = {}
    out["parquet"] = d / "log.parquet"
    pq.write_table(table, out["parquet"])
    out["csv"] = d / "log.csv"
    pcsv.write_csv(table, out["csv"])
    out["csv.gz"] = d / "log.csv.gz"
    with open(out["csv"], "rb") as f, gzip.open(out["csv.gz"], "wb") as g:
        shutil.copyfileobj(f, g)
    lines = "".join(
        json.dumps({k: v for k, v in r.items() if v is not None}) + "\n" for r in table.to_pylist()
    )
    out["ndjson"] = d / "log.ndjson"
    out["ndjson"].write_text(lines)
    out["ndjson.gz"] = d / "log.json.gz"
    with gzip.open(out["ndjson.gz"], "wt") as g:
        g.write(lines)
    return out


@pytest.mark.parametrize("fmt", ["parquet", "csv", "csv.gz", "ndjson", "ndjson.gz", "arrow", "pandas"])
def test_basic_log_every_format(fmt, topo, basic_table, tmp_path):
    if fmt == "arrow":
        source = basic_table
    elif fmt == "pandas":
        source = basic_table.to_pandas()
    else:
        source = _write_formats(basic_table, tmp_path)[fmt]
    ev = af.evaluate(source, topo, progress=False)
    s = ev.summary
    assert s.rows_in == 10
    assert s.rows_in == s.rows_decided + s.rows_rejected
    assert s.rejects == BASIC_REJECTS
    assert _tiers_by_ray(ev.decisions) == BASIC_EXPECTED
    expected_mix = {t: list(BASIC_EXPECTED.values()).count(t) for t in TIERS if t in BASIC_EXPECTED.values()}
    assert s.tiers == expected_mix


def test_decisions_match_the_engine_row_by_row(topo, basic_table):
    """Each decided row equals engine.decide on the chosen ingress server with the documented flow key,
    and the ingress server is the rendezvous choice among the colo's up servers."""
    engine = af.ReferenceEngine(topo)
    ev = af.evaluate(basic_table, engine, progress=False)
    out = ev.decisions.to_pylist()
    rows = {r["RayID"]: r for r in basic_table.to_pylist()}
    c = topo.compile()
    keys = np.asarray(c.arrays["server_key"])
    states = engine.states
    for o in out:
        src = rows[o["RayID"]]
        flow = flow_key_py(src["ClientIP"], int(src["ClientSrcPort"]), src["RayID"])
        colo = src["EdgeColoCode"]
        if colo in c.location_index:
            loc = c.location_index[colo]
            first, end = c.arrays["location_server_start"][loc], c.arrays["location_server_start"][loc + 1]
        else:
            dc = c.dc_index[colo]
            first, end = c.arrays["dc_server_start"][dc], c.arrays["dc_server_start"][dc + 1]
        (ingress,) = choose_ingress_py([first], [end], [flow], keys, states)
        assert o["ingress_server"] == c.servers[ingress]
        family = 6 if ":" in src["OriginIP"] else 4
        d = engine.decide(c.servers[ingress], topo.zones[src["ZoneName"]], family, flow=flow)
        assert o["tier"] == d.tier.name
        assert o["egress_server"] == d.server
        assert o["egress_dc"] == d.dc
        assert o["egress_location"] == d.location
        assert o["egress_ip"] == d.ip
        assert (np.isnan(o["distance"]) and np.isnan(d.distance)) or o["distance"] == d.distance


def test_known_distances_and_flows(topo, basic_table):
    ev = af.evaluate(basic_table, topo, progress=False)
    dist = topo.distance_matrix()
    li = topo.location_index
    by_ray = {r["RayID"]: r for r in ev.decisions.to_pylist()}
    assert (
        by_ray["b02"]["egress_location"] == "AMS" and by_ray["b02"]["distance"] == dist[li["LHR"], li["AMS"]]
    )
    assert (
        by_ray["b03"]["egress_location"] == "AMS" and by_ray["b03"]["distance"] == dist[li["JFK"], li["AMS"]]
    )
    assert by_ray["b06"]["egress_server"] == "lhr02-s1" and by_ray["b06"]["distance"] == 0.0
    assert by_ray["b07"]["egress_server"] is None and np.isnan(by_ray["b07"]["distance"])
    assert by_ray["b02"]["egress_ip"] == "192.0.2.2"
    assert by_ray["b08"]["egress_ip"] == "2001:db8:4::/48"
    s = ev.summary
    assert s.flows[("LHR", "AMS")] == 1 and s.flows[("JFK", "AMS")] == 1
    assert s.flow_distance[("LHR", "AMS")] == pytest.approx(dist[li["LHR"], li["AMS"]])
    assert s.distance_sum == pytest.approx(dist[li["LHR"], li["AMS"]] + dist[li["JFK"], li["AMS"]])
    assert s.tiers_by_location["JFK"] == {"REMOTE": 1, "UNAVAILABLE": 1, "LOCAL": 1}
    assert s.tiers_by_pool["dcpool"] == {"LOCAL": 1, "SAME_LOCATION": 1}
    assert s.egress_ips["192.0.2.2"] == 3
    top = s.top_flows(5)
    assert {(f["ingress_location"], f["egress_location"]) for f in top} == {("LHR", "AMS"), ("JFK", "AMS")}


def test_concurrency_peak_known(topo, basic_table):
    """b02 [0, 100) ms, b03 [50, 150) ms, b04 [60, 160) ms all egress via 192.0.2.2 to 203.0.113.2:443."""
    ev = af.evaluate(basic_table, topo, progress=False)
    peaks = {(p["egress_ip"], p["origin"]): p for p in ev.summary.concurrency.peaks()}
    p = peaks[("192.0.2.2", "203.0.113.2:443")]
    assert p["peak"] == 3
    assert p["at"] == "2023-11-14T22:13:20.060000000Z"
    assert peaks[("192.0.2.1", "203.0.113.1:443")]["peak"] == 2  # b01 (LHR) and b09 (AMS) at the same time


def test_quirky_ndjson(topo, tmp_path):
    rejects = tmp_path / "rejects.csv"
    ev = af.evaluate(LOGS / "quirks.ndjson", topo, rejects=rejects, progress=False)
    s = ev.summary
    assert s.rows_in == 20
    assert s.rows_in == s.rows_decided + s.rows_rejected
    assert s.rejects == QUIRKS_REJECTS
    assert _tiers_by_ray(ev.decisions) == QUIRKS_TIERS
    rej = pcsv.read_csv(rejects).to_pylist()
    assert len(rej) == sum(QUIRKS_REJECTS.values())
    by_reason: dict[str, list[dict]] = {}
    for r in rej:
        by_reason.setdefault(r["reason"], []).append(r)
    assert {r["RayID"] for r in by_reason["bad-origin-ip"]} == {"r09"}
    assert {r["RayID"] for r in by_reason["no-origin-connection"]} == {"r08"}
    assert by_reason["unknown-colo"][0]["EdgeColoCode"] == "ZZZ"
    # record numbers count every non-blank line of the file, broken ones included
    assert sorted(r["row"] for r in by_reason["malformed-json"]) == [18, 19]
    assert by_reason["missing-flow-key"][0]["row"] == 13
    assert by_reason["unknown-zone"][0]["row"] == 11
    assert any("local.exa" in (r["raw"] or "") for r in by_reason["malformed-json"])


def test_quirky_ndjson_gzip_and_tiny_blocks(topo, tmp_path):
    """Same answers gzipped and read in blocks of a few lines (fast and slow parser paths mixed)."""
    from aegisfwd.evaluation import _read

    gz = tmp_path / "quirks.log.gz"
    gz.write_bytes(gzip.compress((LOGS / "quirks.ndjson").read_bytes()))
    src = _read.open_source(gz, ["RayID", "EdgeColoCode"], 4, ndjson_block_bytes=600)
    chunks = list(src.chunks)
    assert sum((c.batch.num_rows if c.batch is not None else 0) + len(c.malformed) for c in chunks) == 20
    ev = af.evaluate(gz, topo, progress=False, batch_rows=3)
    assert ev.summary.rejects == QUIRKS_REJECTS
    assert _tiers_by_ray(ev.decisions) == QUIRKS_TIERS


def test_timestamps_and_durations_of_quirks(topo):
    ev = af.evaluate(LOGS / "quirks.ndjson", topo, progress=False)
    s = ev.summary
    # timed and decided with an egress IP: r01-r06 and r15, r16 (OriginResponseTime ns), r18 (ms string)
    # (r07 is UNAVAILABLE; r17 has a null timestamp)
    assert s.timed_rows == 9
    assert s.time_min_ns == 1_700_000_000_000_000_000
    assert s.time_max_ns == 1_700_000_003_000_000_000


def test_directory_of_mixed_formats(topo, basic_table, tmp_path):
    d = tmp_path / "logs"
    d.mkdir()
    paths = _write_formats(basic_table, d)
    (d / "_SUCCESS").write_text("")  # marker files are skipped
    ev = af.evaluate(d, topo, progress=False)
    assert ev.summary.rows_in == 10 * len(paths)
    assert ev.summary.rejects == {"missing-zone": len(paths)}
    ev2 = af.evaluate([paths["parquet"], paths["ndjson"]], topo, progress=False)
    assert ev2.summary.rows_in == 20


def test_output_parquet_columns(topo, basic_table, tmp_path, monkeypatch):
    from aegisfwd.evaluation import _output

    monkeypatch.setattr(_output, "COMPACT_MIN_ENTRIES", 0)  # compact even this topology's few ids
    out = tmp_path / "decisions.parquet"
    ev = af.evaluate(basic_table, topo, output=out, progress=False, batch_rows=4)
    t = pq.read_table(out)
    assert t.column_names == [
        "RayID",
        "EdgeColoCode",
        "ZoneName",
        "OriginIP",
        "ingress_server",
        "tier",
        "egress_server",
        "egress_dc",
        "egress_location",
        "egress_ip",
        "distance",
        "source",
        "row",
        "start_time",
    ]
    assert t.num_rows == ev.summary.rows_decided == 9
    assert _tiers_by_ray(t) == BASIC_EXPECTED
    assert ev.decisions.num_rows == 9  # read back from the file
    ids = pa.dictionary(pa.int32(), pa.string())
    assert t.schema.field("RayID").type == pa.string()
    assert all(
        t.schema.field(c).type == ids
        for c in t.column_names
        if c not in ("RayID", "distance", "row", "start_time")
    )
    assert t.schema.field("row").type == pa.int64()
    assert t.schema.field("start_time").type == pa.timestamp("ns", tz="UTC")
    # Dictionaries hold only the ids the rows use (not every server / IP of the topology); RayIDs
    # are not dictionary-encoded; statistics only where they can prune (distance).
    for c in ("ingress_server", "egress_server", "egress_ip", "OriginIP"):
        for chunk in t.column(c).chunks:
            assert len(chunk.dictionary) <= len(chunk)
            assert sorted(set(chunk.indices.drop_null().to_pylist())) == list(range(len(chunk.dictionary)))
    meta = pq.ParquetFile(out).metadata.row_group(0)
    cols = {meta.column(i).path_in_schema: meta.column(i) for i in range(meta.num_columns)}
    assert "DELTA_LENGTH_BYTE_ARRAY" in cols["RayID"].encodings
    assert not cols["RayID"].has_dictionary_page and cols["egress_server"].has_dictionary_page
    assert cols["distance"].is_stats_set and not cols["egress_server"].is_stats_set
    assert {c.compression for c in cols.values()} == {"ZSTD"}


def test_column_mapping_and_explicit_server_and_pool(topo):
    t = pa.table(
        {
            "id": ["x1", "x2", "x3", "x4", "x5"],
            "srv": ["lhr01-s1", "lhr01-s2", "lhr01-s1", "nope", None],
            "p": ["pair", "pair", "pair", "pair", "pair"],
            "origin": ["203.0.113.5", "203.0.113.5", "2001:db8::1", "203.0.113.5", "203.0.113.5"],
        }
    )
    cols = {"RayID": "id", "ingress_server": "srv", "pool": "p", "OriginIP": "origin"}
    ev = af.evaluate(t, topo, columns=cols, progress=False)
    got = {r["RayID"]: (r["tier"], r["egress_server"]) for r in ev.decisions.to_pylist()}
    # the pair pool's IPv4 is on lhr01-s2 only; it has no IPv6
    assert got == {"x1": ("SAME_DC", "lhr01-s2"), "x2": ("LOCAL", "lhr01-s2"), "x3": ("UNAVAILABLE", None)}
    assert ev.summary.rejects == {"unknown-server": 1, "missing-server": 1}
    with pytest.raises(ValueError, match="unknown field"):
        af.evaluate(t, topo, columns={"Colo": "x"}, progress=False)


def test_colo_with_no_up_server_falls_back(topo, basic_table):
    """docs/decision.md: a down ingress server is still answered by the same rules; a colo whose servers are all
    down keeps its rows (ingress among all its servers), counted as fallback rows."""
    engine = af.ReferenceEngine(topo)
    engine.set_state("JFK", "down")
    ev = af.evaluate(basic_table, engine, progress=False)
    assert ev.summary.ingress_fallback_rows == 3
    got = _tiers_by_ray(ev.decisions)
    assert got["b08"] == "REMOTE"  # IPv6 everywhere, but JFK is down: nearest up location


def test_states_move_only_the_rows_on_the_down_server(topo):
    n = 400
    t = pa.table(
        {
            "RayID": [f"q{i}" for i in range(n)],
            "EdgeColoCode": ["LHR"] * n,
            "ZoneName": ["local.example"] * n,
            "OriginIP": ["203.0.113.1"] * n,
        }
    )
    engine = af.ReferenceEngine(topo)
    before = af.evaluate(t, engine, progress=False).decisions.column("ingress_server").to_pylist()
    assert set(before) == {"lhr01-s1", "lhr01-s2", "lhr02-s1"}
    engine.set_state("lhr01-s2", "down")
    after = af.evaluate(t, engine, progress=False).decisions.column("ingress_server").to_pylist()
    moved = [i for i in range(n) if before[i] != after[i]]
    assert moved and all(before[i] == "lhr01-s2" for i in moved)
    assert "lhr01-s2" not in after


def test_topology_as_path_and_compiled(topo, basic_table, tmp_path):
    a = af.evaluate(basic_table, TOPOLOGY, progress=False)
    b = af.evaluate(basic_table, topo, progress=False)
    assert a.summary.counts_equal(b.summary)


def test_keep_rows_bound_warns(topo, basic_table):
    with pytest.warns(RuntimeWarning, match="not kept"):
        ev = af.evaluate(basic_table, topo, progress=False, keep_rows=5, batch_rows=3)
    assert ev.summary.rows_decided == 9
    with pytest.raises(RuntimeError, match="output="):
        ev.decisions  # noqa: B018


def test_missing_columns_entirely(topo):
    t = pa.table({"EdgeColoCode": ["LHR", "AMS"], "ZoneName": ["local.example", "local.example"]})
    ev = af.evaluate(t, topo, progress=False)
    assert ev.summary.rejects == {"missing-origin-ip": 2}  # no OriginIP column at all
    assert ev.summary.rows_in == 2


def test_polars_and_duckdb_streams(topo, basic_table):
    duckdb = pytest.importorskip("duckdb")
    rel = duckdb.sql("select * from basic_table")
    ev = af.evaluate(rel, topo, progress=False)
    assert _tiers_by_ray(ev.decisions) == BASIC_EXPECTED
    reader = basic_table.to_reader(max_chunksize=3)
    ev2 = af.evaluate(reader, topo, progress=False)
    assert ev2.summary.counts_equal(ev.summary)


def test_corrupt_gzip_is_reported_not_raised(topo, tmp_path):
    lines = "".join(json.dumps(r) + "\n" for r in pcsv.read_csv(LOGS / "basic.csv").to_pylist()).encode()
    data = gzip.compress(lines * 50)
    p = tmp_path / "cut.json.gz"
    p.write_bytes(data[: len(data) // 2])
    ev = af.evaluate(p, topo, progress=False)
    assert ev.summary.input_errors and "cut.json.gz" in ev.summary.input_errors[0]
    assert ev.summary.rows_in == ev.summary.rows_decided + ev.summary.rows_rejected


def test_malformed_csv_rows_are_rejected(topo, tmp_path):
    text = (LOGS / "basic.csv").read_text()
    p = tmp_path / "bad.csv"
    p.write_text(text + "b11,LHR,local.example\n")  # too few columns (a cut last line)
    rej = tmp_path / "rej.parquet"
    ev = af.evaluate(p, topo, progress=False, rejects=rej)
    assert ev.summary.rejects == {"missing-zone": 1, "malformed-csv": 1}
    reasons = pq.read_table(rej).column("reason").to_pylist()
    assert sorted(reasons) == ["malformed-csv", "missing-zone"]


def test_ndjson_parser_paths_and_exact_values(topo, tmp_path):
    """Blocks with one type per field go through Arrow typed; a block where a field changes type is
    read with that field as text (numbers quoted first); a broken line sends its block line by line.
    Nanosecond timestamps stay exact on every path, and batches join blocks of different types."""
    from aegisfwd.evaluation import _read

    base = {
        "EdgeColoCode": "LHR",
        "ZoneName": "local.example",
        "OriginIP": "203.0.113.1",
        "ClientIP": "198.51.100.1",
    }
    ts = 1_700_000_000_123_456_789
    typed = "".join(
        json.dumps({**base, "RayID": f"a{i}", "ClientSrcPort": i, "EdgeStartTimestamp": ts + i}) + "\n"
        for i in range(50)
    )
    mixed = "".join(
        json.dumps(
            {
                **base,
                "RayID": f"b{i}",
                "ClientSrcPort": str(i) if i % 2 else i,
                "EdgeStartTimestamp": str(ts + i) if i % 3 else ts + i,
            }
        )
        + "\n"
        for i in range(50)
    )
    broken = (
        json.dumps({**base, "RayID": "c0", "ClientSrcPort": 1, "EdgeStartTimestamp": ts}) + '\n{"RayID": \n'
    )
    path = tmp_path / "paths.ndjson"
    path.write_text(typed + mixed + broken)
    names = ["RayID", "ClientSrcPort", "EdgeStartTimestamp"]
    parser = _read.NdjsonBlockParser(names)
    for block in (typed, mixed, broken):
        parser.parse(block.encode(), 0)
    assert parser.stats == {"typed": 1, "quoted": 1, "lines": 1}
    src = _read.open_source(path, names, 1000, ndjson_block_bytes=len(typed))
    chunks = list(src.chunks)
    batch = pa.concat_tables([pa.table(c.batch) for c in chunks if c.batch is not None])
    assert batch.num_rows == 101 and sum(len(c.malformed) for c in chunks) == 1
    from aegisfwd.evaluation._arrow import to_epoch_ns

    got, ok = to_epoch_ns(batch.column("EdgeStartTimestamp").combine_chunks(), batch.num_rows)
    assert ok.all()
    assert got.tolist() == [ts + i for i in range(50)] * 2 + [ts]
    ev = af.evaluate(path, topo, progress=False)
    assert ev.summary.rows_decided == 101 and ev.summary.rejects == {"malformed-json": 1}


def test_batch_iterators_for_spark(topo, basic_table):
    """evaluate_batches: one row per input row (rejects marked); summarize_batches: a pickled Summary
    per partition that merges to the whole log's summary (the Spark mapInArrow recipe)."""
    import pickle

    from aegisfwd.evaluation import EVALUATE_BATCHES_SCHEMA, Summary, evaluate_batches, summarize_batches

    out = pa.Table.from_batches(list(evaluate_batches(basic_table.to_batches(max_chunksize=4), topo)))
    assert out.schema == EVALUATE_BATCHES_SCHEMA
    assert out.num_rows == 10
    rows = {r["RayID"]: r for r in out.to_pylist()}
    assert {k: rows[k]["tier"] for k in BASIC_EXPECTED} == BASIC_EXPECTED
    assert rows["b10"]["reject_reason"] == "missing-zone" and rows["b10"]["tier"] is None
    assert rows["b02"]["egress_location"] == "AMS" and rows["b02"]["reject_reason"] is None
    parts = [basic_table.slice(0, 4), basic_table.slice(4)]
    sums = [
        pickle.loads(b.column("summary")[0].as_py())
        for p in parts
        for b in summarize_batches(p.to_batches(), topo)
    ]
    whole = af.evaluate(basic_table, topo, progress=False).summary
    assert Summary.merge_all(sums).counts_equal(whole)


def test_parquet_dictionary_columns_give_the_same_answers(tmp_path):
    """Parquet text columns are read as dictionaries (colo, zone, origin, server): every answer and
    count equals the evaluation of the same rows handed over as plain strings, also when the
    dictionaries change between row groups (small row groups, batches spanning several)."""
    import importlib

    from aegisfwd.evaluation.demo import make_table

    world = importlib.import_module("aegisfwd.datasets").world(0)
    engine = af.Engine(world)
    table = make_table(30_000, 3, topology=world, server_column=True)
    path = tmp_path / "log.parquet"
    pq.write_table(table, path, row_group_size=7_000)
    for columns in (None, {"ingress_server": "EdgeServer"}):
        a = af.evaluate(path, engine, columns=columns, progress=False, batch_rows=5_000)
        b = af.evaluate(table, engine, columns=columns, progress=False, batch_rows=5_000)
        assert a.summary.counts_equal(b.summary)
        assert a.summary.concurrency.peaks() == b.summary.concurrency.peaks()
        da, db = a.decisions, b.decisions
        assert da.num_rows == db.num_rows == 30_000
        assert da.column_names == db.column_names
        for c in da.column_names:
            if c == "source":  # the file's path / "<arrow>"
                continue
            if c == "distance":
                np.testing.assert_array_equal(da.column(c).to_numpy(), db.column(c).to_numpy())
            else:
                assert (
                    da.column(c).cast(pa.string()).to_pylist() == db.column(c).cast(pa.string()).to_pylist()
                ), c


def test_concurrency_equals_plain_python_over_many_batches(tmp_path):
    """Peaks per (egress IP, origin, port) from the streamed evaluation (run-wide origin ids, the
    compiled pair index, batches with changing dictionaries) equal a plain-Python count of the
    documented events over the decided rows."""
    import importlib
    from collections import defaultdict

    from aegisfwd.evaluation._summary import iso_ns
    from aegisfwd.evaluation.demo import make_table

    world = importlib.import_module("aegisfwd.datasets").world(0)
    table = make_table(20_000, 5, topology=world)
    # A narrow time window so that connections overlap.
    start = table.column("EdgeStartTimestamp").to_numpy()
    table = table.set_column(
        table.schema.get_field_index("EdgeStartTimestamp"),
        "EdgeStartTimestamp",
        pa.array(start[0] + (start - start[0]) // 5000),
    )
    path = tmp_path / "log.parquet"
    pq.write_table(table, path, row_group_size=6_000)
    ev = af.evaluate(path, af.Engine(world), progress=False, batch_rows=2_500)
    dec = ev.decisions.to_pydict()
    src = {r["RayID"]: r for r in table.to_pylist()}
    events: dict[tuple[str, str, int], dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for ray, ip in zip(dec["RayID"], dec["egress_ip"], strict=True):
        if ip is None:
            continue
        r = src[ray]
        t, d = r["EdgeStartTimestamp"], r["OriginResponseDurationMs"] * 10**6
        first = t // 10**6
        last = max(-((-(t + d)) // 10**6), first + 1)
        ev_key = events[(ip, r["OriginIP"].strip(), 443)]
        ev_key[first] += 1
        ev_key[last] -= 1
    want = {}
    for key, ev_key in events.items():
        level, best, at = 0, None, None
        for b in sorted(ev_key):
            level += ev_key[b]
            if best is None or level > best:
                best, at = level, b
        want[key] = (best, at)
    got = {}
    for p in ev.summary.concurrency.peaks():
        ip, origin = p["egress_ip"], p["origin"]
        host, port = origin[1:].rsplit("]:", 1) if origin.startswith("[") else origin.rsplit(":", 1)
        got[(ip, host, int(port))] = (p["peak"], p["at"])
    assert got == {k: (v[0], iso_ns(v[1] * 10**6)) for k, v in want.items()}
    assert max(v[0] for v in got.values()) > 1
    peaks = [p["peak"] for p in ev.summary.concurrency.peaks()]
    assert peaks == sorted(peaks, reverse=True)


def test_pipelined_run_equals_synchronous_and_reraises(tmp_path, monkeypatch):
    """af.evaluate decides on the calling thread and summarises/writes on background threads: the
    result equals a synchronous run batch for batch, and a failure in a background stage surfaces
    in the caller (and leaves no stage thread behind)."""
    import importlib
    import threading

    from aegisfwd.evaluation import _run
    from aegisfwd.evaluation._prepare import resolve_columns
    from aegisfwd.evaluation._read import open_source
    from aegisfwd.evaluation.demo import make_table

    world = importlib.import_module("aegisfwd.datasets").world(0)
    engine = af.Engine(world)
    table = make_table(12_000, 9, topology=world)
    path = tmp_path / "log.parquet"
    pq.write_table(table, path)
    out = tmp_path / "decisions.parquet"
    ev = af.evaluate(path, engine, output=out, progress=False, batch_rows=1_000)

    model = _run.model_for(engine)
    cols = resolve_columns(None)
    sync = _run.Runner(model, cols, output=tmp_path / "sync.parquet")
    for chunk in open_source(path, [c for c in cols.values() if c], 1_000).chunks:
        sync.process(chunk)
    summary = sync.finish()
    assert ev.summary.counts_equal(summary)

    a, b = pq.read_table(out), pq.read_table(tmp_path / "sync.parquet")
    assert a.column_names == b.column_names and a.num_rows == b.num_rows == summary.rows_decided
    for c in a.column_names:
        if c == "distance":
            np.testing.assert_array_equal(a.column(c).to_numpy(), b.column(c).to_numpy())
        else:
            assert a.column(c).cast(pa.string()).equals(b.column(c).cast(pa.string())), c

    calls = {"n": 0}
    consume = _run.Runner.consume

    def failing(self, *args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full (simulated)")
        return consume(self, *args)

    monkeypatch.setattr(_run.Runner, "consume", failing)
    with pytest.raises(OSError, match="disk full"):
        af.evaluate(path, engine, output=tmp_path / "fail.parquet", progress=False, batch_rows=1_000)
    assert not [t for t in threading.enumerate() if t.name.startswith("aegisfwd-summary")]
