"""The ``aegisfwd`` command line, driven through click's CliRunner on small fixture topologies."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import aegisfwd as af
from aegisfwd.cli import LAZY_COMMANDS, main

FIXTURES = Path(__file__).parent / "fixtures" / "cli"
GOOD = FIXTURES / "good.yaml"
BAD = FIXTURES / "bad.yaml"


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _fields(output: str) -> dict[str, str]:
    """The ``key value`` lines that ``decide`` prints."""
    out = {}
    for line in output.splitlines():
        key, _, value = line.partition(" ")
        if key in ("tier", "server", "dc", "location", "ip", "distance"):
            out[key] = value.strip()
    return out


# ---- validate -------------------------------------------------------------------------------
def test_validate_good_file(runner: CliRunner) -> None:
    result = runner.invoke(main, ["validate", str(GOOD)])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert "valid" in lines[0] and "3 locations" in lines[0] and "6 servers" in lines[0]
    assert "2 pools" in lines[0] and "4 IPs (3 IPv4, 1 IPv6)" in lines[0]


def test_validate_bad_file_prints_every_error_with_its_path(runner: CliRunner) -> None:
    result = runner.invoke(main, ["validate", str(BAD)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    with pytest.raises(af.TopologyError) as info:
        af.load_topology(BAD)
    issues = info.value.errors
    assert len(issues) == 4
    for issue in issues:
        assert issue.path and issue.path in result.output
        assert str(issue) in result.output
    # The paths the file's four mistakes live at (the path notation of docs/topology-format.md).
    for path in ("pools[0].ips[1].holders[0]", "pools[0].ips[2].address", "pools[1].id", "server_states"):
        assert path in result.output
    assert "4 errors" in result.output


def test_validate_missing_file_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_validate_unparsable_file(runner: CliRunner, tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"locations": [', encoding="utf-8")
    result = runner.invoke(main, ["validate", str(broken)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output and "error" in result.output


# ---- compile + decide -----------------------------------------------------------------------
@pytest.fixture
def compiled_file(runner: CliRunner, tmp_path: Path) -> Path:
    out = tmp_path / "good.aegis"
    result = runner.invoke(main, ["compile", str(GOOD), "-o", str(out)])
    assert result.exit_code == 0, result.output
    size = out.stat().st_size
    assert f"{size:,} bytes" in result.output
    assert "tables:" in result.output
    return out


def test_compile_writes_a_loadable_file(compiled_file: Path, runner: CliRunner) -> None:
    assert compiled_file.read_bytes()[:8] == b"AEGISFWD"
    loaded = af.load_compiled(compiled_file)
    assert list(loaded.servers) == list(af.load_topology(GOOD).server_ids)
    result = runner.invoke(main, ["validate", str(compiled_file)])
    assert result.exit_code == 0, result.output
    assert "valid compiled topology" in result.output and "6 servers" in result.output


def test_compile_refuses_an_invalid_topology(runner: CliRunner, tmp_path: Path) -> None:
    out = tmp_path / "bad.aegis"
    result = runner.invoke(main, ["compile", str(BAD), "-o", str(out)])
    assert result.exit_code == 2
    assert "pools[0].ips[1].holders[0]" in result.output
    assert "Traceback" not in result.output
    assert not out.exists()


def test_corrupt_compiled_file_is_a_clean_error(compiled_file: Path, runner: CliRunner) -> None:
    data = bytearray(compiled_file.read_bytes())
    data[-1] ^= 0xFF  # payload CRC no longer matches
    compiled_file.write_bytes(bytes(data))
    for args in (
        ["validate", str(compiled_file)],
        ["decide", "-t", str(compiled_file), "-s", "x", "-p", "y", "-f", "4"],
    ):
        result = runner.invoke(main, args)
        assert result.exit_code == 2, result.output
        assert "Error:" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("server", "pool", "family", "tier", "egress", "ip"),
    [
        ("lhr02-s001", "acme", "4", "LOCAL", "lhr02-s001", "192.0.2.10"),
        ("ams01-s001", "acme", "4", "SAME_DC", "ams01-s002", "192.0.2.11"),
        ("lhr01-s001", "acme", "4", "SAME_LOCATION", "lhr02-s001", "192.0.2.10"),
        ("fra01-s001", "acme", "4", "REMOTE", "ams01-s002", "192.0.2.11"),
        ("lhr01-s001", "solo", "4", "UNAVAILABLE", "-", "-"),  # its only holder is draining
    ],
)
def test_decide_on_topology_and_compiled_file(
    compiled_file: Path,
    runner: CliRunner,
    server: str,
    pool: str,
    family: str,
    tier: str,
    egress: str,
    ip: str,
) -> None:
    outputs = []
    for source in (GOOD, compiled_file):
        result = runner.invoke(
            main,
            ["decide", "--topology", str(source), "--server", server, "--pool", pool, "--family", family],
        )
        assert result.exit_code == 0, result.output
        fields = _fields(result.output)
        assert fields["tier"] == tier
        assert fields["server"] == egress
        assert fields["ip"] == ip
        outputs.append(result.output)
    assert outputs[0] == outputs[1]


def test_decide_agrees_with_the_library(runner: CliRunner) -> None:
    engine = af.Engine(af.load_topology(GOOD))
    flow = 0x9E3779B97F4A7C15
    expected = engine.decide("fra01-s001", "acme", 6, flow=flow)
    for flow_text in (hex(flow), str(flow), "0X9E3779B97F4A7C15"):
        result = runner.invoke(
            main,
            [
                "decide",
                "-t",
                str(GOOD),
                "-s",
                "fra01-s001",
                "-p",
                "acme",
                "-f",
                "6",
                "--flow",
                flow_text,
                "--json",
            ],
        )
        assert result.exit_code == 0, result.output
        got = json.loads(result.output)
        assert got["tier"] == expected.tier.name
        assert (got["server"], got["dc"], got["location"], got["ip"]) == (
            expected.server,
            expected.dc,
            expected.location,
            expected.ip,
        )
        assert got["distance"] == pytest.approx(expected.distance)
        assert got["distance_unit"] == "km"


def test_decide_explain(runner: CliRunner) -> None:
    args = [
        "decide",
        "-t",
        str(GOOD),
        "-s",
        "fra01-s001",
        "-p",
        "acme",
        "-f",
        "4",
        "--flow",
        "7",
        "--explain",
    ]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    explanation = str(af.Engine(af.load_topology(GOOD)).explain("fra01-s001", "acme", 4, flow=7)).strip()
    assert explanation and explanation in result.output
    assert _fields(result.output.split(explanation)[-1])["tier"] == "REMOTE"


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [("--server", "nowhere-s001", "nowhere-s001"), ("--pool", "globex", "globex")],
)
def test_decide_unknown_id(runner: CliRunner, option: str, value: str, message: str) -> None:
    args = {"--server": "lhr01-s001", "--pool": "acme"}
    args[option] = value
    result = runner.invoke(
        main, ["decide", "-t", str(GOOD), "--server", args["--server"], "--pool", args["--pool"], "-f", "4"]
    )
    assert result.exit_code == 2
    assert "Error:" in result.output and message in result.output and "unknown" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-f", "5"], "'5' is not one of"),
        (["-f", "4", "--flow", "0xZZ"], "not a decimal or 0x-hex integer"),
        (["-f", "4", "--flow", str(1 << 64)], "outside [0, 2**64)"),
        (["-f", "4", "--flow", "-1"], "outside [0, 2**64)"),
    ],
)
def test_decide_bad_family_or_flow(runner: CliRunner, args: list[str], message: str) -> None:
    result = runner.invoke(main, ["decide", "-t", str(GOOD), "-s", "lhr01-s001", "-p", "acme", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_decide_on_an_invalid_topology_lists_its_errors(runner: CliRunner) -> None:
    result = runner.invoke(main, ["decide", "-t", str(BAD), "-s", "lhr01-s001", "-p", "acme", "-f", "4"])
    assert result.exit_code == 2
    assert "4 error(s)" in result.output and "pools[0].ips[2].address" in result.output
    assert "Traceback" not in result.output


# ---- the group ------------------------------------------------------------------------------
def test_help_lists_every_command_without_importing_analysis_modules() -> None:
    code = (
        "import sys\n"
        "from aegisfwd.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('pyarrow', 'pandas', 'dask', 'duckdb', 'matplotlib', 'aegisfwd.cli.evaluate', 'aegisfwd.cli.bench')\n"
        "print('LOADED', sorted(m for m in sys.modules if m in heavy or m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "LOADED []" in out
    for name in ("validate", "compile", "decide", "demo", *LAZY_COMMANDS):
        assert f"  {name} " in out


def test_lazy_command_missing_module_gives_a_clear_message(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(main.lazy_subcommands, "evaluate", "aegisfwd._no_such_module:evaluate")
    result = runner.invoke(main, ["evaluate", "--help"])
    assert result.exit_code != 0
    assert "'evaluate' command is not part of this installation" in result.output
    assert "Traceback" not in result.output


def test_lazy_command_missing_dependency_names_the_extra(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "fake_cli_needs_pyarrow.py").write_text(
        "import pyarrow_not_installed_xyz\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(main.lazy_subcommands, "evaluate", "fake_cli_needs_pyarrow:evaluate")
    result = runner.invoke(main, ["evaluate"])
    assert result.exit_code != 0
    assert "needs pyarrow_not_installed_xyz" in result.output
    assert 'pip install "aegisfwd[analysis]"' in result.output


def test_version(runner: CliRunner) -> None:
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0 and af.__version__ in result.output


# ---- demo -----------------------------------------------------------------------------------
def test_demo_small_sample(runner: CliRunner, tmp_path: Path) -> None:
    out_dir = tmp_path / "demo"
    result = runner.invoke(main, ["demo", "--requests", "20000", "--log-rows", "3000", "--out", str(out_dir)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "337 locations" in out and "20,000 pools" in out
    assert "decided 20,000 requests" in out
    assert "Tier mix" in out
    for tier in ("LOCAL", "SAME_DC", "SAME_LOCATION", "REMOTE", "UNAVAILABLE"):
        assert tier in out
    # Shares in the table add up to the sample.
    assert "forwarded inside the location" in out and "forwarded to another location" in out
    assert out.count("result: ") >= 2 or out.count("egress server") >= 2
    # Not a terminal: no spinner or progress-bar control sequences.
    assert "\x1b[" not in out
    # Second half: the end-to-end log evaluation and its report.
    assert "Evaluating a 3,000-row Logpush log" in out
    assert (out_dir / "report" / "report.html").stat().st_size > 10_000
    summary = json.loads((out_dir / "report" / "summary.json").read_text(encoding="utf-8"))["summary"]
    # The generated log carries a few deliberate Logpush quirks (e.g. a truncated last line):
    # every row is either decided or rejected with a reason, none vanishes.
    assert summary["rows_in"] >= 3000
    assert summary["rows_in"] == summary["rows_decided"] + summary["rows_rejected"]
    assert summary["rows_decided"] >= 2900
    assert (out_dir / "decisions.parquet").exists()


def test_demo_without_log_evaluation(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["demo", "--requests", "5000", "--log-rows", "0", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "Evaluating" not in result.output and not (tmp_path / "report").exists()


# ---- README ---------------------------------------------------------------------------------
README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_starts_with_the_two_fresh_clone_commands() -> None:
    first = [line.strip() for line in README.read_text(encoding="utf-8").splitlines()[:2]]
    assert first[0].startswith("python3 -m venv .venv && ") and first[0].endswith("aegisfwd demo")
    assert '".[analysis]"' in first[0]
    assert '".[test]"' in first[1] and first[1].endswith("-m pytest")


def test_readme_python_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = README.read_text(encoding="utf-8")
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(README), "exec"), {"__name__": "readme"})  # noqa: S102 - our own README
    out = capsys.readouterr().out
    assert "SAME_DC lhr01-s002 192.0.2.10" in out
    assert "REMOTE" in out and "UNAVAILABLE" in out
    assert (tmp_path / "acme.aegis").exists()


def test_lazy_command_broken_import_is_a_clean_error(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "fake_cli_broken.py").write_text(
        "raise ImportError('cannot import name X')\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(main.lazy_subcommands, "bench", "fake_cli_broken:bench")
    result = runner.invoke(main, ["bench"])
    assert result.exit_code == 1
    assert "'bench' command could not be loaded: cannot import name X" in result.output
