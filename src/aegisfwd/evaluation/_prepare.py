"""From a batch of log rows to engine inputs: column mapping, parsing, lookups, reject reasons."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .._ingress import choose_ingress
from . import _arrow as ar
from ._summary import REASON_CODE

# Field -> default column. Fields are named after the Cloudflare Logpush ``http_requests`` fields
# they default to; ``ingress_server`` and ``pool`` are extra roles with no default column.
DEFAULT_COLUMNS: dict[str, str | None] = {
    "RayID": "RayID",
    "EdgeColoCode": "EdgeColoCode",
    "ZoneName": "ZoneName",
    "OriginIP": "OriginIP",
    "ClientIP": "ClientIP",
    "ClientSrcPort": "ClientSrcPort",
    "EdgeStartTimestamp": "EdgeStartTimestamp",
    "OriginResponseDurationMs": "OriginResponseDurationMs",
    "OriginResponseTime": "OriginResponseTime",
    "OriginPort": "OriginPort",
    "ClientRequestScheme": "ClientRequestScheme",
    "ingress_server": None,
    "pool": None,
}
FIELDS: tuple[str, ...] = tuple(DEFAULT_COLUMNS)
# Input columns copied to the decisions output (where present), as text.
KEY_FIELDS: tuple[str, ...] = ("RayID", "EdgeColoCode", "ZoneName", "OriginIP")
DEFAULT_ORIGIN_PORT = 443


def resolve_columns(columns: Mapping[str, str | None] | None) -> dict[str, str | None]:
    """Field -> column name after the user's overrides (``None`` switches a field off)."""
    out = dict(DEFAULT_COLUMNS)
    for f, c in (columns or {}).items():
        if f not in out:
            raise ValueError(f"unknown field {f!r} in columns=; fields are: {', '.join(FIELDS)}")
        if c is not None and not isinstance(c, str):
            raise TypeError(f"columns[{f!r}] must be a column name (str) or None, got {c!r}")
        out[f] = c
    return out


def column_names(cols: Mapping[str, str | None]) -> list[str]:
    return [c for c in cols.values() if c]


@dataclass
class Common:
    """What a batch says independently of any topology."""

    n: int
    family: np.ndarray  # uint8: 4, 6, 0 = not an IP
    flows: np.ndarray  # uint64
    flow_ok: np.ndarray
    origin_dict: pa.Array
    origin_idx: np.ndarray  # int32 into origin_dict, -1 = null
    port: np.ndarray  # origin port (int64)
    start_ns: np.ndarray
    duration_ns: np.ndarray
    timed: np.ndarray  # start and duration valid
    cols: dict[str, pa.Array | None]  # field -> raw column (None when absent)


def _col(batch: pa.RecordBatch, name: str | None) -> pa.Array | None:
    if not name:
        return None
    i = batch.schema.get_field_index(name)
    if i < 0:
        return None
    arr = batch.column(i)
    return None if pa.types.is_null(arr.type) else arr


def parse_common(batch: pa.RecordBatch, cols: Mapping[str, str | None]) -> Common:
    n = batch.num_rows
    raw = {f: _col(batch, c) for f, c in cols.items()}
    family, origin_dict, origin_idx = ar.ip_family(raw["OriginIP"], n)
    flows, flow_ok = ar.flow_keys(raw["ClientIP"], raw["ClientSrcPort"], raw["RayID"], n)
    port, port_ok = ar.to_port(raw["OriginPort"], n)
    port = np.where(port_ok, port, DEFAULT_ORIGIN_PORT)
    if raw["ClientRequestScheme"] is not None and not port_ok.all():
        scheme = pc.utf8_lower(pc.utf8_trim_whitespace(ar.to_string(raw["ClientRequestScheme"])))
        is_http = ar._mask(pc.equal(scheme, "http"))
        port = np.where(~port_ok & is_http, 80, port)
    start, start_ok = ar.to_epoch_ns(raw["EdgeStartTimestamp"], n)
    dur, dur_ok = ar.to_duration_ns(raw["OriginResponseDurationMs"], raw["OriginResponseTime"], n)
    return Common(n, family, flows, flow_ok, origin_dict, origin_idx, port, start, dur, start_ok & dur_ok, raw)


def lookup_strings(arr: pa.Array | None, n: int, table: Mapping[str, Any], fallback: Any = None) -> tuple[np.ndarray, list[Any]]:
    """Look every value of a text column up in ``table`` through the column's dictionary.

    Returns ``(index per row into the distinct values, -1 for null/empty; looked-up value per distinct
    value, None when not found)``. ``fallback(value)`` is tried for values not in ``table``.
    """
    if arr is None:
        return np.full(n, -1, dtype=np.int32), []
    enc = pc.dictionary_encode(ar.to_string(arr))
    if isinstance(enc, pa.ChunkedArray):
        enc = enc.combine_chunks()
    idx = np.asarray(enc.indices.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int32)
    values: list[Any] = []
    for v in enc.dictionary.to_pylist():
        if v is None or not v.strip():
            values.append(_EMPTY)
            continue
        got = table.get(v)
        if got is None:
            got = table.get(v.strip())
        if got is None and fallback is not None:
            got = fallback(v.strip())
        values.append(got)
    return idx, values


