"""The bad-input table of docs/cli.md ("Logs that cannot be read"): each input row, made here, gives
the message and exit code the table says."""

from __future__ import annotations

import gzip
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from aegisfwd.cli import main

ROOT = Path(__file__).resolve().parent.parent
TOPOLOGY = ROOT / "examples" / "edge-topology.yaml"
SAMPLE = ROOT / "examples" / "logs" / "20240501T120500Z_20240501T121000Z_e5f6a7b8.log"


def _table() -> dict[str, tuple[str, int]]:
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    section = text.split("## Logs that cannot be read", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        m = re.match(r"^\| (?P<input>[^|]+?) \| `(?P<msg>[^`]+)` \| (?P<code>\d) \|$", line)
        if m:
            rows[m.group("input")] = (m.group("msg"), int(m.group("code")))
    return rows


def _file(name: str, data: bytes) -> Callable[[Path], list[str]]:
    def make(d: Path) -> list[str]:
        (d / name).write_bytes(data)
        return [str(d / name)]

    return make


def _empty_dir(d: Path) -> list[str]:
    (d / "logs").mkdir()
    return [str(d / "logs")]


def _no_decided(d: Path) -> list[str]:
    (d / "x.ndjson").write_text(
        '{"EdgeColoCode": "LHR", "ZoneName": "nowhere.example", "OriginIP": "192.0.2.1", "RayID": "r"}\n'
    )
    return [str(d / "x.ndjson")]


def _renamed(name: str, data: Callable[[], bytes]) -> Callable[[Path], list[str]]:
    def make(d: Path) -> list[str]:
        (d / name).write_bytes(data())
        return [str(d / name)]

    return make


INPUTS: dict[str, Callable[[Path], list[str]]] = {
    "empty file": _file("empty.log", b""),
    "empty directory": _empty_dir,
    "binary file": _file("blob.json", bytes(range(256)) * 8),
    "CSV without a header line": _file("x.csv", b"LHR,shop.acme.example,198.18.0.10\n"),
    "gzip that does not decompress": _file("x.log.gz", b"\x1f\x8b\x08\x00\x00garbage-garbage"),
    "missing file": lambda d: [str(d / "nope.log")],
    "unreachable `--scheduler`": lambda d: [str(SAMPLE), "--scheduler", "tcp://127.0.0.1:9"],
    "no row could be decided": _no_decided,
    "no row is UTF-8 text": _file(
        "x.ndjson",
        b'{"EdgeColoCode": "LH\xb9R", "ZoneName": "local.example", "OriginIP": "192.0.2.1", "RayID": "r"}\n',
    ),
    "gzip file without `.gz`": _renamed("batch.log", lambda: gzip.compress(SAMPLE.read_bytes())),
    "CSV named `.parquet`": _renamed(
        "x.parquet", lambda: (ROOT / "tests" / "fixtures" / "logs" / "basic.csv").read_bytes()
    ),
}


def test_the_table_lists_every_input() -> None:
    assert set(_table()) == set(INPUTS)


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_bad_input_row(name: str, tmp_path: Path) -> None:
    message, code = _table()[name]
    if "scheduler" in name:
        pytest.importorskip("distributed")
    args = INPUTS[name](tmp_path)
    topo = TOPOLOGY if "CSV named" not in name else ROOT / "tests" / "fixtures" / "logs" / "topology.yaml"
    result = CliRunner().invoke(main, ["evaluate", *args, "-t", str(topo)])
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.stderr
    # the fixed parts of the documented message, in order, on stderr
    parts = [p for p in re.split(r"FILE|DIR|ADDRESS|NAME|N rows|…", message) if p.strip()]
    pos = 0
    for part in parts:
        found = result.stderr.find(part.strip(), pos)
        assert found >= 0, f"{part.strip()!r} not in {result.stderr!r}"
        pos = found
    if shutil.which("true") and code == 2:
        assert result.stderr.count("\n") <= 2  # one message, not a traceback
