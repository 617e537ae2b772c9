"""Compiled topology: the dense tables of ``docs/compiled-format.md``, their file format and loading.

``compile_topology(topology)`` turns a validated ``Topology`` into a flat set of named, little-endian,
C-contiguous numpy arrays; ``CompiledTopology`` holds them, saves them as one file and loads such a
file back as zero-copy views into a read-only memory map. The C++ core reads the very same arrays
through raw pointers, which is why the loader checks every index range before anything is handed on:
a corrupt file must raise ``CompiledFileError``, never lead to a read past a buffer.

Everything per element is vectorised with numpy; the only Python loops run once per id (to hash it)
and once per distinct holder set / group / candidate list (to intern by content).
"""

from __future__ import annotations

import contextlib
import gc
import json
import mmap as _mmap
import os
import secrets
import struct
import threading
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cached_property
from itertools import chain, pairwise
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeGuard

import numpy as np

from . import _hashing
from ._types import IdTables
from .errors import CompiledFileError, TopologyError, TopologyIssue

if TYPE_CHECKING:  # pragma: no cover
    from .topology import Topology

__all__ = [
    "ARRAY_NAMES",
    "COUNT_NAMES",
    "FORMAT_VERSION",
    "MAGIC",
    "CompiledTopology",
    "compile_topology",
    "load_compiled",
]

FORMAT_VERSION = 1
MAGIC = b"AEGISFWD"
ALIGN = 64
INT32_MAX = 2**31 - 1
# magic, format version, header length H, total file length, header CRC-32, payload CRC-32
_PREFIX = struct.Struct("<8sIIQII")
_PREFIX_SIZE = _PREFIX.size  # 32
_DISTANCE_UNITS = ("km", "ms")
# Payloads at least this large get their CRC computed on a second thread, alongside the range checks.
_PARALLEL_CRC_BYTES = 1 << 20

_I4, _I8, _U1, _U8, _F8 = "<i4", "<i8", "|u1", "<u8", "<f8"

# Id string tables: kind -> count that sizes its offsets array.
_ID_KINDS: tuple[tuple[str, str], ...] = (
    ("location", "locations"),
    ("dc", "dcs"),
    ("server", "servers"),
    ("pool", "pools"),
    ("ip", "ips"),
    ("zone", "zones"),
)

# Every array of format version 1, in file order: (name, dtype, shape). A dimension is an int, a
# count name, or "count+1".
_ARRAY_SPECS: tuple[tuple[str, str, tuple[Any, ...]], ...] = (
    # facts
    ("location_dc_start", _I4, ("locations+1",)),
    ("location_server_start", _I4, ("locations+1",)),
    ("dc_location", _I4, ("dcs",)),
    ("dc_server_start", _I4, ("dcs+1",)),
    ("server_dc", _I4, ("servers",)),
    ("server_location", _I4, ("servers",)),
    ("server_key", _U8, ("servers",)),
    ("server_initial_state", _U1, ("servers",)),
    ("ip_pool", _I4, ("ips",)),
    ("ip_family", _U1, ("ips",)),
    ("ip_prefix_length", _U1, ("ips",)),
    ("ip_key", _U8, ("ips",)),
    ("ip_holder_start", _I4, ("ips+1",)),
    ("ip_holder_ranges", _I4, ("holder_ranges", 2)),
    ("group_ip_start", _I4, ("groups+1",)),
    ("group_ips", _I4, ("ips",)),
    ("location_distance", _F8, ("locations", "locations")),
    ("zone_pool", _I4, ("zones",)),
    *(
        spec
        for kind, count in _ID_KINDS
        for spec in (
            (f"{kind}_id_bytes", _U1, (f"{kind}_id_bytes",)),
            (f"{kind}_id_offsets", _I8, (f"{count}+1",)),
        )
    ),
    # derived
    ("nearest_order", _I4, ("locations", "locations")),
    ("nearest_rank", _I4, ("locations", "locations")),
    ("list_location", _I4, ("lists",)),
    ("list_server_start", _I4, ("lists+1",)),
    ("list_servers", _I4, ("list_servers",)),
    ("list_bit_start", _I8, ("lists+1",)),
    ("list_bits", _U8, ("list_words",)),
    ("layout_start", _I4, ("layouts+1",)),
    ("layout_location", _I4, ("layout_entries",)),
    ("layout_list", _I4, ("layout_entries",)),
    ("group_layout", _I4, ("groups",)),
)
ARRAY_NAMES: tuple[str, ...] = tuple(name for name, _, _ in _ARRAY_SPECS)
_ARRAY_DTYPE: dict[str, str] = {name: dtype for name, dtype, _ in _ARRAY_SPECS}

