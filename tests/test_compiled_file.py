"""The compiled file format (``docs/compiled-format.md``): round trips, and every kind of corruption.

A corrupt file must raise ``CompiledFileError`` naming what is wrong, never crash or mislead.
"""

from __future__ import annotations

import json
import pickle
import random
import struct
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from compiled_model import (  # tests/compiled_model.py
    assert_matches_model,
    assert_same_tables,
    spec_topology,
    synthetic_world,
)

from aegisfwd.compiled import (
    FORMAT_VERSION,
    CompiledTopology,
    compile_topology,
    load_compiled,
)
from aegisfwd.errors import CompiledFileError

# ---------------------------------------------------------------------------------------------
# file format: round trips
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compiled() -> CompiledTopology:
    return compile_topology(spec_topology())


@pytest.fixture(scope="module")
def data(compiled: CompiledTopology) -> bytes:
    return compiled.to_bytes()


def test_save_load_round_trip(tmp_path: Any, compiled: CompiledTopology, data: bytes) -> None:
    path = tmp_path / "t.aegis"
    compiled.save(path)
    assert path.read_bytes() == data
    assert [p.name for p in tmp_path.iterdir()] == ["t.aegis"]  # no temporary file left behind
    for kwargs in ({}, {"mmap": False}, {"verify": False}, {"mmap": False, "verify": False}):
        loaded = load_compiled(path, **kwargs)
        assert_same_tables(compiled, loaded)
        assert loaded.servers == compiled.servers and loaded.ips == compiled.ips
        for name, array in loaded.arrays.items():
            assert array.flags.c_contiguous and not array.flags.writeable, name
            if array.size:
                with pytest.raises(ValueError, match="read-only"):
                    array.reshape(-1)[0] = 0
        assert loaded.to_bytes() == data
    assert_matches_model(spec_topology(), load_compiled(path))


def test_mmap_arrays_are_views_into_the_file(tmp_path: Any, compiled: CompiledTopology) -> None:
    path = tmp_path / "t.aegis"
    compiled.save(path)
    loaded = load_compiled(path)
    servers = loaded["list_servers"]
    # A view into the mapping (no copy): its memory lies inside the mapped buffer.
    base = np.frombuffer(loaded._buffer, dtype=np.uint8)
    start = base.__array_interface__["data"][0]
    assert start <= servers.__array_interface__["data"][0] < start + base.nbytes
    assert servers.__array_interface__["data"][0] % 64 == 0  # 64-byte aligned, as the format says
    # Replacing the file (atomic rename) leaves the old mapping intact.
    compile_topology(spec_topology(pools=(), zones={})).save(path)
    assert load_compiled(path).counts["pools"] == 0
    assert_same_tables(compiled, loaded)


def test_from_bytes_accepts_buffers(compiled: CompiledTopology, data: bytes) -> None:
    for buffer in (data, bytearray(data), memoryview(data), memoryview(bytearray(data))):
        loaded = CompiledTopology.from_bytes(buffer)
        assert_same_tables(compiled, loaded)
        assert all(not array.flags.writeable for array in loaded.arrays.values())
    with pytest.raises(CompiledFileError, match="bytes-like"):
        CompiledTopology.from_bytes(12)  # type: ignore[arg-type]


def test_pickle_round_trip(compiled: CompiledTopology, data: bytes) -> None:
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        blob = pickle.dumps(compiled, protocol=protocol)
        assert len(blob) < len(data) + 200  # one flat buffer, nothing else
        loaded = pickle.loads(blob)
        assert_same_tables(compiled, loaded)
        assert loaded.topology is None
        assert pickle.loads(pickle.dumps(loaded)).to_bytes() == data


def test_save_failure_leaves_nothing(tmp_path: Any, compiled: CompiledTopology) -> None:
    with pytest.raises(FileNotFoundError):
        compiled.save(tmp_path / "missing-dir" / "t.aegis")
    assert list(tmp_path.iterdir()) == []


def test_to_bytes_is_deterministic() -> None:
    assert compile_topology(spec_topology()).to_bytes() == compile_topology(spec_topology()).to_bytes()


# ---------------------------------------------------------------------------------------------
# file format: corruption
# ---------------------------------------------------------------------------------------------

PREFIX = struct.Struct("<8sIIQII")


def split(data: bytes) -> tuple[tuple[Any, ...], dict[str, Any]]:
    prefix = PREFIX.unpack_from(data, 0)
    return prefix, json.loads(data[32 : 32 + prefix[2]])


