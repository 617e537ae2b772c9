"""The compiler: a validated ``Topology`` into the dense tables of ``docs/compiled-format.md``.

Everything per element is vectorised with numpy; the only Python loops run once per id (to hash it)
and once per distinct holder set / group / candidate list (to intern by content).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from itertools import chain
from typing import TYPE_CHECKING

import numpy as np

from .. import _hashing
from .._gc import gc_paused
from .._version import __version__
from ..errors import TopologyError, TopologyIssue
from ._container import CompiledTopology
from ._format import ARRAY_DTYPE, ARRAY_NAMES, I4, I8, ID_KINDS, INT32_MAX

if TYPE_CHECKING:  # pragma: no cover
    from ..topology import Topology

__all__ = ["compile_topology"]


def _csr_starts(sizes: np.ndarray, dtype: str = I4) -> np.ndarray:
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
    return _csr_starts(end - first, I8), _expand_ranges(first, end)


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
    return np.frombuffer(data, dtype=np.uint8).copy(), _csr_starts(lengths, I8)


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
    # Sort each row by (unreachable, distance, location index) in one stable sort: numpy sorts NaN
    # after every number (even inf), and a stable sort keeps equal distances in column order.
    # (A three-key lexsort did the same in about three times the time: 9M keys for 3,000 locations.)
    key = np.where(unreachable, np.nan, distance)
    order = np.argsort(key, axis=1, kind="stable").astype(np.int32)
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
    with gc_paused():
        return _compile(topology)


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
    dc_server_start = _csr_starts(dc_sizes, I8)
    location_dc_start = _csr_starts(np.bincount(dc_location, minlength=L), I8)
    location_server_start = dc_server_start[location_dc_start]
    server_dc = np.repeat(np.arange(D, dtype=np.int64), dc_sizes)
    server_location = dc_location[server_dc]

    server_key = np.ascontiguousarray(t.server_keys(), dtype=np.uint64)
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
            chain(location_ids, dc_ids, server_ids),
            chain(range(S + D, S + D + L), range(S, S + D), range(S)),
            strict=True,
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
    group_ip_start = _csr_starts(np.bincount(ip_group, minlength=G), I8)

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
    layout_start = _csr_starts(np.bincount(entry_layout, minlength=Y), I8)
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
    list_bit_start = _csr_starts(list_words, I8)
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
    arrays = {name: np.ascontiguousarray(arrays[name], dtype=ARRAY_DTYPE[name]) for name in ARRAY_NAMES}

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
        **{f"{kind}_id_bytes": int(arrays[f"{kind}_id_bytes"].shape[0]) for kind, _ in ID_KINDS},
    }
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