_EMPTY = object()  # marks a value that is present but empty (treated like missing)


@dataclass
class Resolved:
    """Engine inputs for one model; ``reason`` is 0 for rows to decide."""

    reason: np.ndarray  # uint8, REASON_CODE
    server: np.ndarray  # int32 ingress server (-1 when rejected)
    pool: np.ndarray  # int32
    location: np.ndarray  # int32 ingress location
    fallback: np.ndarray  # bool: colo had no up server, ingress picked among all of its servers


def resolve(common: Common, model: Any, states: np.ndarray, threads: int | None = None) -> Resolved:
    n = common.n
    reason = np.zeros(n, dtype=np.uint8)

    def mark(mask: np.ndarray, name: str) -> None:
        reason[(reason == 0) & mask] = REASON_CODE[name]

    cols = common.cols
    first = np.zeros(n, dtype=np.int32)
    end = np.zeros(n, dtype=np.int32)
    location = np.full(n, -1, dtype=np.int32)
    server = np.full(n, -1, dtype=np.int32)
    explicit_server = cols["ingress_server"] is not None
    if explicit_server:
        idx, vals = lookup_strings(cols["ingress_server"], n, model.server_lookup)
        sv = np.array([-2 if v is _EMPTY else (-1 if v is None else v) for v in vals] + [-2], dtype=np.int32)
        s = sv[idx]
        mark(s == -2, "missing-server")
        mark(s == -1, "unknown-server")
        server = np.where(s >= 0, s, -1).astype(np.int32)
        location = np.where(s >= 0, model.server_location[np.maximum(s, 0)], -1).astype(np.int32)
    else:
        idx, vals = lookup_strings(cols["EdgeColoCode"], n, model.colo_lookup, lambda v: model.colo_upper.get(v.upper()))
        k = len(vals)
        lut = np.zeros((k + 1, 4), dtype=np.int32)  # first, end, location, status (0 ok, 1 missing, 2 unknown)
        for j, v in enumerate(vals):
            if v is _EMPTY:
                lut[j] = (0, 0, -1, 1)
            elif v is None:
                lut[j] = (0, 0, -1, 2)
            else:
                lut[j] = (v[0], v[1], v[2], 0)
        lut[k] = (0, 0, -1, 1)
        got = lut[idx]
        first, end, location = got[:, 0], got[:, 1], got[:, 2]
        mark(got[:, 3] == 1, "missing-colo")
        mark(got[:, 3] == 2, "unknown-colo")
        mark((got[:, 3] == 0) & (end <= first), "no-ingress-server")

    if cols["pool"] is not None:
        idx, vals = lookup_strings(cols["pool"], n, model.pool_lookup)
        missing, unknown = "missing-pool", "unknown-pool"
    else:
        lower = getattr(model, "_zone_lower", None)
        if lower is None:
            lower = {}
            for z, p in model.zone_lookup.items():
                lower.setdefault(z.lower(), p)
            model._zone_lower = lower
        idx, vals = lookup_strings(cols["ZoneName"], n, model.zone_lookup, lambda v: lower.get(v.lower().rstrip(".")))
        missing, unknown = "missing-zone", "unknown-zone"
    pv = np.array([-2 if v is _EMPTY else (-1 if v is None else v) for v in vals] + [-2], dtype=np.int32)
    pool = pv[idx]
    mark(pool == -2, missing)
    mark(pool == -1, unknown)
    mark(common.family == 0, "bad-origin-ip")
    mark(~common.flow_ok, "missing-flow-key")

    fallback = np.zeros(n, dtype=bool)
    if not explicit_server:
        ok = np.flatnonzero(reason == 0)
        if ok.shape[0]:
            chosen = choose_ingress(first[ok], end[ok], common.flows[ok], model.server_key, states, threads=threads)
            none_up = chosen < 0
            if none_up.any():
                # SPEC: an ingress server that is itself draining or down is still answered by the
                # same rules; a colo with no up server keeps its traffic in this evaluation.
                rows = ok[none_up]
                chosen[none_up] = choose_ingress(
                    first[rows], end[rows], common.flows[rows], model.server_key, np.zeros_like(states), threads=threads
                )
                fallback[rows] = True
            server[ok] = chosen
    pool = np.where(reason == 0, pool, -1).astype(np.int32)
    server = np.where(reason == 0, server, -1).astype(np.int32)
    return Resolved(reason, server, pool, location, fallback)