def rewrite_header(data: bytes, edit: Callable[[dict[str, Any]], Any]) -> bytes:
    """Apply ``edit`` to the header JSON and write it back with a valid header CRC."""
    (magic, version, hlen, total, _, payload_crc), header = split(data)
    edit(header)
    text = json.dumps(header, separators=(",", ":")).encode()
    if len(text) > hlen:  # make room by dropping the metadata
        header["meta"] = {}
        text = json.dumps(header, separators=(",", ":")).encode()
    assert len(text) <= hlen
    text = text.ljust(hlen)
    return PREFIX.pack(magic, version, hlen, total, zlib.crc32(text), payload_crc) + text + data[32 + hlen :]


def rewrite_prefix(data: bytes, **fields: Any) -> bytes:
    names = ("magic", "version", "hlen", "total", "header_crc", "payload_crc")
    values = dict(zip(names, PREFIX.unpack_from(data, 0), strict=True))
    values.update(fields)
    return PREFIX.pack(*(values[n] for n in names)) + data[32:]


def rejected(buffer: bytes, match: str, *, verify: bool = True) -> CompiledFileError:
    with pytest.raises(CompiledFileError, match=match) as info:
        CompiledTopology.from_bytes(buffer, verify=verify)
    return info.value


def test_truncated_at_many_lengths(tmp_path: Any, data: bytes) -> None:
    (_, _, hlen, total, _, _), _ = split(data)
    assert total == len(data)
    for n in sorted(
        {
            0,
            1,
            7,
            8,
            9,
            31,
            32,
            33,
            100,
            hlen,
            hlen + 31,
            hlen + 32,
            hlen + 33,
            total // 2,
            total - 64,
            total - 1,
        }
    ):
        err = rejected(data[:n], "truncated")
        assert str(n) in str(err)
        path = tmp_path / f"cut{n}"
        path.write_bytes(data[:n])
        for mmap in (True, False):
            with pytest.raises(CompiledFileError, match="truncated") as info:
                load_compiled(path, mmap=mmap)
            assert str(path) in str(info.value)
    rejected(data + b"\0" * 64, "trailing data")


def test_wrong_magic_and_version(data: bytes) -> None:
    rejected(b"PK\x03\x04" + data[4:], "bad magic")
    rejected(b"hello", "truncated")  # too short to tell: not a crash either
    err = rejected(rewrite_prefix(data, version=FORMAT_VERSION + 1), "unsupported format version")
    assert str(FORMAT_VERSION + 1) in str(err)
    rejected(rewrite_prefix(data, hlen=len(data)), "header length")
    rejected(rewrite_prefix(data, hlen=2**32 - 1), "header length")
    rejected(rewrite_prefix(data, total=len(data) + 1), "truncated")
    rejected(rewrite_prefix(data, total=2**64 - 1), "truncated")


def test_bit_flips_header_and_payload(data: bytes) -> None:
    (_, _, hlen, total, _, _), _ = split(data)
    payload_start = 32 + hlen
    rejected(flip(data, 32 + 5, 3), "header CRC")
    rejected(flip(data, 32 + hlen - 1, 0), "header CRC")  # the space padding is covered too
    rejected(flip(data, payload_start, 0), "payload CRC")
    rejected(flip(data, total - 1, 7), "payload CRC")  # final alignment padding too
    rejected(flip(data, 25, 1), "header CRC")  # the stored CRCs themselves
    rejected(flip(data, 29, 1), "payload CRC")
    # With verify=True every single-bit flip anywhere is caught.
    rng = random.Random(1)
    for pos in list(range(32)) + rng.sample(range(32, total), 300):
        rejected(
            flip(data, pos, rng.randrange(8)), "CRC|bad magic|format version|truncated|trailing|header length"
        )


def flip(data: bytes, pos: int, bit: int) -> bytes:
    out = bytearray(data)
    out[pos] ^= 1 << bit
    return bytes(out)


def test_payload_flips_without_crc_never_crash(data: bytes) -> None:
    """verify=False: a flipped payload loads or raises CompiledFileError, nothing else."""
    (_, _, hlen, total, _, _), _ = split(data)
    rng = random.Random(2)
    caught = 0
    for _ in range(400):
        pos = rng.randrange(32 + hlen, total)
        try:
            CompiledTopology.from_bytes(flip(data, pos, rng.randrange(8)), verify=False)
        except CompiledFileError:
            caught += 1
    assert caught > 50  # index arrays are much of the payload: many flips are caught by range checks


