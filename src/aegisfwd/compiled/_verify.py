"""Verification of a compiled file: prefix, header schema, checksums, every index range, and the
C++ validator's cross-check of derived tables against facts and of unique ids.

The C++ core reads the arrays through raw pointers, so nothing is handed on before every index it
could follow is known to be in range: a corrupt file raises ``CompiledFileError``, never leads to a
read past a buffer.
"""

from __future__ import annotations

import json
import threading
import zlib
from collections.abc import Mapping
from itertools import pairwise
from typing import Any, TypeGuard

import numpy as np

from .. import _core, _hashing
from ..errors import CompiledFileError
from ._format import (
    ALIGN,
    ARRAY_DTYPE,
    ARRAY_SPECS,
    COUNT_NAMES,
    DISTANCE_UNITS,
    FORMAT_VERSION,
    ID_KINDS,
    INT32_COUNTS,
    INT32_MAX,
    MAGIC,
    PREFIX,
    PREFIX_SIZE,
    align,
    expected_shape,
)

__all__ = ["open_tables"]

# Payloads at least this large get their CRC computed on a second thread, alongside the range checks.
_PARALLEL_CRC_BYTES = 1 << 20


def _fail(message: str) -> CompiledFileError:
    return CompiledFileError(message)


def open_tables(buffer: Any, *, verify: bool) -> tuple[dict[str, np.ndarray], dict[str, int], dict[str, Any]]:
    """Check a compiled file held in ``buffer``; return its arrays (read-only views), counts and header.

    Checks magic, version, length, header CRC and schema, the payload CRC (unless ``verify=False``)
    and every index range the engines rely on; raises ``CompiledFileError`` naming the first problem.
    """
    try:
        view = memoryview(buffer)
    except TypeError:
        raise _fail(f"expected a bytes-like buffer, got {type(buffer).__name__}") from None
    if view.ndim != 1 or view.itemsize != 1 or view.format not in ("B", "b", "c"):
        if not view.c_contiguous:
            raise _fail("the buffer is not contiguous")
        view = view.cast("B")
    n = view.nbytes
    if n >= len(MAGIC) and bytes(view[: len(MAGIC)]) != MAGIC:
        raise _fail(f"bad magic {bytes(view[: len(MAGIC)])!r}: not a compiled aegisfwd topology")
    if n < PREFIX_SIZE:
        raise _fail(f"truncated: file has {n} bytes, fewer than the {PREFIX_SIZE}-byte prefix")
    _, version, hlen, total, header_crc, payload_crc = PREFIX.unpack_from(view, 0)
    if version != FORMAT_VERSION:
        raise _fail(f"unsupported format version {version} (this build reads version {FORMAT_VERSION})")
    if n < total:
        raise _fail(f"truncated: file has {n} bytes, header says {total}")
    if n > total:
        raise _fail(f"file has {n} bytes, header says {total}: trailing data")
    if PREFIX_SIZE + hlen > total:
        raise _fail(f"header length {hlen} runs past the end of the {total}-byte file")
    header_bytes = view[PREFIX_SIZE : PREFIX_SIZE + hlen]
    if zlib.crc32(header_bytes) != header_crc:
        raise _fail("header CRC mismatch: the header is corrupt")
    try:
        header = json.loads(bytes(header_bytes).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _fail(f"header is not valid JSON: {exc}") from None
    payload_start = align(PREFIX_SIZE + hlen)
    counts, entries = _check_header(header, payload_start, total)
    # The payload CRC (zlib releases the GIL) runs on a second thread while this one builds the
    # views and checks index ranges (numpy releases the GIL too): together they cost about as much
    # as the slower of the two. The range checks are safe on any bytes (each index array is checked
    # before it is used to index another), and a CRC mismatch is reported in preference to
    # whatever the range checks found, since it is the root cause.
    crc: list[int] = []
    worker = None
    if verify:
        payload = view[payload_start:total]
        if len(payload) >= _PARALLEL_CRC_BYTES:
            worker = threading.Thread(target=lambda: crc.append(zlib.crc32(payload)), daemon=True)
            worker.start()
        else:
            crc.append(zlib.crc32(payload))
    range_error: CompiledFileError | None = None
    try:
        arrays = {}
        for name, dtype, _ in ARRAY_SPECS:
            entry = entries[name]
            shape = tuple(entry["shape"])
            count = 1
            for dim in shape:
                count *= dim
            array = np.frombuffer(view, dtype=np.dtype(dtype), count=count, offset=entry["offset"])
            array = array.reshape(shape)
            if array.flags.writeable:
                array.flags.writeable = False
            arrays[name] = array
        _check_ranges(arrays, counts)
        _check_in_core(arrays)
    except CompiledFileError as exc:
        range_error = exc
    finally:
        if worker is not None:
            worker.join()
    if verify and crc[0] != payload_crc:
        raise _fail("payload CRC mismatch: the tables are corrupt")
    if range_error is not None:
        raise range_error
    return arrays, counts, header


def _check_in_core(arrays: dict[str, np.ndarray]) -> None:
    """The C++ validator (cpp/include/aegisfwd/tables.hpp), the one every engine runs too: the
    structure again, then the derived candidate tables against the holder facts (so that no
    answer can pair a server with an IP it does not hold) and unique ids of every kind. It runs
    here so that a forged file fails at load, whichever engine would read it later."""
    try:
        _core.compiled.validate_tables(arrays)
    except ValueError as exc:
        raise _fail(str(exc)) from None


def _is_int(value: Any) -> TypeGuard[int]:
    return type(value) is int


def _check_header(
    header: Any, payload_start: int, total: int
) -> tuple[dict[str, int], dict[str, dict[str, Any]]]:
    if not isinstance(header, dict):
        raise _fail("header schema: the header is not a JSON object")
    for key in ("hash_scheme", "distance_unit", "counts", "meta", "arrays"):
        if key not in header:
            raise _fail(f"header schema: missing {key!r}")
    if header["hash_scheme"] != _hashing.HASH_SCHEME_VERSION or not _is_int(header["hash_scheme"]):
        raise _fail(
            f"header schema: hash scheme {header['hash_scheme']!r} is not supported "
            f"(this build implements {_hashing.HASH_SCHEME_VERSION})"
        )
    if header["distance_unit"] not in DISTANCE_UNITS:
        raise _fail(f"header schema: distance unit {header['distance_unit']!r} is not km or ms")
    if not isinstance(header["meta"], dict):
        raise _fail("header schema: 'meta' is not an object")
    counts = header["counts"]
    if not isinstance(counts, dict):
        raise _fail("header schema: 'counts' is not an object")
    for name in COUNT_NAMES:
        value = counts.get(name)
        if not _is_int(value) or value < 0:
            raise _fail(f"header schema: count {name!r} is {value!r}, expected an integer >= 0")
        if name in INT32_COUNTS and value >= INT32_MAX:
            raise _fail(f"header schema: count {name!r} = {value} does not fit int32 indices")
    if counts["groups"] != 2 * counts["pools"]:
        raise _fail(
            f"header schema: {counts['groups']} groups for {counts['pools']} pools (expected 2 per pool)"
        )
    entries = header["arrays"]
    if not isinstance(entries, dict):
        raise _fail("header schema: 'arrays' is not an object")
    for name in entries:
        if name not in ARRAY_DTYPE:
            raise _fail(f"header schema: unexpected array {name!r}")
    spans = []
    for name, dtype, dims in ARRAY_SPECS:
        entry = entries.get(name)
        if entry is None:
            raise _fail(f"header schema: array {name!r} is missing")
        if not isinstance(entry, dict):
            raise _fail(f"header schema: array {name!r}: entry is not an object")
        if entry.get("dtype") != dtype:
            raise _fail(f"header schema: array {name!r} has dtype {entry.get('dtype')!r}, expected {dtype!r}")
        shape = entry.get("shape")
        expected = expected_shape(dims, counts)
        if not isinstance(shape, list) or not all(_is_int(d) for d in shape) or tuple(shape) != expected:
            raise _fail(f"header schema: array {name!r} has shape {shape!r}, counts say {list(expected)}")
        offset, nbytes = entry.get("offset"), entry.get("nbytes")
        size = np.dtype(dtype).itemsize
        for dim in expected:
            size *= dim
        if not _is_int(nbytes) or nbytes != size:
            raise _fail(f"header schema: array {name!r} has nbytes {nbytes!r}, its shape needs {size}")
        if not _is_int(offset) or offset % ALIGN:
            raise _fail(f"header schema: array {name!r} offset {offset!r} is not {ALIGN}-byte aligned")
        if offset < payload_start or offset + nbytes > total:
            raise _fail(
                f"header schema: array {name!r} at [{offset}, {offset + nbytes}) lies outside the "
                f"payload [{payload_start}, {total})"
            )
        if nbytes:
            spans.append((offset, offset + nbytes, name))
    spans.sort()
    for (_, end_a, a), (start_b, _, b) in pairwise(spans):
        if start_b < end_a:
            raise _fail(f"header schema: arrays {a!r} and {b!r} overlap")
    return counts, entries


def _range_error(name: str, value: Any, lo: int, hi: int) -> CompiledFileError:
    return _fail(f"array {name!r} holds index {value} outside [{lo}, {hi})")


def _check_in(name: str, array: np.ndarray, lo: int, hi: int) -> None:
    """Every element in ``[lo, hi)``."""
    if array.size == 0:
        return
    low, high = array.min(), array.max()
    if low < lo:
        raise _range_error(name, int(low), lo, hi)
    if high >= hi:
        raise _range_error(name, int(high), lo, hi)


def _check_starts(name: str, start: np.ndarray, end: int) -> None:
    """A CSR start array: starts at 0, never decreases, ends at ``end``."""
    if int(start[0]) != 0:
        raise _fail(f"array {name!r} starts at {int(start[0])}, not 0")
    if int(start[-1]) != end:
        raise _fail(f"array {name!r} ends at {int(start[-1])}, expected {end}")
    if start.size > 1 and bool((start[1:] < start[:-1]).any()):
        k = int(np.flatnonzero(start[1:] < start[:-1])[0])
        raise _fail(f"array {name!r} decreases at position {k + 1}")


def _check_equal(name: str, array: np.ndarray, expected: np.ndarray, what: str) -> None:
    if not np.array_equal(array, expected):
        k = int(np.flatnonzero(array != expected)[0])
        raise _fail(f"array {name!r} disagrees with {what} at position {k}")


def _check_strictly_ascending_within(name: str, values: np.ndarray, start: np.ndarray) -> None:
    """Within each CSR segment (``start`` = segment starts), the values strictly ascend."""
    n = values.size
    if n < 2:
        return
    # A value may fail to exceed the one before it only where a segment begins.
    bad = values[1:] <= values[:-1]
    heads = np.asarray(start)
    bad[heads[(heads > 0) & (heads < n)] - 1] = False
    if bad.any():
        k = int(np.flatnonzero(bad)[0]) + 1
        raise _fail(f"array {name!r} is not strictly ascending within its segment at position {k}")


def _check_ranges(a: Mapping[str, np.ndarray], counts: Mapping[str, int]) -> None:
    """Index ranges and the structural invariants the engines rely on, all vectorised."""
    L, D, S, P = counts["locations"], counts["dcs"], counts["servers"], counts["pools"]
    I, G, C, Y = counts["ips"], counts["groups"], counts["lists"], counts["layouts"]

    # Tree: each location and DC is one contiguous range of servers.
    _check_starts("location_dc_start", a["location_dc_start"], D)
    _check_starts("dc_server_start", a["dc_server_start"], S)
    _check_starts("location_server_start", a["location_server_start"], S)
    _check_in("dc_location", a["dc_location"], 0, L)
    _check_in("server_dc", a["server_dc"], 0, D)
    _check_in("server_location", a["server_location"], 0, L)
    _check_equal(
        "dc_location",
        a["dc_location"],
        np.repeat(np.arange(L, dtype=np.int32), np.diff(a["location_dc_start"])),
        "'location_dc_start'",
    )
    _check_equal(
        "server_dc",
        a["server_dc"],
        np.repeat(np.arange(D, dtype=np.int32), np.diff(a["dc_server_start"])),
        "'dc_server_start'",
    )
    _check_equal("server_location", a["server_location"], a["dc_location"][a["server_dc"]], "'dc_location'")
    _check_equal(
        "location_server_start",
        a["location_server_start"],
        a["dc_server_start"][a["location_dc_start"]],
        "'dc_server_start'",
    )
    _check_in("server_initial_state", a["server_initial_state"], 0, 3)

    # IPs and their holders.
    _check_in("ip_pool", a["ip_pool"], 0, P)
    family = a["ip_family"]
    if family.size and not bool(((family == 4) | (family == 6)).all()):
        raise _fail(f"array 'ip_family' holds {int(family[(family != 4) & (family != 6)][0])}, not 4 or 6")
    limit = np.where(family == 4, 32, 128)
    if bool((a["ip_prefix_length"] > limit).any()):
        k = int(np.flatnonzero(a["ip_prefix_length"] > limit)[0])
        raise _fail(
            f"array 'ip_prefix_length' holds {int(a['ip_prefix_length'][k])} for an IPv{int(family[k])} entry"
        )
    if bool((a["ip_pool"][1:] < a["ip_pool"][:-1]).any()):
        raise _fail("array 'ip_pool' is not sorted by pool")
    R = counts["holder_ranges"]
    _check_starts("ip_holder_start", a["ip_holder_start"], R)
    ranges = a["ip_holder_ranges"]
    _check_in("ip_holder_ranges", ranges, 0, S + 1)
    # Per IP, the flattened [first, end, first, end, ...] strictly ascend: every range is non-empty,
    # ranges are sorted and disjoint, and no two touch.
    _check_strictly_ascending_within(
        "ip_holder_ranges", ranges.reshape(-1), a["ip_holder_start"].astype(np.int64) * 2
    )

    # Groups.
    _check_starts("group_ip_start", a["group_ip_start"], I)
    _check_in("group_ips", a["group_ips"], 0, I)
    if I:
        ip_group = 2 * a["ip_pool"].astype(np.int64) + (family == 6)
        _check_equal(
            "group_ips",
            ip_group[a["group_ips"]],
            np.repeat(np.arange(G, dtype=np.int64), np.diff(a["group_ip_start"])),
            "the pool and family of its IPs",
        )
        _check_strictly_ascending_within("group_ips", a["group_ips"], a["group_ip_start"])

    # Distances.
    distance = a["location_distance"]
    if L:
        if bool((distance < 0).any()):
            raise _fail("array 'location_distance' holds a negative distance")
        if bool((np.diagonal(distance) != 0).any()):
            raise _fail("array 'location_distance' has a non-zero diagonal")
    order, rank = a["nearest_order"], a["nearest_rank"]
    _check_in("nearest_order", order, -1, L)
    if L:
        unreachable = np.isnan(distance)
        np.fill_diagonal(unreachable, True)
        position = np.arange(L, dtype=np.int32)[None, :]
        valid = position < (L - unreachable.sum(axis=1))[:, None]
        if not np.array_equal(order >= 0, valid):
            raise _fail("array 'nearest_order' does not list as many locations as are reachable")
        if bool(((rank != INT32_MAX) & ((rank < 0) | (rank >= L))).any()):
            raise _fail(f"array 'nearest_rank' holds a value outside [0, {L}) other than INT32_MAX")
        at = np.maximum(order, 0)
        # rank[l, order[l, j]] == j makes row l of nearest_order a list of distinct locations; with
        # unreachable ranks at INT32_MAX they are all reachable, hence exactly the reachable ones.
        if bool(((np.take_along_axis(rank, at, axis=1) != position) & valid).any()):
            raise _fail("arrays 'nearest_order' and 'nearest_rank' disagree")
        if bool(((rank != INT32_MAX) & unreachable).any()):
            raise _fail("array 'nearest_rank' ranks an unreachable location")
        d = np.take_along_axis(distance, at, axis=1)
        later = (d[:, 1:] < d[:, :-1]) | ((d[:, 1:] == d[:, :-1]) & (order[:, 1:] <= order[:, :-1]))
        if bool((later & valid[:, 1:]).any()):
            raise _fail("array 'nearest_order' is not sorted by (distance, location)")

    _check_in("zone_pool", a["zone_pool"], 0, P)

    # Id string tables.
    for kind, _ in ID_KINDS:
        _check_starts(f"{kind}_id_offsets", a[f"{kind}_id_offsets"], counts[f"{kind}_id_bytes"])

    # Candidate lists and their bitsets.
    list_location = a["list_location"]
    _check_in("list_location", list_location, 0, L)
    _check_starts("list_server_start", a["list_server_start"], counts["list_servers"])
    list_servers = a["list_servers"]
    _check_in("list_servers", list_servers, 0, S)
    loc_start = a["location_server_start"].astype(np.int64)
    if list_servers.size:
        list_start = a["list_server_start"]
        if bool((list_start[1:] == list_start[:-1]).any()):
            c = int(np.flatnonzero(list_start[1:] == list_start[:-1])[0])
            raise _fail(f"array 'list_server_start' gives list {c} no server")
        _check_strictly_ascending_within("list_servers", list_servers, list_start)
        # Ascending within a list, so its first and last servers bound it.
        low, high = list_servers[list_start[:-1]], list_servers[list_start[1:] - 1]
        outside = (low < loc_start[list_location]) | (high >= loc_start[list_location + 1])
        if outside.any():
            c = int(np.flatnonzero(outside)[0])
            raise _fail(
                f"array 'list_servers' holds a server of list {c} outside its location "
                f"{int(list_location[c])}"
            )
    elif C:
        raise _fail("array 'list_server_start' gives the lists no server")
    bit_start = a["list_bit_start"]
    _check_starts("list_bit_start", bit_start, counts["list_words"])
    location_size = np.diff(loc_start)
    location_words = (location_size + 63) // 64
    _check_equal(
        "list_bit_start",
        np.diff(bit_start),
        location_words[list_location],
        "the word counts of the lists' locations",
    )
    if C:
        # No bit past the last server of the location may be set (every list has >= 1 word here,
        # since its servers lie inside its location).
        rem = (location_size % 64).astype(np.uint64)
        tail = np.where(rem == 0, np.uint64(0), ~((np.uint64(1) << rem) - np.uint64(1)))
        if bool((a["list_bits"][bit_start[1:] - 1] & tail[list_location]).any()):
            raise _fail("array 'list_bits' sets a bit past the last server of a location")

    # Layouts.
    _check_starts("layout_start", a["layout_start"], counts["layout_entries"])
    _check_in("layout_location", a["layout_location"], 0, L)
    _check_in("layout_list", a["layout_list"], 0, C)
    _check_strictly_ascending_within("layout_location", a["layout_location"], a["layout_start"])
    if counts["layout_entries"]:
        _check_equal(
            "layout_list", list_location[a["layout_list"]], a["layout_location"], "'layout_location'"
        )
    _check_in("group_layout", a["group_layout"], -1, Y)
