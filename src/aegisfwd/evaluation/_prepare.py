"""From a batch of log rows to engine inputs: column mapping, parsing, lookups, reject reasons."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .._ingress import choose_ingress
from . import _arrow as ar
from ._summary import REASON_CODE, invalid_utf8_reason
from ._utf8 import check_text

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
    "EdgeServerIP": "EdgeServerIP",  # only compared with the prediction (_egress_check.py)
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


# Columns read only to explain rejects: a log with ``ZoneID`` but no ``ZoneName`` is told how to map it.
HINT_COLUMNS: tuple[str, ...] = ("ZoneID",)


def column_names(cols: Mapping[str, str | None], *, hints: bool = False) -> list[str]:
    names = [c for c in cols.values() if c]
    if hints:
        names += [h for h in HINT_COLUMNS if h not in names]
    return names


# Fields whose values repeat (colos, zones, origins, servers, pools, schemes): read from Parquet as
# dictionary arrays, looked up and parsed once per distinct value, and written as dictionaries.
DICTIONARY_FIELDS: tuple[str, ...] = (
    "EdgeColoCode",
    "ZoneName",
    "OriginIP",
    "ingress_server",
    "pool",
    "ClientRequestScheme",
    "EdgeServerIP",
)


def dictionary_columns(cols: Mapping[str, str | None]) -> list[str]:
    return [c for f, c in cols.items() if c and f in DICTIONARY_FIELDS]


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
    start_ok: np.ndarray | None = None  # a trusted start time (whatever the duration)
    no_origin: np.ndarray | None = None  # OriginIP empty or null: the request never reached the origin
    zone_id_only: np.ndarray | None = None  # no ZoneName but a ZoneID
    warnings: dict[str, int] | None = None  # rows kept but flagged (timestamps that cannot be trusted)
    not_utf8: dict[str, np.ndarray] | None = None  # field -> rows whose value is not UTF-8 text


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
    # Before anything reads a value as text: rows that are not UTF-8 are marked (and rejected by
    # resolve), their values replaced by a readable stand-in (evaluation/_utf8.py).
    not_utf8: dict[str, np.ndarray] = {}
    for f, arr in raw.items():
        raw[f], bad = check_text(arr)
        if bad is not None:
            not_utf8[f] = bad
    family, origin_dict, origin_idx = ar.ip_family(raw["OriginIP"], n)
    flows, flow_ok = ar.flow_keys(raw["ClientIP"], raw["ClientSrcPort"], raw["RayID"], n)
    port, port_ok = ar.to_port(raw["OriginPort"], n)
    port = np.where(port_ok, port, DEFAULT_ORIGIN_PORT)
    if raw["ClientRequestScheme"] is not None and not port_ok.all():
        scheme = pc.utf8_lower(pc.utf8_trim_whitespace(ar.to_string(raw["ClientRequestScheme"])))
        is_http = ar._mask(pc.equal(scheme, "http"))
        port = np.where(~port_ok & is_http, 80, port)
    start, start_ok = ar.to_epoch_ns(raw["EdgeStartTimestamp"], n)
    not_epoch, imprecise = ar.untrusted_timestamps(raw["EdgeStartTimestamp"], start, start_ok)
    warnings: dict[str, int] = {}
    if not_epoch.any() or imprecise.any():
        start_ok = start_ok & ~not_epoch & ~imprecise
        warnings = {
            k: int(v.sum())
            for k, v in (("timestamp-not-epoch", not_epoch), ("timestamp-imprecise", imprecise))
            if v.any()
        }
    dur, dur_ok = ar.to_duration_ns(raw["OriginResponseDurationMs"], raw["OriginResponseTime"], n)
    no_origin = None  # stays None when the log has no OriginIP column at all
    origin_name = cols.get("OriginIP")
    if raw["OriginIP"] is not None:
        # Logpush writes OriginIP "" for a request that never reached the origin (blocked, cached).
        blank = np.append(
            ar._mask(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(ar.to_string(origin_dict))), 0)), True
        )  # the last entry: null rows
        no_origin = blank[origin_idx]
    elif origin_name and batch.schema.get_field_index(origin_name) >= 0:
        no_origin = np.ones(n, dtype=bool)  # the column is there, every value null
    zone_id_only = None
    zone_id = batch.schema.get_field_index("ZoneID")
    if zone_id >= 0 and cols.get("ZoneName") != "ZoneID" and raw.get("pool") is None:
        zone_name = raw["ZoneName"]
        has_id = ar._valid_np(ar._chunk(batch.column(zone_id)))
        zone_id_only = has_id if zone_name is None else has_id & ~ar._valid_np(ar._chunk(zone_name))
    return Common(
        n,
        family,
        flows,
        flow_ok,
        origin_dict,
        origin_idx,
        port,
        start,
        dur,
        start_ok & dur_ok,
        raw,
        start_ok,
        no_origin,
        zone_id_only,
        warnings,
        not_utf8 or None,
    )


MISSING = -2  # code of a null, empty or blank value
UNKNOWN = -1  # code of a value that names nothing


class Lookup:
    """Text values -> codes: ``table[value]`` (>= 0), ``UNKNOWN`` or ``MISSING`` (null or blank).

    A value is tried as is, then stripped of surrounding whitespace, then through ``fallback`` (a
    case rule) on the stripped value; a blank value is ``MISSING`` whatever ``table`` says. Columns
    are looked up through their dictionary (Arrow dictionary arrays as read from Parquet, or one
    built by ``dictionary_encode``): exact ids by Arrow's hash lookup (``index_in``), only the
    values that miss one by one in Python. The codes of the last dictionary are kept, so batches
    that share one (every batch of a Parquet row group) cost a comparison.
    """

    def __init__(self, table: Mapping[str, int], fallback: Callable[[str], int | None] | None = None) -> None:
        self.table = dict(table)
        self.fallback = fallback
        self.keys = pa.array(list(self.table), pa.large_string())
        self.codes = np.array(
            [MISSING if not k.strip() else int(v) for k, v in self.table.items()] + [MISSING], dtype=np.int32
        )
        self._last: tuple[pa.Array, np.ndarray] | None = None

    def _slow(self, v: str | None) -> int:
        if v is None or not v.strip():
            return MISSING
        got = self.table.get(v)
        if got is None:
            got = self.table.get(v.strip())
        if got is None and self.fallback is not None:
            got = self.fallback(v.strip())
        return UNKNOWN if got is None else int(got)

    def dictionary_codes(self, dictionary: pa.Array) -> np.ndarray:
        """int32 code per dictionary entry (a null entry is ``MISSING``)."""
        last = self._last
        if last is not None and last[0].equals(dictionary):
            return last[1]
        d = ar.to_string(dictionary)
        if len(self.keys):
            pos = np.asarray(
                pc.index_in(d, value_set=self.keys).fill_null(-1).to_numpy(zero_copy_only=False),
                dtype=np.int64,
            )
            codes = self.codes[pos]  # -1 (a miss) reads the MISSING sentinel: redone below
        else:
            pos = np.full(len(d), -1, dtype=np.int64)
            codes = np.full(len(d), MISSING, dtype=np.int32)
        miss = np.flatnonzero(pos < 0)
        if miss.shape[0]:
            for j, v in zip(miss.tolist(), d.take(pa.array(miss)).to_pylist(), strict=True):
                codes[j] = self._slow(v)
        self._last = (dictionary, codes)
        return codes

    def __call__(self, arr: pa.Array | None, n: int) -> np.ndarray:
        """int32 code per row of a column (``MISSING`` for every row when the column is absent)."""
        if arr is None:
            return np.full(n, MISSING, dtype=np.int32)
        enc = ar.as_dictionary(arr)
        codes = np.append(self.dictionary_codes(enc.dictionary), np.int32(MISSING))
        return codes[ar.dictionary_indices(enc)]


@dataclass
class Resolved:
    """Engine inputs for one model; ``reason`` is 0 for rows to decide."""

    reason: np.ndarray  # uint8, REASON_CODE
    server: np.ndarray  # int32 ingress server (-1 when rejected)
    pool: np.ndarray  # int32
    location: np.ndarray  # int32 ingress location
    fallback: np.ndarray  # bool: colo had no up server, ingress picked among all of its servers
    all_ok: bool = False  # no row rejected (then the decided rows are the batch, no gather needed)


def resolve(common: Common, model: Any, states: np.ndarray, threads: int | None = None) -> Resolved:
    n = common.n
    # Reject reasons in the documented order of precedence; the first that applies is kept.
    marks: list[tuple[np.ndarray, str]] = [
        (bad, invalid_utf8_reason(f)) for f, bad in (common.not_utf8 or {}).items()
    ]  # first: nothing else about a row whose bytes are corrupt is trusted
    cols = common.cols
    first = end = None
    explicit_server = cols["ingress_server"] is not None
    if explicit_server:
        s = model.server_codes(cols["ingress_server"], n)
        marks += [(s == MISSING, "missing-server"), (s == UNKNOWN, "unknown-server")]
        server = np.maximum(s, -1).astype(np.int32, copy=False)
        location = np.where(s >= 0, model.server_location[np.maximum(s, 0)], -1).astype(np.int32, copy=False)
    else:
        c = model.colo_codes(cols["EdgeColoCode"], n)
        known = c >= 0
        k = np.where(known, c, model.colo_sentinel)  # the sentinel: an empty range, no location
        first, end, location = model.colo_first[k], model.colo_end[k], model.colo_location[k]
        marks += [
            (c == MISSING, "missing-colo"),
            (c == UNKNOWN, "unknown-colo"),
            (known & (end <= first), "no-ingress-server"),
        ]

    if cols["pool"] is not None:
        pool = model.pool_codes(cols["pool"], n)
        missing, unknown = "missing-pool", "unknown-pool"
    else:
        pool = model.zone_codes(cols["ZoneName"], n)
        missing, unknown = "missing-zone", "unknown-zone"
    if common.zone_id_only is not None:
        marks.append((common.zone_id_only & (pool == MISSING), "zone-id-not-mapped"))
    marks += [(pool == MISSING, missing), (pool == UNKNOWN, unknown)]
    if common.no_origin is None:
        marks.append((common.family == 0, "missing-origin-ip"))
    else:
        assert common.no_origin is not None
        marks.append((common.no_origin, "no-origin-connection"))
    marks += [(common.family == 0, "bad-origin-ip"), (~common.flow_ok, "missing-flow-key")]
    reason = np.zeros(n, dtype=np.uint8)
    for mask, name in reversed(marks):  # earlier reasons overwrite later ones
        if mask.any():
            np.copyto(reason, np.uint8(REASON_CODE[name]), where=mask)
    all_ok = not reason.any()
    ok_mask = None if all_ok else reason == 0

    fallback = np.zeros(n, dtype=bool)
    if not explicit_server:
        assert first is not None and end is not None
        if ok_mask is not None:  # rejected rows get an empty range: no server, nothing computed
            first, end = np.where(ok_mask, first, 0), np.where(ok_mask, end, 0)
        server = choose_ingress(first, end, common.flows, model.server_key, states, threads=threads)
        none_up = server < 0
        if ok_mask is not None:
            none_up &= ok_mask
        if none_up.any():
            # docs/decision.md: an ingress server that is itself draining or down is still answered by the
            # same rules; a colo with no up server keeps its traffic in this evaluation.
            rows = np.flatnonzero(none_up)
            server[rows] = choose_ingress(
                first[rows],
                end[rows],
                common.flows[rows],
                model.server_key,
                np.zeros_like(states),
                threads=threads,
            )
            fallback[rows] = True
    if ok_mask is not None:
        pool = np.where(ok_mask, pool, -1)
        server = np.where(ok_mask, server, -1)
    return Resolved(
        reason,
        server.astype(np.int32, copy=False),
        pool.astype(np.int32, copy=False),
        location,
        fallback,
        all_ok,
    )