def test_header_json_fuzz_never_crashes(data: bytes) -> None:
    """Corrupt header bytes with a matching CRC: CompiledFileError, never another exception."""
    (magic, version, hlen, total, _, payload_crc), _ = split(data)
    rng = random.Random(3)
    for _ in range(300):
        text = bytearray(data[32 : 32 + hlen])
        for _ in range(rng.randint(1, 3)):
            text[rng.randrange(hlen)] = rng.choice(b'0123456789-:,{}[]"aez \xff')
        fixed = (
            PREFIX.pack(magic, version, hlen, total, zlib.crc32(text), payload_crc)
            + bytes(text)
            + data[32 + hlen :]
        )
        try:
            CompiledTopology.from_bytes(fixed)
        except CompiledFileError:
            pass


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(header: dict[str, Any]) -> None:
        node = header
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


def _delete(*path: Any) -> Callable[[dict[str, Any]], None]:
    def edit(header: dict[str, Any]) -> None:
        node = header
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return edit


def _rename(old: str, new: str) -> Callable[[dict[str, Any]], None]:
    def edit(header: dict[str, Any]) -> None:
        header["arrays"][new] = header["arrays"].pop(old)

    return edit


def _overlap(header: dict[str, Any]) -> None:
    header["arrays"]["server_key"]["offset"] = header["arrays"]["server_dc"]["offset"]


def _shift(name: str, by: int) -> Callable[[dict[str, Any]], None]:
    def edit(header: dict[str, Any]) -> None:
        header["arrays"][name]["offset"] += by

    return edit


HEADER_CASES: list[tuple[str, Callable[[dict[str, Any]], Any], str]] = [
    ("missing array", _delete("arrays", "list_bits"), "array 'list_bits' is missing"),
    ("unexpected array", _rename("list_bits", "list_bitz"), "unexpected array 'list_bitz'"),
    ("wrong dtype", _set(("arrays", "server_dc", "dtype"), "<u4"), "'server_dc' has dtype '<u4'"),
    ("big-endian dtype", _set(("arrays", "server_key", "dtype"), ">u8"), "'server_key' has dtype"),
    (
        "wrong shape",
        _set(("arrays", "server_dc", "shape"), [4]),
        "'server_dc' has shape \\[4\\], counts say \\[5\\]",
    ),
    ("shape not a list", _set(("arrays", "server_dc", "shape"), 5), "'server_dc' has shape 5"),
    (
        "bool in shape",
        _set(("arrays", "ip_holder_ranges", "shape"), [3, True]),
        "'ip_holder_ranges' has shape",
    ),
    ("wrong nbytes", _set(("arrays", "server_dc", "nbytes"), 16), "'server_dc' has nbytes 16"),
    ("misaligned offset", _shift("server_dc", 4), "'server_dc' offset .* is not 64-byte aligned"),
    ("offset past end", _shift("group_layout", 1 << 20), "'group_layout' at .* lies outside the payload"),
    (
        "offset in header",
        _set(("arrays", "server_dc", "offset"), 0),
        "'server_dc' at \\[0, 20\\) lies outside",
    ),
    ("negative offset", _set(("arrays", "server_dc", "offset"), -64), "'server_dc' .* outside"),
    ("overlap", _overlap, "overlap"),
    ("count negative", _set(("counts", "servers"), -1), "count 'servers' is -1"),
    ("count missing", _delete("counts", "lists"), "count 'lists' is None"),
    ("count not int", _set(("counts", "ips"), 3.0), "count 'ips' is 3.0"),
    ("count huge", _set(("counts", "servers"), 2**40), "count 'servers' .* does not fit int32"),
    ("groups vs pools", _set(("counts", "groups"), 3), "3 groups for 1 pools"),
    ("counts vs shapes", _set(("counts", "servers"), 6), "has shape \\[5\\], counts say \\[6\\]"),
    ("hash scheme", _set(("hash_scheme",), 2), "hash scheme 2 is not supported"),
    ("hash scheme bool", _set(("hash_scheme",), True), "hash scheme True"),
    ("distance unit", _set(("distance_unit",), "mi"), "distance unit 'mi'"),
    ("meta", _set(("meta",), []), "'meta' is not an object"),
    ("arrays not a dict", _set(("arrays",), []), "'arrays' is not an object"),
    ("entry not a dict", _set(("arrays", "server_dc"), 1), "'server_dc': entry is not an object"),
    ("missing key", _delete("counts"), "missing 'counts'"),
]


@pytest.mark.parametrize(
    ("edit", "match"), [(e, m) for _, e, m in HEADER_CASES], ids=[c[0] for c in HEADER_CASES]
)
def test_header_schema(data: bytes, edit: Callable[[dict[str, Any]], Any], match: str) -> None:
    err = rejected(rewrite_header(data, edit), match)
    assert str(err).startswith("header schema: ")


