"""Real-world log inputs: JSON that is not one object per line, files whose names lie, files that are
not logs at all, reasons that say what happened, and decisions that can be traced to their source."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import aegisfwd as af
from aegisfwd.cli import main

LOGS = Path(__file__).parent / "fixtures" / "logs"
TOPOLOGY = LOGS / "topology.yaml"


def _record(i: int, **over: object) -> dict[str, object]:
    rec: dict[str, object] = {
        "RayID": f"ray{i:04d}",
        "EdgeColoCode": ["LHR", "AMS", "JFK"][i % 3],
        "ZoneName": "local.example",
        "OriginIP": "203.0.113.1",
        "ClientIP": f"198.51.100.{i % 250}",
        "ClientSrcPort": 40000 + i,
        "EdgeStartTimestamp": 1_700_000_000_000_000_000 + i * 1_000_000,
        "OriginResponseDurationMs": 50,
        "RequestHeaders": {"x": "y", "nested": {"deep": [1, 2]}},
    }
    rec.update(over)
    return rec


RECORDS = [_record(i) for i in range(40)]


def _eval(path: Path, **kw: object) -> af.Evaluation:
    return af.evaluate(path, TOPOLOGY, progress=False, **kw)  # type: ignore[arg-type]


# ---- 1. JSON that is not one object per line --------------------------------------------------
@pytest.mark.parametrize(
    "layout", ["array-pretty", "array-compact", "objects-pretty", "objects-concatenated", "array-gzip"]
)
def test_json_layouts_read_as_records(tmp_path: Path, layout: str) -> None:
    if layout == "array-pretty":
        text = json.dumps(RECORDS, indent=2)
    elif layout in ("array-compact", "array-gzip"):
        text = json.dumps(RECORDS)
    elif layout == "objects-pretty":
        text = "\n".join(json.dumps(r, indent=4) for r in RECORDS)
    else:
        text = "".join(json.dumps(r) for r in RECORDS)
    path = tmp_path / "log.json"
    if layout == "array-gzip":
        path = tmp_path / "log.json.gz"
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    ev = _eval(path)
    s = ev.summary
    assert s.rows_in == 40 and s.rows_decided == 40 and s.rejects == {}
    # the same answers as the NDJSON form of the same records
    nd = tmp_path / "same.ndjson"
    nd.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    assert _eval(nd).summary.counts_equal(s)


@pytest.mark.parametrize("indent", [None, 2])
def test_a_broken_record_is_one_reject_whatever_its_neighbours(tmp_path: Path, indent: int | None) -> None:
    parts = [json.dumps(r, indent=indent) for r in RECORDS[:10]]
    broken = parts[4][: len(parts[4]) // 2]  # cut in the middle: one record, many lines when pretty
    parts[4] = broken.replace('"', "'", 1)
    path = tmp_path / "log.json"
    path.write_text("[" + ",\n".join(parts) + "]")
    s = _eval(path, rejects=tmp_path / "rej.csv").summary
    assert s.rows_in == 10 and s.rejects == {"malformed-json": 1} and s.rows_decided == 9
    ex = s.reject_examples["malformed-json"]
    assert len(ex) == 1 and "row 4" in ex[0]


def test_json_reading_keeps_memory_bounded_in_records(tmp_path: Path) -> None:
    # 2,000 pretty records in batches of 256: every batch at most 256 rows, record numbers in order
    path = tmp_path / "big.json"
    path.write_text(json.dumps([_record(i) for i in range(2000)], indent=1))
    ev = _eval(path, batch_rows=256)
    assert ev.summary.rows_decided == 2000
    rows = ev.decisions.column("row").to_numpy()
    assert (rows == np.arange(2000)).all()


# ---- 2. names that lie, and files that are not logs -------------------------------------------
def test_gzip_without_gz_and_csv_named_parquet_are_read_by_content(tmp_path: Path) -> None:
    plain = tmp_path / "log.ndjson"
    plain.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    hidden = tmp_path / "log.ndjson"  # gzip bytes behind a plain name
    hidden.write_bytes(gzip.compress(plain.read_bytes()))
    ev = _eval(hidden)
    assert ev.summary.rows_decided == 40
    assert any("gzip-compressed" in n and "log.ndjson" in n for n in ev.summary.notes)
    csv_parquet = tmp_path / "log.parquet"
    shutil.copy(LOGS / "basic.csv", csv_parquet)
    ev2 = _eval(csv_parquet)
    base = _eval(LOGS / "basic.csv")
    assert ev2.summary.counts_equal(base.summary)
    assert any("CSV text although named 'log.parquet'" in n for n in ev2.summary.notes)


def _write(name: str, data: bytes) -> object:
    def make(d: Path) -> Path:
        (d / name).write_bytes(data)
        return d / name

    return make


def _empty_dir(d: Path) -> Path:
    (d / "e").mkdir()
    return d / "e"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_write("empty.ndjson", b""), "empty file"),
        (_write("blob.json", bytes(range(256)) * 4), "binary content"),
        (_write("x.csv", b"LHR,local.example,203.0.113.1\n"), "not a CSV header"),
        (_empty_dir, "directory holds no log file"),
        (_write("ws.json", b"\n\n  \n"), "only whitespace"),
        (_write("t.json.gz", b"\x1f\x8b\x08\x00garbage"), "cannot decompress"),
    ],
)
def test_files_that_are_not_logs_are_one_clear_error(tmp_path: Path, make: object, message: str) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(af.LogInputError, match=message) as info:
        _eval(path)
    assert str(path) in str(info.value)
    result = CliRunner().invoke(main, ["evaluate", str(path), "-t", str(TOPOLOGY)])
    assert result.exit_code == 2
    assert "Traceback" not in (result.stderr + result.stdout) and message in result.stderr


def test_every_bad_file_of_a_run_is_named_at_once(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_bytes(b"")
    (tmp_path / "b.json").write_bytes(b"\x00\x01\x02")
    shutil.copy(LOGS / "basic.csv", tmp_path / "c.csv")
    with pytest.raises(af.LogInputError, match="2 of 3 log files") as info:
        _eval(tmp_path)
    assert "a.csv" in str(info.value) and "b.json" in str(info.value)


def test_no_decided_row_exits_2_with_the_top_reasons(tmp_path: Path) -> None:
    path = tmp_path / "log.ndjson"
    path.write_text("".join(json.dumps(_record(i, ZoneName="nowhere.example")) + "\n" for i in range(5)))
    result = CliRunner().invoke(main, ["evaluate", str(path), "-t", str(TOPOLOGY)])
    assert result.exit_code == 2
    assert "none of the 5 rows" in result.stderr and "unknown-zone 5" in result.stderr


# ---- 3. reasons that say what happened --------------------------------------------------------
def test_empty_origin_is_no_origin_connection(tmp_path: Path) -> None:
    path = tmp_path / "log.ndjson"
    recs = [_record(0, OriginIP=""), _record(1, OriginIP=None), _record(2, OriginIP="garbage"), _record(3)]
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    s = _eval(path).summary
    assert s.rejects == {"no-origin-connection": 2, "bad-origin-ip": 1}


def test_zone_id_without_zone_name_says_how_to_map_it(tmp_path: Path) -> None:
    path = tmp_path / "log.ndjson"
    recs = [{k: v for k, v in _record(i).items() if k != "ZoneName"} | {"ZoneID": 1234 + i} for i in range(3)]
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    result = CliRunner().invoke(main, ["evaluate", str(path), "-t", str(TOPOLOGY)])
    assert result.exit_code == 2
    assert "zone-id-not-mapped 3" in result.stderr and "--map ZoneID=ZoneName" in result.stderr
    # mapped, with a zones map keyed by id, the same rows are decided
    topo = af.load_topology(TOPOLOGY).to_dict()
    topo["zones"] = {"1234": "local", "1235": "local", "1236": "local"}
    ev = af.evaluate(path, af.Topology.from_dict(topo), columns={"ZoneName": "ZoneID"}, progress=False)
    assert ev.summary.rows_decided == 3


@pytest.mark.parametrize(
    ("value", "warning"),
    [
        (1, "timestamp-not-epoch"),
        ("1", "timestamp-not-epoch"),
        (86_400_000, "timestamp-not-epoch"),
        ("1.7000000001e+18", "timestamp-imprecise"),
        (1.7000000001e18, "timestamp-imprecise"),
    ],
)
def test_untrusted_timestamps_are_flagged_not_placed(tmp_path: Path, value: object, warning: str) -> None:
    path = tmp_path / "log.ndjson"
    path.write_text(json.dumps(_record(0, EdgeStartTimestamp=value)) + "\n" + json.dumps(_record(1)) + "\n")
    s = _eval(path).summary
    assert s.rows_decided == 2 and s.warnings == {warning: 1}
    assert s.timed_rows == 1 and s.time_min_ns == 1_700_000_000_001_000_000


# ---- 4. traceability -------------------------------------------------------------------------
def test_decisions_name_their_source_row_and_start(tmp_path: Path) -> None:
    d = tmp_path / "logs"
    d.mkdir()
    (d / "a.ndjson").write_text("not json\n" + "".join(json.dumps(r) + "\n" for r in RECORDS[:3]))
    shutil.copy(LOGS / "basic.csv", d / "b.csv")
    ev = _eval(d, output=tmp_path / "out.parquet")
    t = pq.read_table(tmp_path / "out.parquet")
    assert {"source", "row", "start_time"} <= set(t.column_names)
    first = t.slice(0, 1).to_pylist()[0]
    assert first["source"].endswith("a.ndjson") and first["row"] == 1 and first["RayID"] == "ray0000"
    assert first["start_time"].isoformat().startswith("2023-11-14T22:13:20")
    files = ev.summary.files
    assert list(files) == [str(d / "a.ndjson"), str(d / "b.csv")]
    assert files[str(d / "a.ndjson")] == [4, 3, 1]
    assert sum(c[0] for c in files.values()) == ev.summary.rows_in
    assert ev.summary.given[str(d / "b.csv")] == str(d)


def test_duplicate_rayids_are_counted_shown_and_not_double_counted(tmp_path: Path) -> None:
    path = tmp_path / "log.ndjson"
    recs = RECORDS[:10] + [RECORDS[3], RECORDS[7]]  # an exporter repeated two records
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    once = tmp_path / "once.ndjson"
    once.write_text("".join(json.dumps(r) + "\n" for r in RECORDS[:10]))
    s, base = _eval(path, batch_rows=4).summary, _eval(once).summary
    assert s.duplicate_rayids == 2 and s.duplicate_examples == ["ray0003", "ray0007"]
    assert s.rows_decided == 12  # still decided and counted as rows
    assert s.concurrency.peaks() == base.concurrency.peaks() and s.timed_rows == base.timed_rows
