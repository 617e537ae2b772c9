"""Hostile files: each once escaped the library's errors (or was silently accepted).

* topology files nested thousands deep, or holding integers of thousands of digits, in JSON, TOML
  and YAML: ``TopologyError`` naming the problem (and its line where the format gives one), and
  ``aegisfwd validate`` exits 2 with one line of error, no traceback;
* compiled files with two servers (pools, DCs, locations, IPs) of one id: refused at load;
* an engine built on a writable buffer: the buffer is copied, so writing to it afterwards changes
  nothing the engine reads (it once made the C++ core read out of bounds).
"""

from __future__ import annotations

import mmap
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import aegisfwd as af
from aegisfwd import CompiledTopology

SPEC = Path(__file__).parent / "fixtures" / "topologies" / "spec-example.yaml"

DEEP = 100_000
HOSTILE_TOPOLOGIES = {
    "deep.json": ("[" * DEEP + "]" * DEEP, r"line 1, column 65: nested deeper than 64 levels"),
    "deep-in-a-field.json": (
        '{"version": 1, "locations": ' + "[" * 70 + "]" * 70 + "}",
        r"line 1, column \d+: nested deeper",
    ),
    "deep-objects.json": ('{"a":' * 5000 + "1" + "}" * 5000, r"nested deeper than 64 levels"),
    "deep.toml": ("a = " + "[" * DEEP + "]" * DEEP, r"line 1, column 69: nested deeper than 64 levels"),
    "deep-inline-tables.toml": ("a = " + "{b = " * 3000 + "1" + "}" * 3000, r"nested deeper than 64 levels"),
    "deep.yaml": ("[" * DEEP + "]" * DEEP, r"exceeded maximum nesting depth"),
    "deep-blocks.yaml": (
        "a:\n" + "".join(" " * i + "b:\n" for i in range(1, 3000)),
        r"exceeded maximum nesting depth",
    ),
    "huge-int.json": ('{"version": ' + "9" * 5000 + "}", r"a number too large to read.*5000 digits"),
    "huge-int.toml": ("version = " + "9" * 5000 + "\n", r"a number too large to read.*5000 digits"),
    "huge-int.yaml": ("version: " + "9" * 5000 + "\n", r"a number too large to read.*5000 digits"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_TOPOLOGIES))
def test_hostile_topology_is_a_topology_error(tmp_path: Path, name: str) -> None:
    text, match = HOSTILE_TOPOLOGIES[name]
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(af.TopologyError, match=match) as info:
        af.load_topology(path)
    assert info.value.source == str(path)
    assert [e.code for e in info.value.errors] == ["parse-error"]


