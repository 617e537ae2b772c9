"""A log value that is not UTF-8 text rejects its row under ``invalid-utf8-<field>``, the same in every
reader (NDJSON through Arrow and line by line, CSV, Parquet string / dictionary / binary columns, a
pandas frame on Dask) and on the command line: never a traceback, never a decision from a mangled id.

The first input is the ``logrows`` fuzz target's finding (fuzz/corpus/logrows/found-invalid-utf8-colo):
``"EdgeColoCode":"LHR\\xb9"`` used to escape as ``UnicodeDecodeError``."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import aegisfwd as af
from aegisfwd.cli import main
from aegisfwd.evaluation._batches import evaluate_batches
from aegisfwd.evaluation._prepare import FIELDS, column_names, resolve_columns
from aegisfwd.evaluation._read import NdjsonBlockParser
from aegisfwd.evaluation._sniff import _looks_binary
from aegisfwd.evaluation._summary import REASON_HELP, REASONS, UTF8_FIELDS

ROOT = Path(__file__).resolve().parents[1]
FINDING = ROOT / "fuzz" / "corpus" / "logrows" / "found-invalid-utf8-colo"
TOPOLOGY = ROOT / "tests" / "fixtures" / "logs" / "topology.yaml"

GOOD = {
    "RayID": "a1",
    "EdgeColoCode": "LHR",
    "ZoneName": "local.example",
    "OriginIP": "203.0.113.1",
    "ClientIP": "198.51.100.1",
    "ClientSrcPort": 40001,
}
# (RayID, field, bytes of that field's value): one good row first, then one corrupt value per row.
BAD = [
    ("a2", "EdgeColoCode", b"LH\xb9R"),
    ("a3", "ZoneName", b"local\xff.example"),
    ("a4", "RayID", b"a4\xc3"),
]
EXPECTED = {"invalid-utf8-EdgeColoCode": 1, "invalid-utf8-ZoneName": 1, "invalid-utf8-RayID": 1}


@pytest.fixture(scope="module")
def topo() -> af.Topology:
    return af.load_topology(TOPOLOGY)


def test_every_field_has_its_reason_and_help() -> None:
    assert UTF8_FIELDS == FIELDS
    for f in FIELDS:
        assert f"invalid-utf8-{f}" in REASONS
        assert f in REASON_HELP[f"invalid-utf8-{f}"]
    assert len(REASONS) < 256  # codes are uint8


def test_the_fuzz_finding_is_a_reject_naming_the_field() -> None:
    data = FINDING.read_bytes()
    assert b"LHR\xb9" in data
    table, malformed, _ = NdjsonBlockParser(column_names(resolve_columns(None))).parse(data, 0)
    assert table is not None and not malformed
    out = pa.Table.from_batches(list(evaluate_batches(iter([table]), af.load_topology(TOPOLOGY))))
    out.validate(full=True)  # every text column of the answer is UTF-8
    rows = {r["RayID"]: r for r in out.to_pylist()}
    bad = rows["r12"]
    assert bad["reject_reason"] == "invalid-utf8-EdgeColoCode"
    assert bad["tier"] is None and bad["egress_server"] is None
    assert bad["EdgeColoCode"] == "LHR\ufffd"  # shown readable, never looked up
    assert rows["r10"]["reject_reason"] == "missing-colo"  # the other rows keep their own reasons


def _lines(slow: bool) -> bytes:
    out = [json.dumps(GOOD).encode()]
    for ray, field, raw in BAD:
        rec = dict(GOOD, RayID=ray)
        rec[field] = "\0PLACEHOLDER\0"
        out.append(json.dumps(rec).encode().replace(b"\\u0000PLACEHOLDER\\u0000", raw))
    if slow:
        out.append(b"{not json")  # sends the block line by line (json.loads)
    return b"\n".join(out) + b"\n"


def _json_array() -> bytes:
    """The same records as one JSON array, one record pretty-printed, and a broken record whose
    text is not UTF-8 either (its raw text goes to the rejects file)."""
    recs = _lines(slow=False).strip().split(b"\n")
    recs[1] = recs[1].replace(b", ", b",\n  ")
    return b"[\n" + b",\n".join([*recs, b'{"RayID": "a5\xfe", oops}']) + b"\n]\n"


def _csv() -> bytes:
    rows = [b"RayID,EdgeColoCode,ZoneName,OriginIP,ClientIP,ClientSrcPort"]
    for ray, field, raw in [("a1", "", b""), *BAD]:
        vals = {k: str(v).encode() for k, v in GOOD.items()}
        vals["RayID"] = ray.encode()
        if field:
            vals[field] = raw
        rows.append(b",".join(vals.values()))
    return b"\n".join(rows) + b"\n"


def _table(binary: bool) -> pa.Table:
    cols: dict[str, list[bytes | int]] = {k: [] for k in GOOD}
    for ray, field, raw in [("a1", "", b""), *BAD]:
        for k, v in GOOD.items():
            value = raw if k == field else (ray if k == "RayID" else v)
            cols[k].append(value if isinstance(value, (bytes, int)) else value.encode())
    arrays = {}
    for k, vals in cols.items():
        if k == "ClientSrcPort":
            arrays[k] = pa.array(vals, pa.int64())
        else:
            b = pa.array(vals, pa.binary())
            arrays[k] = b if binary else b.view(pa.string())  # a string column holding the bytes as is
    return pa.table(arrays)


WRITERS = {
    "ndjson (Arrow)": ("x.ndjson", lambda p: p.write_bytes(_lines(slow=False))),
    "ndjson (line by line)": ("x.ndjson", lambda p: p.write_bytes(_lines(slow=True))),
    "json array (record by record)": ("x.json", lambda p: p.write_bytes(_json_array())),
    "csv": ("x.csv", lambda p: p.write_bytes(_csv())),
    "parquet string (read as dictionary)": ("x.parquet", lambda p: pq.write_table(_table(False), p)),
    "parquet binary": ("x.parquet", lambda p: pq.write_table(_table(True), p)),
}


@pytest.mark.parametrize("reader", sorted(WRITERS))
def test_every_reader_rejects_the_row_naming_the_field(
    reader: str, topo: af.Topology, tmp_path: Path
) -> None:
    name, write = WRITERS[reader]
    path = tmp_path / name
    write(path)
    rej = tmp_path / "rejects.parquet"
    out = tmp_path / "out.parquet"
    ev = af.evaluate(path, topo, progress=False, rejects=rej, output=out)
    s = ev.summary
    broken = "line by line" in reader or "array" in reader
    expected = dict(EXPECTED, **({"malformed-json": 1} if broken else {}))
    assert s.rejects == expected
    assert s.rows_decided == 1 and s.rows_in == s.rows_decided + s.rows_rejected
    assert not s.input_errors
    rejects = pq.read_table(rej)
    rejects.validate(full=True)
    by_reason = {r["reason"]: r for r in rejects.to_pylist()}
    assert by_reason["invalid-utf8-EdgeColoCode"]["EdgeColoCode"] == "LH\ufffdR"
    assert by_reason["invalid-utf8-ZoneName"]["ZoneName"] == "local\ufffd.example"
    decided = pq.read_table(out)
    assert decided.column("RayID").to_pylist() == ["a1"]


def test_a_pandas_frame_on_dask_rejects_the_same(topo: af.Topology) -> None:
    dask = pytest.importorskip("dask")
    dd = pytest.importorskip("dask.dataframe")
    frame = _table(True).to_pandas()  # bytes objects in object columns
    with dask.config.set({"dataframe.convert-string": False}):  # else Dask itself decodes (and fails)
        ev = af.evaluate_dask(dd.from_pandas(frame, npartitions=2), topo)
    assert ev.summary.rejects == EXPECTED
    assert ev.summary.rows_decided == 1


def test_a_lone_surrogate_escape_is_not_text_either(topo: af.Topology, tmp_path: Path) -> None:
    """JSON can spell half a surrogate pair (``"\\ud800"``): no UTF-8 text holds it."""
    line = json.dumps(dict(GOOD, RayID="a2")).replace('"LHR"', '"LH\\ud800R"')
    for extra in ("", "{broken\n"):
        p = tmp_path / "s.ndjson"
        p.write_text(json.dumps(GOOD) + "\n" + line + "\n" + extra)
        ev = af.evaluate(p, topo, progress=False)
        assert ev.summary.rejects.get("invalid-utf8-EdgeColoCode") == 1, extra
        assert ev.summary.rows_decided == 1


def test_a_few_stray_bytes_do_not_make_a_text_log_binary() -> None:
    text = _lines(slow=False)
    assert not _looks_binary(text)
    assert _looks_binary(bytes(range(256)) * 8)  # NUL bytes
    assert _looks_binary(bytes(range(1, 256)) * 8)  # half of it not UTF-8
    assert not _looks_binary("é".encode() * 100 + "é".encode()[:1])  # a character cut at the end


def _cli(args: list[str]) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["evaluate", *args, "-t", str(TOPOLOGY)])
    return result.exit_code, result.stdout, result.stderr


def test_cli_counts_the_reject_and_exits_0(tmp_path: Path) -> None:
    p = tmp_path / "x.ndjson"
    p.write_bytes(_lines(slow=False))
    code, out, err = _cli([str(p)])
    assert code == 0, out + err
    assert "Traceback" not in out + err
    assert "invalid-utf8-EdgeColoCode" in out


def test_cli_exits_2_when_no_row_is_text(tmp_path: Path) -> None:
    p = tmp_path / "x.ndjson"
    p.write_bytes(_lines(slow=False).split(b"\n", 1)[1])  # without the good row
    code, _out, err = _cli([str(p)])
    assert code == 2
    assert "Traceback" not in err
    assert err.startswith("Error: none of the 3 rows of ")
    assert "invalid-utf8-" in err and err.count("\n") == 1