def test_header_not_json_or_not_an_object(data: bytes) -> None:
    (magic, version, hlen, total, _, payload_crc), _ = split(data)
    for text, match in (
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
    ):
        text = text.ljust(hlen)
        rejected(
            PREFIX.pack(magic, version, hlen, total, zlib.crc32(text), payload_crc)
            + text
            + data[32 + hlen :],
            match,
        )


def doctored(c: CompiledTopology, change: Callable[[dict[str, np.ndarray]], Any]) -> bytes:
    """Bytes of ``c`` with its arrays changed by ``change``: valid CRCs, valid header, bad contents."""
    arrays = {name: np.array(array) for name, array in c.arrays.items()}
    change(arrays)
    return CompiledTopology(
        arrays, counts=c.counts, meta=c.meta, distance_unit=c.distance_unit, hash_scheme=c.hash_scheme
    ).to_bytes()


def _put(name: str, index: Any, value: Any) -> Callable[[dict[str, np.ndarray]], None]:
    def change(arrays: dict[str, np.ndarray]) -> None:
        arrays[name][index] = value

    return change


def _swap(name: str, i: Any, j: Any) -> Callable[[dict[str, np.ndarray]], None]:
    def change(arrays: dict[str, np.ndarray]) -> None:
        a = arrays[name]
        a[i], a[j] = a[j].copy(), a[i].copy()

    return change


# On spec_topology(): L=3, D=3, S=5, P=1, I=3, lists 4, layouts 2.
DOCTORED_CASES: list[tuple[str, Callable[[dict[str, np.ndarray]], Any], str]] = [
    (
        "server_dc past D",
        _put("server_dc", 0, 70000),
        "array 'server_dc' holds index 70000 outside \\[0, 3\\)",
    ),
    (
        "negative server_location",
        _put("server_location", 1, -1),
        "array 'server_location' holds index -1 outside",
    ),
    ("dc_location past L", _put("dc_location", 2, 3), "array 'dc_location' holds index 3 outside \\[0, 3\\)"),
    ("server_dc inconsistent", _put("server_dc", 0, 2), "'server_dc' disagrees with 'dc_server_start'"),
    ("dc_server_start end", _put("dc_server_start", 3, 4), "'dc_server_start' ends at 4, expected 5"),
    ("dc_server_start start", _put("dc_server_start", 0, 1), "'dc_server_start' starts at 1"),
    (
        "dc_server_start decreasing",
        _put("dc_server_start", 1, 4),
        "'dc_server_start' decreases at row 2",
    ),
    ("location_dc_start", _put("location_dc_start", 1, 5), "'location_dc_start' decreases"),
    ("state code", _put("server_initial_state", 0, 3), "'server_initial_state' holds index 3"),
    ("ip_pool past P", _put("ip_pool", 2, 1), "'ip_pool' holds index 1 outside \\[0, 1\\)"),
    ("family", _put("ip_family", 0, 5), "'ip_family' holds 5"),
    ("prefix length", _put("ip_prefix_length", 0, 33), "'ip_prefix_length' holds 33 for an IPv4"),
    (
        "holder range past S",
        _put("ip_holder_ranges", (2, 1), 6),
        "'ip_holder_ranges' holds index 6 outside \\[0, 6\\)",
    ),
    (
        "holder range reversed",
        _put("ip_holder_ranges", (0, 0), 3),
        "'ip_holder_ranges' is not strictly ascending",
    ),
    ("holder_start", _put("ip_holder_start", 3, 2), "'ip_holder_start' ends at 2, expected 3"),
    ("group_ips past I", _put("group_ips", 0, 3), "'group_ips' holds index 3"),
    ("group_ips wrong group", _swap("group_ips", 1, 2), "'group_ips' disagrees with the pool and family"),
    ("group_ip_start", _put("group_ip_start", 1, 1), "'group_ips' disagrees"),
    ("negative distance", _put("location_distance", (0, 1), -1.0), "negative distance"),
    ("diagonal", _put("location_distance", (1, 1), 2.0), "non-zero diagonal"),
    ("nearest_order past L", _put("nearest_order", (0, 0), 3), "'nearest_order' holds index 3"),
    ("nearest_order count", _put("nearest_order", (0, 1), -1), "'nearest_order' does not list as many"),
    (
        "nearest_order duplicate",
        _put("nearest_order", (0, 1), 1),
        "'nearest_order' and 'nearest_rank' disagree",
    ),
    ("nearest unsorted", _swap("nearest_order", (0, 0), (0, 1)), "disagree"),
    ("nearest_rank", _put("nearest_rank", (0, 0), 0), "ranks an unreachable location"),
    ("nearest_rank range", _put("nearest_rank", (0, 1), -5), "'nearest_rank' holds a value outside"),
    ("zone_pool", _put("zone_pool", 1, 1), "'zone_pool' holds index 1 outside \\[0, 1\\)"),
    ("id offsets", _put("server_id_offsets", 5, 10**6), "'server_id_offsets' ends at 1000000"),
    ("list_location past L", _put("list_location", 0, 9), "'list_location' holds index 9"),
    (
        "list_servers past S",
        _put("list_servers", 0, 60000),
        "'list_servers' holds index 60000 outside \\[0, 5\\)",
    ),
    (
        "list server in another location",
        _put("list_location", 0, 1),
        "'list_servers' holds a server of list 0 outside its location 1",
    ),
    ("list servers unsorted", _swap("list_servers", 2, 3), "'list_servers' is not strictly ascending"),
    ("list_server_start", _put("list_server_start", 1, 0), "gives list 0 no server"),
    ("list_bit_start", _put("list_bit_start", 4, 3), "'list_bit_start' ends at 3"),
    (
        "bitset padding bit",
        _put("list_bits", 0, np.uint64(1) << np.uint64(40)),
        "sets a bit past the last server",
    ),
    ("layout_list past C", _put("layout_list", 0, 4), "'layout_list' holds index 4 outside \\[0, 4\\)"),
    ("layout_location past L", _put("layout_location", 3, 7), "'layout_location' holds index 7"),
    ("layout list elsewhere", _put("layout_list", 0, 1), "'layout_list' disagrees with 'layout_location'"),
    ("layout_start", _put("layout_start", 1, 5), "'layout_start' decreases at row 2"),
    ("group_layout past Y", _put("group_layout", 0, 2), "'group_layout' holds index 2 outside \\[-1, 2\\)"),
    ("group_layout below -1", _put("group_layout", 1, -2), "'group_layout' holds index -2"),
]