def test_brackets_inside_strings_and_comments_do_not_count(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text('{"version": 1, "note": "' + "[" * 500 + '"}')
    (tmp_path / "c.toml").write_text("# " + "[" * 500 + '\nversion = 1\nnote = """' + "{" * 500 + '"""\n')
    for name in ("s.json", "c.toml"):
        with pytest.raises(af.TopologyError) as info:
            af.load_topology(tmp_path / name)
        assert "nested deeper" not in str(info.value)  # the shape checks ran: the file was read


@pytest.mark.parametrize("name", ["deep.json", "deep.toml", "huge-int.json"])
def test_validate_cli_exits_2_without_traceback(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text(HOSTILE_TOPOLOGIES[name][0])
    run = subprocess.run(
        [sys.executable, "-c", "from aegisfwd.cli import main; main()", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    assert "parse-error" in run.stderr or "parse-error" in run.stdout


# ---- compiled files: duplicate ids ------------------------------------------------------------


def _with_ids(c: CompiledTopology, kind: str, ids: list[str]) -> bytes:
    arrays = {name: np.array(a) for name, a in c.arrays.items()}
    encoded = [i.encode() for i in ids]
    arrays[f"{kind}_id_bytes"] = np.frombuffer(b"".join(encoded), dtype=np.uint8).copy()
    arrays[f"{kind}_id_offsets"] = np.concatenate([[0], np.cumsum([len(e) for e in encoded])]).astype(
        np.int64
    )
    counts = dict(c.counts)
    counts[f"{kind}_id_bytes"] = int(arrays[f"{kind}_id_bytes"].shape[0])
    return CompiledTopology(
        arrays, counts=counts, meta=c.meta, distance_unit=c.distance_unit, hash_scheme=c.hash_scheme
    ).to_bytes()


@pytest.mark.parametrize("kind", ["server", "dc", "location", "pool", "ip", "zone"])
def test_duplicate_ids_are_refused_at_load(tmp_path: Path, kind: str) -> None:
    c = af.load_topology(Path(__file__).parent / "fixtures" / "logs" / "topology.yaml").compile()
    ids = list(getattr(c, {"dc": "dcs"}.get(kind, kind + "s")))
    if len(ids) < 2:
        pytest.skip(f"the fixture has one {kind}")
    ids[1] = ids[0]
    path = tmp_path / "dup.aegis"
    path.write_bytes(_with_ids(c, kind, ids))
    match = rf"array '{kind}_id_bytes' row 1: id '{ids[0]}' repeats row 0"
    with pytest.raises(af.CompiledFileError, match=match):
        af.load_compiled(path)
    with pytest.raises(af.CompiledFileError, match=match):
        af.load_compiled(path, mmap=False, verify=False)


def test_unique_ids_still_load() -> None:
    c = af.load_topology(SPEC).compile()
    loaded = CompiledTopology.from_bytes(c.to_bytes())
    assert loaded.servers == c.servers
    assert loaded.to_pandas() is not None if hasattr(loaded, "to_pandas") else True


# ---- writable buffers ---------------------------------------------------------------------------


def _writable_buffers(data: bytes) -> list[object]:
    anon = mmap.mmap(-1, len(data))
    anon.write(data)
    return [
        bytearray(data),
        memoryview(bytearray(data)),
        anon,
        np.frombuffer(bytearray(data), dtype=np.uint8),
    ]


def test_writable_buffers_are_copied_so_later_writes_change_nothing() -> None:
    topo = af.load_topology(SPEC)
    data = topo.compile().to_bytes()
    flows = np.arange(2000, dtype=np.uint64)
    expected = af.Engine(topo).decide_batch("lhr01-s001", "acme", 4, flows)
    for buffer in _writable_buffers(data):
        c = CompiledTopology.from_bytes(buffer)
        engine = af.Engine(c)
        # Overwrite every byte of the payload with garbage (a list index far out of range).
        view = memoryview(buffer).cast("B") if not isinstance(buffer, np.ndarray) else memoryview(buffer)
        view[64:] = b"\xff" * (len(data) - 64)
        for name, array in c.arrays.items():
            assert not array.flags.writeable, name
        got = engine.decide_batch("lhr01-s001", "acme", 4, flows)
        assert got.equals(expected)
        assert af.Engine(c).decide_batch("lhr01-s001", "acme", 4, flows).equals(expected)


def test_read_only_buffers_are_used_in_place(tmp_path: Path) -> None:
    data = af.load_topology(SPEC).compile().to_bytes()
    c = CompiledTopology.from_bytes(data)
    base = c.arrays["server_dc"].base
    while base is not None and not isinstance(base, (bytes, memoryview)):
        base = getattr(base, "base", None)
    assert base is not None  # a view, not a copy
    path = tmp_path / "t.aegis"
    path.write_bytes(data)
    assert af.load_compiled(path).arrays["server_dc"].base is not None


@pytest.mark.parametrize(
    ("patch", "code", "message"),
    [
        # pydantic marks a key error with a last location element "[key]"; a name that is literally
        # "[key]" once crashed the message builder (found by fuzz/fuzz_topology.py).
        ({"[key]": []}, "unknown-field", "unknown field '[key]'"),
        ({"zones": {"[key]": 5}}, "wrong-type", "expected a string, but this loaded as"),
        ({"zones": {"[key]": "no-such-pool"}}, "unknown-pool", "no-such-pool"),
        ({"zones": {5: "acme"}}, "wrong-type", "the zone name: expected a string"),
    ],
)
def test_a_name_that_is_literally_the_key_marker(patch: dict, code: str, message: str) -> None:
    import yaml

    from aegisfwd._loader import topology_from_dict

    doc = yaml.safe_load(SPEC.read_text())
    doc.update(patch)
    with pytest.raises(af.TopologyError) as info:
        topology_from_dict(doc)
    issues = [(i.code, i.message) for i in info.value.errors]
    assert any(c == code and message in m for c, m in issues), issues