# The header's "counts": sizes of the index spaces and of the variable-length arrays.
COUNT_NAMES: tuple[str, ...] = (
    "locations",
    "dcs",
    "servers",
    "pools",
    "ips",
    "groups",
    "zones",
    "holder_ranges",
    "lists",
    "list_servers",
    "list_words",
    "layouts",
    "layout_entries",
    *(f"{kind}_id_bytes" for kind, _ in _ID_KINDS),
)
# Counts that index int32 arrays must fit int32; byte counts only need to fit the int64 offsets.
_INT32_COUNTS = frozenset(c for c in COUNT_NAMES if not c.endswith("_id_bytes")) - {"list_words"}


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _expected_shape(dims: tuple[Any, ...], counts: Mapping[str, int]) -> tuple[int, ...]:
    out = []
    for dim in dims:
        if isinstance(dim, int):
            out.append(dim)
        elif dim.endswith("+1"):
            out.append(counts[dim[:-2]] + 1)
        else:
            out.append(counts[dim])
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# compile
# ---------------------------------------------------------------------------------------------


def _csr_starts(sizes: np.ndarray, dtype: str = _I4) -> np.ndarray:
    out = np.zeros(sizes.shape[0] + 1, dtype=np.int64)
    np.cumsum(sizes, out=out[1:])
    return out.astype(dtype)


