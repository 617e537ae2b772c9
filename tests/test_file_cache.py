"""The compiled-file cache of the commands that decide from a topology file (``aegisfwd._file_cache``).

A second run on the same file maps the cached compiled file instead of parsing and compiling; a
changed file is never answered from the old entry; ``--no-cache`` bypasses it; a corrupt entry or an
unwritable cache directory costs a compile, never a wrong answer or an error.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import aegisfwd as af
from aegisfwd import _file_cache
from aegisfwd.cli import main

GOOD = Path(__file__).parent / "fixtures" / "cli" / "good.yaml"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "cache"
    monkeypatch.setenv(_file_cache.CACHE_DIR_ENV, str(directory))
    return directory


@pytest.fixture
def topo_file(tmp_path: Path) -> Path:
    path = tmp_path / "topology.yaml"
    shutil.copyfile(GOOD, path)
    return path


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the compiles that happen (``Topology.compile``)."""
    calls: list[int] = []
    original = af.Topology.compile

    def counting(self: af.Topology) -> af.CompiledTopology:
        calls.append(1)
        return original(self)

    monkeypatch.setattr(af.Topology, "compile", counting)
    return calls


def decide(path: Path, *extra: str) -> dict[str, object]:
    args = ["decide", "-t", str(path), "-s", "lhr01-s001", "-p", "acme", "-f", "4", "--json", *extra]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output.splitlines()[-1])


def entries(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.aegis")) if cache.exists() else []


def test_second_run_maps_the_cached_file(cache: Path, topo_file: Path, compiles: list[int]) -> None:
    first = decide(topo_file)
    assert len(compiles) == 1 and len(entries(cache)) == 1
    again = decide(topo_file)
    assert again == first and len(compiles) == 1  # no parse-and-compile the second time
    assert entries(cache)[0].read_bytes()[:8] == af.compiled.MAGIC


def test_a_changed_file_is_never_answered_from_the_old_entry(
    cache: Path, topo_file: Path, compiles: list[int]
) -> None:
    before = decide(topo_file)
    text = topo_file.read_text()
    assert before["server"] == "lhr02-s001", "the fixture changed: update this test"
    # Take LHR02 out of service: the same request must now egress elsewhere.
    topo_file.write_text(text.replace("server_states: {", "server_states: {LHR02: down, ", 1))
    assert topo_file.read_text() != text, "the fixture changed shape: update this test"
    after = decide(topo_file)
    assert len(compiles) == 2 and len(entries(cache)) == 2
    assert after != before and after["server"] != "lhr02-s001"


def test_no_cache_neither_reads_nor_writes(cache: Path, topo_file: Path, compiles: list[int]) -> None:
    decide(topo_file, "--no-cache")
    assert entries(cache) == [] and len(compiles) == 1
    decide(topo_file)
    decide(topo_file, "--no-cache")
    assert len(entries(cache)) == 1 and len(compiles) == 3


def test_a_corrupt_entry_is_rebuilt(cache: Path, topo_file: Path, compiles: list[int]) -> None:
    first = decide(topo_file)
    (entry,) = entries(cache)
    data = bytearray(entry.read_bytes())
    data[-1] ^= 0xFF
    entry.write_bytes(bytes(data))
    assert decide(topo_file) == first and len(compiles) == 2
    af.load_compiled(entry)  # rewritten whole


def test_an_unwritable_cache_directory_only_costs_a_compile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, topo_file: Path, compiles: list[int]
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv(_file_cache.CACHE_DIR_ENV, str(blocker / "cache"))
    assert decide(topo_file) == decide(topo_file)
    assert len(compiles) == 2


def test_explain_on_a_cache_hit_has_the_model(cache: Path, topo_file: Path) -> None:
    decide(topo_file)
    args = ["decide", "-t", str(topo_file), "-s", "lhr01-s001", "-p", "acme", "-f", "4", "--explain"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "LOCAL" in result.output or "SAME_DC" in result.output


def test_the_key_names_the_content_format_and_versions(cache: Path) -> None:
    a = _file_cache.cache_entry(b"locations: []", "x.yaml")
    assert a == _file_cache.cache_entry(b"locations: []", "elsewhere/y.yml".replace(".yml", ".yaml"))
    assert a != _file_cache.cache_entry(b"locations: [] ", "x.yaml")
    assert a != _file_cache.cache_entry(b"locations: []", "x.json")
    assert a.parent == cache
    name = a.name
    assert f"f{af.compiled.FORMAT_VERSION}-" in name and f"-h{af.HASH_SCHEME_VERSION}-" in name
    assert f"-v{af.__version__}-" in name


def test_only_the_most_recently_used_entries_are_kept(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_file_cache, "KEEP_ENTRIES", 2)
    text = GOOD.read_text()
    paths = []
    for k in range(4):
        path = tmp_path / f"t{k}.yaml"
        path.write_text(text + f"\n# copy {k}\n")
        paths.append(path)
        decide(path)
    assert len(entries(cache)) == 2
    assert {e.name for e in entries(cache)} == {
        _file_cache.cache_entry(p.read_bytes(), p).name for p in paths[2:]
    }


def test_a_compiled_file_is_mapped_as_it_is(cache: Path, tmp_path: Path, topo_file: Path) -> None:
    out = tmp_path / "t.aegis"
    af.load_topology(topo_file).compile().save(out)
    assert decide(out) == decide(topo_file)
    assert len(entries(cache)) == 1  # only the topology file's entry


def test_evaluate_and_compare_take_no_cache(cache: Path, topo_file: Path) -> None:
    for command in ("evaluate", "compare"):
        result = CliRunner().invoke(main, [command, "--help"])
        assert result.exit_code == 0 and "--no-cache" in result.output