@pytest.mark.parametrize(
    ("change", "match"), [(c, m) for _, c, m in DOCTORED_CASES], ids=[c[0] for c in DOCTORED_CASES]
)
def test_doctored_payload_fails_range_checks(compiled: CompiledTopology, change: Any, match: str) -> None:
    bad = doctored(compiled, change)
    for verify in (True, False):  # the CRC is valid: only the range checks can tell
        rejected(bad, match, verify=verify)


def test_doctored_file_on_disk(tmp_path: Any, compiled: CompiledTopology) -> None:
    path = tmp_path / "bad.aegis"
    path.write_bytes(doctored(compiled, _put("server_dc", 0, 70000)))
    with pytest.raises(CompiledFileError, match="array 'server_dc' holds index 70000 outside \\[0, 3\\)"):
        load_compiled(path)


def test_doctored_ids_that_are_not_utf8(compiled: CompiledTopology) -> None:
    loaded = CompiledTopology.from_bytes(doctored(compiled, _put("server_id_bytes", 0, 0xFF)))
    with pytest.raises(CompiledFileError, match="'server_id_bytes' is not valid UTF-8"):
        _ = loaded.servers


def test_large_payload_crc_on_a_second_thread() -> None:
    """Payloads over 1 MiB take the threaded CRC path: it must catch corruption all the same."""
    topo = synthetic_world(locations=20, servers=3000, pools=3000, seed=5)
    data = compile_topology(topo).to_bytes()
    assert len(data) > 1 << 20
    total = len(data)
    assert_same_tables(CompiledTopology.from_bytes(data), compile_topology(topo))
    rejected(flip(data, total - 100, 2), "payload CRC")
    # A flip in an index array: the CRC error wins over the range error it also causes.
    rejected(flip(data, split(data)[1]["arrays"]["server_dc"]["offset"] + 3, 6), "payload CRC")


def test_misaligned_read_only_buffer_is_copied_not_refused(compiled: CompiledTopology, data: bytes) -> None:
    """The C++ loader reads arrays in place and needs 8-byte alignment: a read-only slice that starts
    elsewhere (here one byte into a bytes object) is copied to aligned memory first."""
    shifted = memoryview(b"x" + data)[1:]
    assert shifted.readonly
    loaded = CompiledTopology.from_bytes(shifted)
    assert_same_tables(loaded, compiled)
    assert all(a.ctypes.data % 8 == 0 for a in loaded.arrays.values() if a.size)
    rejected(memoryview(b"x" + flip(data, len(data) - 1, 0))[1:], "payload CRC")