def _expand_ranges(first: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(first[k], end[k])`` for every k (int64), without a Python loop."""
    lengths = (end - first).astype(np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.zeros(lengths.shape[0], dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    return np.repeat(first.astype(np.int64) - starts, lengths) + np.arange(total, dtype=np.int64)


def _gather_rows(start: np.ndarray, which: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the CSR segments ``which`` (in that order): (new start array, row indices)."""
    start = start.astype(np.int64)
    first = start[which]
    end = start[np.asarray(which) + 1]
    return _csr_starts(end - first, _I8), _expand_ranges(first, end)


def _merge_ranges(
    seg: np.ndarray, first: np.ndarray, end: np.ndarray, nseg: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per segment, the union of ``[first, end)`` ranges as sorted, disjoint, non-touching ranges.

    Returns (segment start array of ``nseg + 1`` int64, ``R x 2`` int64 ranges). Empty ranges vanish.
    """
    seg = np.asarray(seg, dtype=np.int64)
    first = np.asarray(first, dtype=np.int64)
    end = np.asarray(end, dtype=np.int64)
    keep = first < end
    seg, first, end = seg[keep], first[keep], end[keep]
    if seg.size == 0:
        return np.zeros(nseg + 1, dtype=np.int64), np.zeros((0, 2), dtype=np.int64)
    order = np.lexsort((first, seg))
    seg, first, end = seg[order], first[order], end[order]
    # Running maximum of `end` that restarts at each segment: offset every key by seg * big, so that
    # any key of an earlier segment is smaller than every key of a later one.
    big = np.int64(int(end.max()) + 1)
    running = np.maximum.accumulate(seg * big + end)
    prev_end = np.empty_like(first)
    prev_end[0] = -1
    prev_end[1:] = running[:-1] - seg[1:] * big  # negative when the segment changes
    starts = np.flatnonzero(first > prev_end)  # a range touching the previous one merges into it
    merged = np.stack([first[starts], np.maximum.reduceat(end, starts)], axis=1)
    seg_start = np.searchsorted(seg[starts], np.arange(nseg + 1, dtype=np.int64), side="left")
    return seg_start.astype(np.int64), merged


def _string_table(ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    joined = "".join(ids)
    if joined.isascii():
        data = joined.encode("ascii")
        lengths = np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))
    else:
        encoded = [s.encode("utf-8") for s in ids]
        data = b"".join(encoded)
        lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    return np.frombuffer(data, dtype=np.uint8).copy(), _csr_starts(lengths, _I8)


def _topology_error(code: str, path: str, message: str) -> TopologyError:
    return TopologyError([TopologyIssue(code, path, message)])


def _server_path(topology: Topology, server_id: str) -> str:
    for d, dc in enumerate(topology.data_centers):
        for k, sid in enumerate(dc.servers):
            if sid == server_id:
                return f"data_centers[{d}].servers[{k}]"
    return ""  # pragma: no cover - the id came from the topology


def _check_server_keys(topology: Topology, ids: Sequence[str], keys: np.ndarray) -> None:
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    dup = np.flatnonzero(ordered[1:] == ordered[:-1])
    if dup.size == 0:
        return
    issues = []
    for k in dup.tolist():
        a, b = ids[int(order[k])], ids[int(order[k + 1])]
        if a == b:
            message = f"server {a!r} is listed twice"
        else:
            message = f"servers {a!r} and {b!r} have the same stable key {int(ordered[k]):#018x}"
        issues.append(TopologyIssue("key-collision", _server_path(topology, b), message))
    raise TopologyError(issues)


def _check_ip_keys(topology: Topology, pool_of: np.ndarray, keys: np.ndarray) -> None:
    order = np.lexsort((keys, pool_of))
    p, k = pool_of[order], keys[order]
    dup = np.flatnonzero((p[1:] == p[:-1]) & (k[1:] == k[:-1]))
    if dup.size == 0:
        return
    pool_first = np.searchsorted(pool_of, np.arange(len(topology.pools)))  # IPs are sorted by pool
    issues = []
    for j in dup.tolist():
        i_a, i_b = int(order[j]), int(order[j + 1])
        pool = int(pool_of[i_b])
        ips = topology.pools[pool].ips
        a, b = ips[i_a - int(pool_first[pool])].address, ips[i_b - int(pool_first[pool])].address
        issues.append(
            TopologyIssue(
                "key-collision",
                f"pools[{pool}].ips[{i_b - int(pool_first[pool])}]",
                f"IPs {a!r} and {b!r} of pool {topology.pools[pool].id!r} have the same stable key "
                f"{int(k[j]):#018x}",
            )
        )
    raise TopologyError(issues)


def _unknown_holders(topology: Topology, known: Mapping[str, int]) -> TopologyError:
    issues = [
        TopologyIssue(
            "unknown-holder",
            f"pools[{p}].ips[{k}].holders[{h}]",
            f"holder {name!r} is not a server, data center or location",
        )
        for p, pool in enumerate(topology.pools)
        for k, ip in enumerate(pool.ips)
        for h, name in enumerate(ip.holders)
        if name not in known
    ]
    return TopologyError(issues)


def _nearest(distance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``nearest_order`` and ``nearest_rank`` from a rounded L x L matrix (NaN = unreachable)."""
    n = distance.shape[0]
    unreachable = np.isnan(distance) | np.eye(n, dtype=bool)
    key = np.where(unreachable, np.inf, distance)
    column = np.broadcast_to(np.arange(n), (n, n))
    # Sort each row by (unreachable, distance, location index).
    order = np.lexsort((column, key, unreachable), axis=-1).astype(np.int32)
    reachable = (~unreachable).sum(axis=1)
    position = np.broadcast_to(np.arange(n, dtype=np.int32), (n, n))
    rank = np.empty((n, n), dtype=np.int32)
    np.put_along_axis(rank, order.astype(np.intp), position, axis=1)
    rank[unreachable] = INT32_MAX
    order[position >= reachable[:, None]] = -1
    return order, rank


def compile_topology(topology: Topology) -> CompiledTopology:
    """Compile a validated ``Topology`` into the tables of ``docs/compiled-format.md``.

    Raises ``TopologyError`` (code ``key-collision``) when two servers, or two IPs of one pool, have
    the same stable key, and (code ``unknown-holder``) for a holder the topology does not define.
    """
    # Compiling creates a few hundred thousand small acyclic objects (keys, tuples, id strings) next
    # to a topology of millions: the cyclic collector's full passes over them would add a third to
    # the time of a first compile, and nothing built here forms a cycle.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _compile(topology)
    finally:
        if was_enabled:
            gc.enable()


def _compile(topology: Topology) -> CompiledTopology:
    t = topology
    location_ids = t.location_ids
    dcs = t.ordered_data_centers
    dc_ids = t.dc_ids
    server_ids = t.server_ids
    pool_ids = t.pool_ids
    L, D, S, P = len(location_ids), len(dcs), len(server_ids), len(pool_ids)
    for what, n in (("locations", L), ("data centers", D), ("servers", S), ("pools", P)):
        if 2 * n + 1 > INT32_MAX:
            raise _topology_error("too-large", "", f"{n} {what} do not fit the int32 tables")

    # ---- tree: locations -> DCs -> servers (each one contiguous range) ----------------------
    location_index = t.location_index
    dc_location = np.fromiter((location_index[dc.location] for dc in dcs), dtype=np.int64, count=D)
    dc_sizes = np.fromiter((len(dc.servers) for dc in dcs), dtype=np.int64, count=D)
    dc_server_start = _csr_starts(dc_sizes, _I8)
    location_dc_start = _csr_starts(np.bincount(dc_location, minlength=L), _I8)
    location_server_start = dc_server_start[location_dc_start]
    server_dc = np.repeat(np.arange(D, dtype=np.int64), dc_sizes)
    server_location = dc_location[server_dc]

    server_key = np.fromiter(map(_hashing.server_key, server_ids), dtype=np.uint64, count=S)
    _check_server_keys(t, server_ids, server_key)
    server_initial_state = np.asarray(t.initial_states(), dtype=np.uint8)

    # ---- IPs ---------------------------------------------------------------------------------
    ordered_ips = t.ordered_ips
    I = len(ordered_ips)
    if 2 * I + 1 > INT32_MAX:
        raise _topology_error("too-large", "", f"{I} IPs do not fit the int32 tables")
    networks = [ip.network for _, ip in ordered_ips]
    ip_pool = np.fromiter((p for p, _ in ordered_ips), dtype=np.int64, count=I)
    ip_family = np.fromiter((n.version for n in networks), dtype=np.uint8, count=I)
    ip_prefix_length = np.fromiter((n.prefixlen for n in networks), dtype=np.uint8, count=I)
    ip_key = np.fromiter(map(_hashing.ip_key, networks), dtype=np.uint64, count=I)
    _check_ip_keys(t, ip_pool, ip_key)
    ip_texts = [ip.address for _, ip in ordered_ips]

    # Holders: intern the holder tuples (the all-locations tuple of every global IPv6 range is one
    # entry), map every name to its server range at once, and merge per tuple.
    holder_tuple_id: dict[tuple[str, ...], int] = {}
    ip_tuple = np.fromiter(
        (holder_tuple_id.setdefault(ip.holders, len(holder_tuple_id)) for _, ip in ordered_ips),
        dtype=np.int64,
        count=I,
    )
    tuples = list(holder_tuple_id)
    names = list(chain.from_iterable(tuples))
    # A holder names a server, else a DC, else a location (``Topology.holder_range``); later keys
    # of the dict win, so insert in the reverse order of precedence.
    code_of = dict(
        zip(
            chain(location_ids, dc_ids, server_ids), chain(range(S + D, S + D + L), range(S, S + D), range(S))
        )
    )
    try:
        codes = np.fromiter(map(code_of.__getitem__, names), dtype=np.int64, count=len(names))
    except KeyError:
        raise _unknown_holders(t, code_of) from None
    code_first = np.concatenate([np.arange(S), dc_server_start[:-1], location_server_start[:-1]])
    code_end = np.concatenate([np.arange(1, S + 1), dc_server_start[1:], location_server_start[1:]])
    tuple_lengths = np.fromiter(map(len, tuples), dtype=np.int64, count=len(tuples))
    tuple_start, tuple_ranges = _merge_ranges(
        np.repeat(np.arange(len(tuples)), tuple_lengths), code_first[codes], code_end[codes], len(tuples)
    )
    ip_holder_start, rows = _gather_rows(tuple_start, ip_tuple)
    ip_holder_ranges = tuple_ranges[rows]
    R = ip_holder_ranges.shape[0]
    if R > INT32_MAX - 1:
        raise _topology_error("too-large", "", f"{R} holder ranges do not fit the int32 tables")

    # ---- groups (pool, family) ----------------------------------------------------------------
    G = 2 * P
    ip_group = 2 * ip_pool + (ip_family == 6)
    group_ips = np.argsort(ip_group, kind="stable")  # ascending IP indices within each group
    group_ip_start = _csr_starts(np.bincount(ip_group, minlength=G), _I8)

    # Servers of a group = union of its IPs' holder ranges.
    range_ip = np.repeat(np.arange(I), np.diff(ip_holder_start))
    group_start, group_ranges = _merge_ranges(
        ip_group[range_ip], ip_holder_ranges[:, 0], ip_holder_ranges[:, 1], G
    )

    # ---- layouts: interned by the group's (canonical) merged server ranges ---------------------
    # Merged ranges are canonical, and a layout (location -> servers) is their split by location,
    # so equal ranges <=> equal layouts.
    range_bytes = group_ranges.astype(np.int64).tobytes()
    row_bytes = 16
    layout_of: dict[bytes, int] = {}
    layout_group: list[int] = []  # one representative group per layout
    group_layout_list: list[int] = []
    gs = group_start.tolist()
    for g in range(G):
        a, b = gs[g], gs[g + 1]
        if a == b:
            group_layout_list.append(-1)
            continue
        key = range_bytes[a * row_bytes : b * row_bytes]
        y = layout_of.get(key)
        if y is None:
            y = layout_of[key] = len(layout_group)
            layout_group.append(g)
        group_layout_list.append(y)
    Y = len(layout_group)
    group_layout = np.asarray(group_layout_list, dtype=np.int64).reshape(G)

    layout_range_start, rows = _gather_rows(group_start, np.asarray(layout_group, dtype=np.int64))
    lr = group_ranges[rows]
    lr_layout = np.repeat(np.arange(Y), np.diff(layout_range_start))

    # Split every range at location boundaries: one piece per (range, location it overlaps).
    if lr.shape[0]:
        loc_a = server_location[lr[:, 0]]
        loc_b = server_location[lr[:, 1] - 1]
        pieces_per_range = loc_b - loc_a + 1
        which = np.repeat(np.arange(lr.shape[0]), pieces_per_range)
        piece_loc = _expand_ranges(loc_a, loc_b + 1)
        piece_first = np.maximum(lr[which, 0], location_server_start[piece_loc])
        piece_end = np.minimum(lr[which, 1], location_server_start[piece_loc + 1])
        keep = piece_first < piece_end  # drops locations without servers inside a range
        piece_loc, piece_first, piece_end = piece_loc[keep], piece_first[keep], piece_end[keep]
        piece_layout = lr_layout[which[keep]]
    else:
        piece_loc = piece_first = piece_end = piece_layout = np.zeros(0, dtype=np.int64)
    # Pieces are sorted by (layout, server), hence by (layout, location): one entry per run.
    npieces = piece_loc.shape[0]
    new_entry = np.ones(npieces, dtype=bool)
    if npieces:
        new_entry[1:] = (piece_layout[1:] != piece_layout[:-1]) | (piece_loc[1:] != piece_loc[:-1])
    entry_first_piece = np.flatnonzero(new_entry)
    entry_piece_start = np.append(entry_first_piece, npieces).astype(np.int64)
    layout_location = piece_loc[entry_first_piece]
    entry_layout = piece_layout[entry_first_piece]
    layout_start = _csr_starts(np.bincount(entry_layout, minlength=Y), _I8)
    E = entry_first_piece.shape[0]

    # ---- candidate lists: interned by content (their absolute server ranges) --------------------
    pieces_bytes = np.stack([piece_first, piece_end], axis=1).astype(np.int64).tobytes()
    list_of: dict[bytes, int] = {}
    list_entry: list[int] = []  # one representative entry per list
    layout_list_list: list[int] = []
    eps = entry_piece_start.tolist()
    for e in range(E):
        key = pieces_bytes[eps[e] * row_bytes : eps[e + 1] * row_bytes]
        c = list_of.get(key)
        if c is None:
            c = list_of[key] = len(list_entry)
            list_entry.append(e)
        layout_list_list.append(c)
    C = len(list_entry)
    layout_list = np.asarray(layout_list_list, dtype=np.int64).reshape(E)
    rep = np.asarray(list_entry, dtype=np.int64)
    list_location = layout_location[rep] if C else np.zeros(0, dtype=np.int64)
    list_piece_start, rows = _gather_rows(entry_piece_start, rep)
    list_servers = _expand_ranges(piece_first[rows], piece_end[rows])
    piece_len_cum = np.zeros(rows.shape[0] + 1, dtype=np.int64)
    np.cumsum(piece_end[rows] - piece_first[rows], out=piece_len_cum[1:])
    list_server_start = piece_len_cum[list_piece_start]
    if list_servers.shape[0] > INT32_MAX - 1:
        raise _topology_error("too-large", "", "the candidate lists do not fit the int32 tables")

    # Bitsets over each list's location server range.
    location_size = np.diff(location_server_start)
    list_words = (location_size[list_location] + 63) // 64
    list_bit_start = _csr_starts(list_words, _I8)
    list_bits = np.zeros(int(list_bit_start[-1]), dtype=np.uint64)
    if list_servers.shape[0]:
        server_list = np.repeat(np.arange(C), np.diff(list_server_start))
        relative = list_servers - location_server_start[list_location[server_list]]
        word = list_bit_start[server_list] + (relative >> 6)
        np.bitwise_or.at(list_bits, word, np.left_shift(np.uint64(1), (relative & 63).astype(np.uint64)))

    # ---- distances ----------------------------------------------------------------------------
    location_distance = np.array(t.distance_matrix(), dtype=np.float64).reshape(L, L)
    np.fill_diagonal(location_distance, 0.0)
    nearest_order, nearest_rank = _nearest(location_distance)

    # ---- zones and id tables ----------------------------------------------------------------------
    zone_ids = list(t.zones)
    pool_index = t.pool_index
    try:
        zone_pool = np.fromiter(
            (pool_index[t.zones[z]] for z in zone_ids), dtype=np.int64, count=len(zone_ids)
        )
    except KeyError:
        raise TopologyError(
            [
                TopologyIssue("unknown-pool", f"zones[{json.dumps(z)}]", f"pool {p!r} is not defined")
                for z, p in t.zones.items()
                if p not in pool_index
            ]
        ) from None

    arrays: dict[str, np.ndarray] = {
        "location_dc_start": location_dc_start,
        "location_server_start": location_server_start,
        "dc_location": dc_location,
        "dc_server_start": dc_server_start,
        "server_dc": server_dc,
        "server_location": server_location,
        "server_key": server_key,
        "server_initial_state": server_initial_state,
        "ip_pool": ip_pool,
        "ip_family": ip_family,
        "ip_prefix_length": ip_prefix_length,
        "ip_key": ip_key,
        "ip_holder_start": ip_holder_start,
        "ip_holder_ranges": ip_holder_ranges.reshape(R, 2),
        "group_ip_start": group_ip_start,
        "group_ips": group_ips,
        "location_distance": location_distance,
        "zone_pool": zone_pool,
        "nearest_order": nearest_order,
        "nearest_rank": nearest_rank,
        "list_location": list_location,
        "list_server_start": list_server_start,
        "list_servers": list_servers,
        "list_bit_start": list_bit_start,
        "list_bits": list_bits,
        "layout_start": layout_start,
        "layout_location": layout_location,
        "layout_list": layout_list,
        "group_layout": group_layout,
    }
    id_lists = {
        "location": list(location_ids),
        "dc": list(dc_ids),
        "server": list(server_ids),
        "pool": list(pool_ids),
        "ip": ip_texts,
        "zone": zone_ids,
    }
    for kind, ids in id_lists.items():
        arrays[f"{kind}_id_bytes"], arrays[f"{kind}_id_offsets"] = _string_table(ids)
    arrays = {name: np.ascontiguousarray(arrays[name], dtype=_ARRAY_DTYPE[name]) for name in ARRAY_NAMES}

    counts = {
        "locations": L,
        "dcs": D,
        "servers": S,
        "pools": P,
        "ips": I,
        "groups": G,
        "zones": len(zone_ids),
        "holder_ranges": R,
        "lists": C,
        "list_servers": int(list_servers.shape[0]),
        "list_words": int(list_bits.shape[0]),
        "layouts": Y,
        "layout_entries": E,
        **{f"{kind}_id_bytes": int(arrays[f"{kind}_id_bytes"].shape[0]) for kind, _ in _ID_KINDS},
    }
    from . import __version__

    compiled = CompiledTopology(
        arrays,
        counts=counts,
        meta={"generator": f"aegisfwd {__version__}"},
        distance_unit=t.distance_unit,
        hash_scheme=_hashing.HASH_SCHEME_VERSION,
        topology=t,
    )
    # The ids are at hand: spare the lazy decoding.
    cache = compiled.__dict__
    cache["locations"], cache["dcs"], cache["servers"] = (
        id_lists["location"],
        id_lists["dc"],
        id_lists["server"],
    )
    cache["pools"], cache["ips"], cache["zones"] = id_lists["pool"], id_lists["ip"], id_lists["zone"]
    return compiled


# ---------------------------------------------------------------------------------------------
# the compiled object
# ---------------------------------------------------------------------------------------------


class CompiledTopology:
    """The compiled tables of one topology (``docs/compiled-format.md``).

    ``arrays`` maps every array name to a read-only, C-contiguous, little-endian numpy array: views
    into the file (or buffer) when loaded, so that a memory-mapped file is shared through the page
    cache. Id tables and lookup dicts are decoded on first use and cached.

    Build one with ``compile_topology`` / ``Topology.compile()``, ``load_compiled`` or ``from_bytes``.
    The constructor itself checks nothing: it is for code that already holds consistent arrays.
    """

    def __init__(
        self,
        arrays: Mapping[str, np.ndarray],
        *,
        counts: Mapping[str, int],
        meta: Mapping[str, Any] | None = None,
        distance_unit: str = "km",
        hash_scheme: int = _hashing.HASH_SCHEME_VERSION,
        topology: Topology | None = None,
        buffer: Any = None,
    ) -> None:
        frozen = {}
        for name, array in arrays.items():
            if array.flags.writeable:
                array = array.view()
                array.flags.writeable = False
            frozen[name] = array
        self._arrays = frozen
        self._counts = dict(counts)
        self._meta = dict(meta or {})
        self._distance_unit = distance_unit
        self._hash_scheme = int(hash_scheme)
        self._buffer = buffer  # keeps a memory map / buffer alive while views into it exist
        self.topology = topology

    # ---- plain attributes -------------------------------------------------------------------
    @property
    def arrays(self) -> Mapping[str, np.ndarray]:
        return MappingProxyType(self._arrays)

    def __getitem__(self, name: str) -> np.ndarray:
        return self._arrays[name]

    @property
    def counts(self) -> Mapping[str, int]:
        return MappingProxyType(self._counts)

    @property
    def meta(self) -> Mapping[str, Any]:
        return MappingProxyType(self._meta)

    @property
    def distance_unit(self) -> str:
        return self._distance_unit

    @property
    def hash_scheme(self) -> int:
        return self._hash_scheme

    @property
    def format_version(self) -> int:
        return FORMAT_VERSION

    @property
    def nbytes(self) -> int:
        """Bytes held by the tables (the file adds a header and alignment padding)."""
        return sum(int(a.nbytes) for a in self._arrays.values())

    def __repr__(self) -> str:
        c = self._counts
        return (
            f"<CompiledTopology {c['locations']} locations, {c['dcs']} DCs, {c['servers']} servers, "
            f"{c['pools']} pools, {c['ips']} IPs, {c['lists']} lists, {c['layouts']} layouts, "
            f"{self.nbytes / 2**20:.1f} MiB>"
        )

    # ---- ids (decoded lazily, cached) -----------------------------------------------------------
    def _decode_ids(self, kind: str) -> list[str]:
        raw = self._arrays[f"{kind}_id_bytes"].tobytes()
        offsets = self._arrays[f"{kind}_id_offsets"].tolist()
        if raw.isascii():
            text = raw.decode("ascii")
            return [text[a:b] for a, b in pairwise(offsets)]
        try:
            return [raw[a:b].decode("utf-8") for a, b in pairwise(offsets)]
        except UnicodeDecodeError as exc:
            raise CompiledFileError(f"string table '{kind}_id_bytes' is not valid UTF-8: {exc}") from None

    @cached_property
    def locations(self) -> list[str]:
        return self._decode_ids("location")

    @cached_property
    def dcs(self) -> list[str]:
        return self._decode_ids("dc")

    @cached_property
    def servers(self) -> list[str]:
        return self._decode_ids("server")

    @cached_property
    def pools(self) -> list[str]:
        return self._decode_ids("pool")

    @cached_property
    def ips(self) -> list[str]:
        return self._decode_ids("ip")

    @cached_property
    def zones(self) -> list[str]:
        return self._decode_ids("zone")

    def id_tables(self) -> IdTables:
        return IdTables(self.locations, self.dcs, self.servers, self.pools, self.ips)

    @cached_property
    def location_index(self) -> dict[str, int]:
        return {v: k for k, v in enumerate(self.locations)}

    @cached_property
    def dc_index(self) -> dict[str, int]:
        return {v: k for k, v in enumerate(self.dcs)}

    @cached_property
    def server_index(self) -> dict[str, int]:
        return {v: k for k, v in enumerate(self.servers)}

    @cached_property
    def pool_index(self) -> dict[str, int]:
        return {v: k for k, v in enumerate(self.pools)}

    @cached_property
    def zone_index(self) -> dict[str, int]:
        return {v: k for k, v in enumerate(self.zones)}

    # ---- serialisation ----------------------------------------------------------------------------
    def _file_layout(self) -> tuple[bytes, list[tuple[int, np.ndarray]], int]:
        """(prefix-less header bytes, [(offset, array)] in file order, total length)."""
        names = [n for n in ARRAY_NAMES if n in self._arrays]
        names += [n for n in self._arrays if n not in _ARRAY_DTYPE]
        payload_start = _align(_PREFIX_SIZE + 1024)
        while True:
            offset = payload_start
            placed = []
            entries = {}
            for name in names:
                array = self._arrays[name]
                offset = _align(offset)
                placed.append((offset, array))
                entries[name] = {
                    "dtype": array.dtype.str,
                    "shape": list(array.shape),
                    "offset": offset,
                    "nbytes": int(array.nbytes),
                }
                offset += int(array.nbytes)
            total = _align(offset)
            header = json.dumps(
                {
                    "hash_scheme": self._hash_scheme,
                    "distance_unit": self._distance_unit,
                    "counts": self._counts,
                    "meta": self._meta,
                    "arrays": entries,
                },
                separators=(",", ":"),
                ensure_ascii=False,
            ).encode("utf-8")
            if _PREFIX_SIZE + len(header) <= payload_start:
                # Pad the JSON with spaces up to the first array: H + 32 is then the payload start.
                return header.ljust(payload_start - _PREFIX_SIZE, b" "), placed, total
            payload_start = _align(_PREFIX_SIZE + len(header))

    def _write(self, write: Callable[[Any], Any]) -> int:
        header, placed, total = self._file_layout()
        payload_start = _PREFIX_SIZE + len(header)

        def chunks() -> Iterable[Any]:
            cursor = payload_start
            for offset, array in placed:
                if offset > cursor:
                    yield bytes(offset - cursor)
                if array.nbytes:
                    yield np.ascontiguousarray(array).reshape(-1).view(np.uint8).data
                cursor = offset + int(array.nbytes)
            if total > cursor:
                yield bytes(total - cursor)

        payload_crc = 0
        for chunk in chunks():
            payload_crc = zlib.crc32(chunk, payload_crc)
        write(_PREFIX.pack(MAGIC, FORMAT_VERSION, len(header), total, zlib.crc32(header), payload_crc))
        write(header)
        for chunk in chunks():
            write(chunk)
        return total

    def to_bytes(self) -> bytes:
        """The file format as one flat ``bytes`` (what ``save`` writes and pickling carries)."""
        out = bytearray()
        self._write(out.extend)
        return bytes(out)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the file format to ``path`` atomically (a temporary file, then a rename)."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        try:
            with os.fdopen(fd, "wb") as f:
                self._write(f.write)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    @classmethod
    def from_bytes(cls, buffer: Any, *, verify: bool = True) -> CompiledTopology:
        """Open the file format held in ``buffer`` (bytes, bytearray, memoryview, mmap).

        The arrays are read-only zero-copy views into ``buffer``, which the result keeps alive.
        ``verify=False`` skips only the payload CRC (for a file another process has just checked);
        every structural and index-range check still runs.
        """
        return _open_buffer(buffer, verify=verify, owner=buffer)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_unpickle, (self.to_bytes(),))


def _unpickle(data: bytes) -> CompiledTopology:
    return CompiledTopology.from_bytes(data)


def load_compiled(
    path: str | os.PathLike[str], *, mmap: bool = True, verify: bool = True
) -> CompiledTopology:
    """Open a compiled topology file: memory-mapped read-only (``mmap=False`` reads it into memory).

    Checks magic, version, length, header CRC and schema, payload CRC (unless ``verify=False``) and
    every index range; raises ``CompiledFileError`` naming the first problem found.

    A mapped file must not be rewritten in place while it is in use; ``save`` replaces files by an
    atomic rename, which leaves existing mappings intact.
    """
    with open(path, "rb") as f:
        if not mmap:
            data = f.read()
            return _open_buffer(data, verify=verify, owner=data, source=os.fspath(path))
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            raise CompiledFileError(f"{os.fspath(path)}: truncated: file has 0 bytes")
        mapped = _mmap.mmap(f.fileno(), 0, access=_mmap.ACCESS_READ)
    return _open_buffer(mapped, verify=verify, owner=mapped, source=os.fspath(path))


# ---------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------


def _open_buffer(buffer: Any, *, verify: bool, owner: Any, source: str | None = None) -> CompiledTopology:
    try:
        return _open_buffer_unchecked(buffer, verify=verify, owner=owner)
    except CompiledFileError as exc:
        if source is None:
            raise
        raise CompiledFileError(f"{source}: {exc}") from None


def _fail(message: str) -> CompiledFileError:
    return CompiledFileError(message)


def _open_buffer_unchecked(buffer: Any, *, verify: bool, owner: Any) -> CompiledTopology:
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
    if n < _PREFIX_SIZE:
        raise _fail(f"truncated: file has {n} bytes, fewer than the {_PREFIX_SIZE}-byte prefix")
    _, version, hlen, total, header_crc, payload_crc = _PREFIX.unpack_from(view, 0)
    if version != FORMAT_VERSION:
        raise _fail(f"unsupported format version {version} (this build reads version {FORMAT_VERSION})")
    if n < total:
        raise _fail(f"truncated: file has {n} bytes, header says {total}")
    if n > total:
        raise _fail(f"file has {n} bytes, header says {total}: trailing data")
    if _PREFIX_SIZE + hlen > total:
        raise _fail(f"header length {hlen} runs past the end of the {total}-byte file")
    header_bytes = view[_PREFIX_SIZE : _PREFIX_SIZE + hlen]
    if zlib.crc32(header_bytes) != header_crc:
        raise _fail("header CRC mismatch: the header is corrupt")
    try:
        header = json.loads(bytes(header_bytes).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _fail(f"header is not valid JSON: {exc}") from None
    payload_start = _align(_PREFIX_SIZE + hlen)
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
        for name, dtype, _ in _ARRAY_SPECS:
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
    except CompiledFileError as exc:
        range_error = exc
    finally:
        if worker is not None:
            worker.join()
    if verify and crc[0] != payload_crc:
        raise _fail("payload CRC mismatch: the tables are corrupt")
    if range_error is not None:
        raise range_error
    return CompiledTopology(
        arrays,
        counts=counts,
        meta=header["meta"],
        distance_unit=header["distance_unit"],
        hash_scheme=header["hash_scheme"],
        topology=None,
        buffer=owner,
    )


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
    if header["distance_unit"] not in _DISTANCE_UNITS:
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
        if name in _INT32_COUNTS and value >= INT32_MAX:
            raise _fail(f"header schema: count {name!r} = {value} does not fit int32 indices")
    if counts["groups"] != 2 * counts["pools"]:
        raise _fail(
            f"header schema: {counts['groups']} groups for {counts['pools']} pools (expected 2 per pool)"
        )
    entries = header["arrays"]
    if not isinstance(entries, dict):
        raise _fail("header schema: 'arrays' is not an object")
    for name in entries:
        if name not in _ARRAY_DTYPE:
            raise _fail(f"header schema: unexpected array {name!r}")
    spans = []
    for name, dtype, dims in _ARRAY_SPECS:
        entry = entries.get(name)
        if entry is None:
            raise _fail(f"header schema: array {name!r} is missing")
        if not isinstance(entry, dict):
            raise _fail(f"header schema: array {name!r}: entry is not an object")
        if entry.get("dtype") != dtype:
            raise _fail(f"header schema: array {name!r} has dtype {entry.get('dtype')!r}, expected {dtype!r}")
        shape = entry.get("shape")
        expected = _expected_shape(dims, counts)
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
    for kind, _ in _ID_KINDS:
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
