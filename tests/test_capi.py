"""The C ABI from the *installed* package: aegisfwd.h, libaegisfwd, its CMake and pkg-config files.

tests/capi/capi_probe.c is compiled against what ``aegisfwd config`` points at, once through pkg-config
and once through CMake's ``find_package``, and must answer world requests exactly as ``af.Engine``,
refuse corrupt files with the message Python's loader gives, stay consistent while states change on
another thread, and refuse to run with a header of another ABI version.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

import aegisfwd as af
from aegisfwd import _core, capi
from aegisfwd.errors import CompiledFileError

HERE = Path(__file__).parent / "capi"
PROBE = HERE / "capi_probe.c"
ROWS = 100_000
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]


def _tool(name: str) -> str:
    # Prefer the test environment's own copy (the `test` extra installs cmake), then PATH.
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed: cannot build C programs against libaegisfwd")
    return found


def _cc() -> str:
    return _tool(os.environ.get("CC", "cc"))


def _run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False, **kw)  # type: ignore[call-overload]


def _built(result: subprocess.CompletedProcess[str], what: str) -> None:
    assert result.returncode == 0, f"{what} failed:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def pkg_flags() -> list[str]:
    pkg_config = _tool("pkg-config")
    env = {**os.environ, "PKG_CONFIG_PATH": str(capi.pkgconfig_dir())}
    result = _run([pkg_config, "--cflags", "--libs", "aegisfwd"], env=env)
    _built(result, "pkg-config --cflags --libs aegisfwd")
    version = _run([pkg_config, "--modversion", "aegisfwd"], env=env).stdout.strip()
    assert version == af.__version__
    return shlex.split(result.stdout)


@pytest.fixture(scope="module")
def probe_pkgconfig(tmp_path_factory: pytest.TempPathFactory, pkg_flags: list[str]) -> Path:
    out = tmp_path_factory.mktemp("probe_pc") / "capi_probe"
    _built(_run([_cc(), *STRICT, "-O2", str(PROBE), "-o", str(out), *pkg_flags, "-lpthread", "-lm"]), "cc")
    return out


@pytest.fixture(scope="module")
def probe_cmake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cmake = _tool("cmake")
    build = tmp_path_factory.mktemp("probe_cmake")
    configure = [
        cmake,
        "-S",
        str(HERE),
        "-B",
        str(build),
        "-DCMAKE_BUILD_TYPE=Release",
        f"-Daegisfwd_DIR={capi.cmake_dir()}",
    ]
    _built(_run(configure), "cmake configure")
    _built(_run([cmake, "--build", str(build)]), "cmake --build")
    return build / "capi_probe"


@pytest.fixture(scope="module")
def world_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("world") / "world.aegc"
    af.datasets.world().compile().save(path)
    return path


@pytest.fixture(scope="module")
def world_engine(world_file: Path) -> af.Engine:
    return af.Engine(af.load_compiled(world_file))


def _requests(n: int) -> dict[str, np.ndarray]:
    req = af.datasets.requests(af.datasets.world(), n, seed=13).as_dict()
    # A few bad rows: the C ABI answers INVALID where the Python batch (errors="mark") does.
    req["server"][:2] = [-1, 10**8]
    req["pool"][3:5] = [-7, 10**8]
    req["family"][5] = 5
    return req


def _check_world(probe: Path, world_file: Path, engine: af.Engine, tmp_path: Path) -> None:
    req = _requests(ROWS)
    req_path, out_path, ids_path = tmp_path / "req.bin", tmp_path / "out.bin", tmp_path / "ids.txt"
    with open(req_path, "wb") as f:
        f.write(struct.pack("<Q", ROWS))
        f.writelines(
            np.ascontiguousarray(req[name], dtype=dtype).tobytes()
            for name, dtype in (("server", "<i4"), ("pool", "<i4"), ("family", "u1"), ("flow", "<u8"))
        )
    result = _run([str(probe), "world", str(world_file), str(req_path), str(out_path), str(ids_path)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "mismatches=0" in result.stdout

    expected = engine.decide_batch(req["server"], req["pool"], req["family"], req["flow"], errors="mark")
    raw = out_path.read_bytes()
    got, offset = {}, 0
    for name, dtype in (
        ("tier", "u1"),
        ("server", "<i4"),
        ("dc", "<i4"),
        ("location", "<i4"),
        ("ip", "<i4"),
        ("distance", "<f8"),
    ):
        got[name] = np.frombuffer(raw, dtype=dtype, count=ROWS, offset=offset)
        offset += ROWS * np.dtype(dtype).itemsize
    assert offset == len(raw)
    for name, column in expected.columns().items():
        np.testing.assert_array_equal(got[name], column, err_msg=f"column {name!r}")
    assert int((got["tier"] == 255).sum()) == 5
    tiers = set(np.unique(got["tier"]).tolist())
    assert {0, 1, 2, 3, 255} <= tiers, tiers  # the sample reaches every tier the world produces

    # Id tables: every id of every kind, in index order, looked up back to its index.
    kinds: list[list[tuple[str, int]]] = []
    for line in ids_path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            kinds.append([])
        else:
            text, index = line.rsplit("\t", 1)
            kinds[-1].append((text, int(index)))
    compiled = engine.compiled
    for got_ids, want in zip(
        kinds[:5], (engine.locations, engine.dcs, engine.servers, engine.pools, engine.ips), strict=True
    ):
        assert [t for t, _ in got_ids] == list(want)
    assert [t for t, _ in kinds[5]] == list(compiled.zones)
    assert [p for _, p in kinds[5]] == compiled["zone_pool"].tolist()


def test_world_requests_through_pkg_config_build(probe_pkgconfig, world_file, world_engine, tmp_path):
    _check_world(probe_pkgconfig, world_file, world_engine, tmp_path)


def test_world_requests_through_cmake_find_package(probe_cmake, world_file, world_engine, tmp_path):
    _check_world(probe_cmake, world_file, world_engine, tmp_path)


def test_client_flow_key_is_the_log_evaluations_key(probe_pkgconfig):
    """aegisfwd_client_flow_key gives a C proxy the key `aegisfwd evaluate` derives from its logs."""
    from aegisfwd._flowkey import flow_key_py

    good = [("198.51.100.1", 40001), ("2001:db8::1", 0), ("127.0.0.1", 65535), ("a" * 300, 443)]
    lines = [f"{ip} {port}" for ip, port in good] + [" 443", "192.0.2.1 65536"]
    result = _run([str(probe_pkgconfig), "flowkey"], input="\n".join(lines) + "\n")
    assert result.returncode == 0, result.stderr
    null_client, null_out, *out = result.stdout.splitlines()
    assert null_client == null_out == "AEGISFWD_E_INVALID_ARGUMENT"
    assert out[: len(good)] == [f"{flow_key_py(ip, port, None):016x}" for ip, port in good]
    assert out[0] == "259002dc45c00b3d"  # the pinned value of docs/evaluate.md's derivation
    assert out[len(good)] == "AEGISFWD_E_INVALID_ARGUMENT the client address is empty"
    assert out[len(good) + 1] == "AEGISFWD_E_INVALID_ARGUMENT port 65536 above 65535"


def test_decisions_on_two_threads_while_a_third_changes_states(probe_pkgconfig, world_file):
    result = _run([str(probe_pkgconfig), "threads", str(world_file), "20000", "4"])
    assert result.returncode == 0, result.stdout + result.stderr
    stats = dict(kv.split("=") for kv in result.stdout.split())
    assert int(stats["bad"]) == 0
    assert int(stats["rows_that_change"]) > 0 and int(stats["flips"]) > 0
    assert int(stats["saw_before"]) > 0 and int(stats["saw_after"]) > 0  # both states were seen
    assert int(stats["decided"]) == 2 * 20000 * 4


# ---- corrupt files: the C loader gives the error Python's loader gives ------------------------------
def _small_file(tmp_path: Path) -> bytes:
    topo = af.load_topology(Path(__file__).parent / "fixtures" / "topologies" / "spec-example.yaml")
    path = tmp_path / "small.aegc"
    topo.compile().save(path)
    return path.read_bytes()


def _layout(data: bytes) -> tuple[int, dict]:
    hlen = struct.unpack_from("<I", data, 12)[0]
    header = json.loads(data[32 : 32 + hlen])
    return (32 + hlen + 63) // 64 * 64, header


def _with_header(data: bytes, edit) -> bytes:
    """``data`` with its JSON header edited (CRCs and lengths fixed up, payload moved along)."""
    payload_start, header = _layout(data)
    payload = data[payload_start:]
    edit(header)
    for _ in range(3):  # offsets depend on the header length, which depends on the offsets
        text = json.dumps(header).encode()
        new_start = (32 + len(text) + 63) // 64 * 64
        for entry in header["arrays"].values():
            if isinstance(entry, dict) and isinstance(entry.get("offset"), int):
                entry["offset"] += new_start - payload_start
        payload_start = new_start
    text = json.dumps(header).encode()
    new_start = (32 + len(text) + 63) // 64 * 64
    body = text + b"\0" * (new_start - 32 - len(text)) + payload
    total = 32 + len(body)
    prefix = struct.pack("<8sIIQII", b"AEGISFWD", 1, len(text), total, zlib.crc32(text), zlib.crc32(payload))
    return prefix + body


def _with_array(data: bytes, name: str, index: int, value: int) -> bytes:
    """``data`` with one element of an array changed and the payload CRC fixed (a structural error)."""
    payload_start, header = _layout(data)
    entry = header["arrays"][name]
    buf = bytearray(data)
    dtype = np.dtype(entry["dtype"])
    np.frombuffer(
        buf, dtype=dtype, count=int(np.prod(entry["shape"])), offset=entry["offset"]
    )  # bounds check
    code = {"<i4": "<i", "|u1": "<B", "<i8": "<q", "<u8": "<Q"}[entry["dtype"]]
    struct.pack_into(code, buf, entry["offset"] + index * dtype.itemsize, value)
    struct.pack_into("<I", buf, 28, zlib.crc32(bytes(buf[payload_start:])))
    return bytes(buf)


CORRUPTIONS = {
    "empty": lambda d: b"",
    "short-prefix": lambda d: d[:20],
    "truncated": lambda d: d[: len(d) // 2],
    "trailing": lambda d: d + b"\0" * 8,
    "bad-magic": lambda d: b"NOTAEGIS" + d[8:],
    "version": lambda d: d[:8] + struct.pack("<I", 9) + d[12:],
    "header-crc": lambda d: d[:40] + bytes([d[40] ^ 0x20]) + d[41:],
    "payload-crc": lambda d: d[:-1] + bytes([d[-1] ^ 1]),
    "hash-scheme": lambda d: _with_header(d, lambda h: h.update(hash_scheme=2)),
    "distance-unit": lambda d: _with_header(d, lambda h: h.update(distance_unit="mi")),
    "negative-count": lambda d: _with_header(d, lambda h: h["counts"].update(servers=-1)),
    "unknown-array": lambda d: _with_header(d, lambda h: h["arrays"].update(extra={})),
    "missing-array": lambda d: _with_header(d, lambda h: h["arrays"].pop("zone_pool")),
    "wrong-dtype": lambda d: _with_header(d, lambda h: h["arrays"]["server_dc"].update(dtype="<i8")),
    "server-out-of-range": lambda d: _with_array(d, "server_dc", 0, 10**6),
    "state-out-of-range": lambda d: _with_array(d, "server_initial_state", 0, 7),
    "group-layout": lambda d: _with_array(d, "group_layout", 0, 10**6),
    "holder-ranges": lambda d: _with_array(d, "ip_holder_ranges", 0, 10**5),
    "nearest-rank": lambda d: _with_array(d, "nearest_rank", 0, 0),
}


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_corrupt_file_gives_an_error_code_and_pythons_message(probe_pkgconfig, tmp_path, case):
    path = tmp_path / f"{case}.aegc"
    path.write_bytes(CORRUPTIONS[case](_small_file(tmp_path)))
    with pytest.raises(CompiledFileError) as info:
        af.load_compiled(path)
    result = _run([str(probe_pkgconfig), "open", str(path)])
    assert result.returncode == 0, result.stderr  # no crash, and *out is NULL on failure
    status, message = result.stdout.split("\n")[:2]
    assert status == "AEGISFWD_E_CORRUPT_FILE"
    assert message == str(info.value)
    # The same C++ loader from Python, on the bytes (no path in the message).
    data = np.frombuffer(path.read_bytes(), dtype=np.uint8).copy()
    with pytest.raises(CompiledFileError) as from_bytes:
        af.CompiledTopology.from_bytes(data.tobytes())
    with pytest.raises(ValueError, match=".") as from_cpp:
        _core.compiled.check_compiled(data)
    assert str(from_cpp.value) == str(from_bytes.value)


def test_valid_small_file_and_missing_file(probe_pkgconfig, tmp_path):
    path = tmp_path / "ok.aegc"
    path.write_bytes(_small_file(tmp_path))
    assert _run([str(probe_pkgconfig), "open", str(path)]).stdout.split("\n")[0] == "AEGISFWD_OK"
    counts = _core.compiled.check_compiled(np.frombuffer(path.read_bytes(), dtype=np.uint8).copy())
    assert counts["servers"] == 5 and counts["pools"] == 1
    result = _run([str(probe_pkgconfig), "open", str(tmp_path / "absent.aegc")])
    status, message = result.stdout.split("\n")[:2]
    assert status == "AEGISFWD_E_IO" and "absent.aegc" in message and "No such file" in message


def test_abi_mismatch_is_refused(tmp_path, pkg_flags):
    """A program compiled with a header of another ABI version cannot open an engine."""
    include = tmp_path / "include"
    include.mkdir()
    header = (capi.include_dir() / "aegisfwd.h").read_text()
    abi = int(re.search(r"#define AEGISFWD_ABI_VERSION (\d+)", header).group(1))
    (include / "aegisfwd.h").write_text(
        header.replace(f"AEGISFWD_ABI_VERSION {abi}", f"AEGISFWD_ABI_VERSION {abi + 1}")
    )
    out = tmp_path / "probe_other_abi"
    _built(
        _run([_cc(), *STRICT, f"-I{include}", str(PROBE), "-o", str(out), *pkg_flags, "-lpthread", "-lm"]),
        "cc",
    )
    path = tmp_path / "ok.aegc"
    path.write_bytes(_small_file(tmp_path))
    status, message = _run([str(out), "open", str(path)]).stdout.split("\n")[:2]
    assert status == "AEGISFWD_E_ABI_MISMATCH"
    assert f"ABI version {abi + 1}" in message and f"implements ABI version {abi}" in message


def test_header_compiles_strictly_as_c99_and_cxx(tmp_path):
    src = tmp_path / "include_only.c"
    src.write_text(
        "#include <aegisfwd.h>\nint main(void) { return aegisfwd_abi_version() == AEGISFWD_ABI_VERSION ? 0 : 1; }\n"
    )
    _built(
        _run([_cc(), *STRICT, f"-I{capi.include_dir()}", "-c", str(src), "-o", str(tmp_path / "a.o")]),
        "cc -std=c99",
    )
    cxx = shutil.which(os.environ.get("CXX", "c++"))
    if cxx is not None:
        cpp = tmp_path / "include_only.cpp"
        cpp.write_text(src.read_text())
        flags = ["-std=c++11", "-Wall", "-Wextra", "-Werror", "-pedantic", f"-I{capi.include_dir()}"]
        _built(_run([cxx, *flags, "-c", str(cpp), "-o", str(tmp_path / "b.o")]), "c++ -std=c++11")


def test_library_exports_only_the_c_api():
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("nm (binutils) is not installed: cannot list the library's symbols")
    result = _run([nm, "-D", "--defined-only", str(capi.library_path())])
    _built(result, "nm")
    names = [line.split()[-1] for line in result.stdout.splitlines() if line.strip()]
    assert names and all(name.startswith("aegisfwd_") for name in names), names
    declared = set(re.findall(r"\b(aegisfwd_\w+)\(", (capi.include_dir() / "aegisfwd.h").read_text()))
    assert set(names) <= declared


def test_config_command_prints_the_installed_paths():
    from click.testing import CliRunner

    from aegisfwd.cli import main

    result = CliRunner().invoke(main, ["config", "--includedir", "--libdir", "--cmakedir", "--pkgconfigdir"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines == [
        str(capi.include_dir()),
        str(capi.library_dir()),
        str(capi.cmake_dir()),
        str(capi.pkgconfig_dir()),
    ]
    assert (Path(lines[0]) / "aegisfwd.h").is_file()
    assert (Path(lines[2]) / "aegisfwdConfig.cmake").is_file()
    assert (Path(lines[2]) / "aegisfwdConfigVersion.cmake").is_file()
    assert (Path(lines[3]) / "aegisfwd.pc").is_file()
    assert capi.library_path().is_file()
