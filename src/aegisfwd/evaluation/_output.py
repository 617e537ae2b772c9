"""Decision and reject tables, and the incremental writers for them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from .. import _core
from . import _arrow as ar
from ._summary import REASONS, TIERS

TIER_DICTIONARY = pa.array(list(TIERS) + ["INVALID"], pa.string())
_TIER_POS = np.full(256, len(TIERS), dtype=np.int32)
_TIER_POS[: len(TIERS)] = np.arange(len(TIERS), dtype=np.int32)

DECISION_COLUMNS = (
    "ingress_server",
    "tier",
    "egress_server",
    "egress_dc",
    "egress_location",
    "egress_ip",
    "distance",
)


# The decisions file: input key columns, then the decision. Key columns whose values repeat and every
# id column are dictionary arrays (Parquet stores them as its dictionary pages plus small indices).
DICTIONARY_KEY_FIELDS = ("EdgeColoCode", "ZoneName", "OriginIP")
ID_TYPE = pa.dictionary(pa.int32(), pa.string())


# Where each decision comes from: the file, the record number within it (0-based, malformed records
# counted, as in the rejects file) and the start time as parsed (null where there was none).
TRACE_FIELDS = [
    pa.field("source", ID_TYPE),
    pa.field("row", pa.int64()),
    pa.field("start_time", pa.timestamp("ns", tz="UTC")),
]


def decisions_schema(key_fields: tuple[str, ...], suffix: str = "") -> pa.Schema:
    """The schema of every decisions table (and file) with these key columns."""
    fields = [pa.field(f, ID_TYPE if f in DICTIONARY_KEY_FIELDS else pa.string()) for f in key_fields]
    fields += [pa.field(c + suffix, ID_TYPE) for c in DECISION_COLUMNS[:-1]]
    return pa.schema(fields + [pa.field("distance" + suffix, pa.float64())] + TRACE_FIELDS)


def trace_columns(
    trace: tuple[str, np.ndarray, np.ndarray, np.ndarray] | None, m: int
) -> dict[str, pa.Array]:
    """``source``, ``row`` and ``start_time`` of ``m`` decided rows; ``trace`` is (source, record
    numbers, start ns, start valid), or None (all null)."""
    if trace is None:
        return {f.name: pa.nulls(m, f.type) for f in TRACE_FIELDS}
    source, rows, start_ns, start_ok = trace
    src = pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(m, dtype=np.int32)), pa.array([source], pa.string())
    )
    mask = ~np.asarray(start_ok, dtype=bool)
    start = pa.array(np.asarray(start_ns, dtype=np.int64), pa.int64(), mask=mask if mask.any() else None)
    return {
        "source": src,
        "row": pa.array(np.asarray(rows, dtype=np.int64), pa.int64()),
        "start_time": start.cast(TRACE_FIELDS[2].type),
    }


def decisions_parquet_options(schema: pa.Schema) -> dict[str, Any]:
    """ParquetWriter settings for a decisions file: zstd; dictionary pages for every column but
    ``RayID`` (unique per row: its lengths delta-encoded instead, which zstd then packs better);
    statistics only for ``distance`` (min/max of ids and RayIDs prune nothing: every row group holds
    them all)."""
    names = schema.names
    opts: dict[str, Any] = {
        "compression": "zstd",
        "use_dictionary": [c for c in names if c not in ("RayID", "row", "start_time")],
        "write_statistics": [c for c in names if c.startswith("distance")],
    }
    if "RayID" in names and pa.types.is_string(schema.field("RayID").type):
        opts["column_encoding"] = {"RayID": "DELTA_LENGTH_BYTE_ARRAY"}
    return opts


class IdArrays:
    """Arrow dictionaries of one model's ids, built once."""

    def __init__(self, model: Any) -> None:
        self.servers = pa.array(model.server_ids, pa.string())
        self.dcs = pa.array(model.dc_ids, pa.string())
        self.locations = pa.array(model.location_ids, pa.string())
        self.ips = pa.array(model.ip_ids, pa.string())

    @staticmethod
    def column(indices: np.ndarray, dictionary: pa.Array) -> pa.DictionaryArray:
        """Index column (-1 = null) over ``dictionary`` as a dictionary array holding only the
        entries the rows use (a row group's dictionary page then holds only those)."""
        return compact_dictionary(indices, dictionary)


# Dictionaries up to this size are written whole: their page is small whatever the rows use.
COMPACT_MIN_ENTRIES = 1024


def compact_dictionary(indices: np.ndarray, dictionary: pa.Array) -> pa.DictionaryArray:
    """``indices`` (-1 = null) over ``dictionary`` as a dictionary array of only the used entries,
    in dictionary order (one pass in the compiled core); small dictionaries are kept whole."""
    indices = np.require(indices, np.int32, ["C", "A"])
    if len(dictionary) > COMPACT_MIN_ENTRIES:
        indices, kept = _core.logeval.compact_indices(indices, len(dictionary))
        dictionary = dictionary.take(pa.array(kept))
    mask = indices < 0
    idx = pa.array(indices, pa.int32(), mask=mask) if mask.any() else pa.array(indices, pa.int32())
    return pa.DictionaryArray.from_arrays(idx, dictionary)


def _text(arr: pa.Array) -> pa.Array:
    """``string`` or ``large_string`` text of any column (no cast when it already is one)."""
    arr = ar._chunk(arr)
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        return arr
    return ar.to_string(arr)


def key_columns(
    cols: dict[str, pa.Array | None], rows: np.ndarray, fields: tuple[str, ...]
) -> dict[str, pa.Array]:
    """Input key columns of ``rows`` as plain text (null where the field is absent in this batch)."""
    take = pa.array(rows, pa.int64())
    out = {}
    for f in fields:
        arr = cols.get(f)
        if arr is None:
            out[f] = pa.nulls(len(rows), pa.string())
        else:
            out[f] = ar.to_string(arr).take(take).cast(pa.string())
    return out


def decision_key_columns(
    cols: dict[str, pa.Array | None], rows: np.ndarray, n: int, fields: tuple[str, ...]
) -> dict[str, pa.Array]:
    """Input key columns of ``rows`` (positions in a batch of ``n`` rows) for the decisions table:
    ``DICTIONARY_KEY_FIELDS`` as ``dictionary<int32, string>`` (a dictionary column as read from
    Parquet keeps its indices, compacted), the others as ``string``; no copy when every row is kept."""
    every = rows.shape[0] == n
    take = None if every else pa.array(rows, pa.int64())
    out: dict[str, pa.Array] = {}
    for f in fields:
        arr = cols.get(f)
        want_dict = f in DICTIONARY_KEY_FIELDS
        if arr is None:
            out[f] = pa.nulls(rows.shape[0], ID_TYPE if want_dict else pa.string())
            continue
        arr = ar._chunk(arr)
        if want_dict:
            enc = arr if pa.types.is_dictionary(arr.type) else _text(arr).dictionary_encode()
            idx = ar.dictionary_indices(enc)
            if not every:
                idx = idx[rows]
            values = enc.dictionary
            if not pa.types.is_string(values.type):
                values = _text(values).cast(pa.string())
            out[f] = compact_dictionary(idx, values)
        else:
            text = _text(arr)
            if not every:
                text = text.take(take)
            out[f] = text if pa.types.is_string(text.type) else text.cast(pa.string())
    return out


def decisions_table(
    cols: dict[str, pa.Array | None],
    rows: np.ndarray,
    key_fields: tuple[str, ...],
    ids: IdArrays,
    ingress: np.ndarray,
    result: Any,
    suffix: str = "",
    n: int | None = None,
    trace: tuple[str, np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> pa.Table:
    """Decisions of ``rows`` (positions in a batch of ``n`` rows) with ``decisions_schema``."""
    data: dict[str, pa.Array] = decision_key_columns(
        cols, rows, rows.shape[0] if n is None else n, key_fields
    )
    tier = pa.DictionaryArray.from_arrays(pa.array(_TIER_POS[result.tier], pa.int32()), TIER_DICTIONARY)
    data.update(
        {
            "ingress_server" + suffix: IdArrays.column(ingress, ids.servers),
            "tier" + suffix: tier,
            "egress_server" + suffix: IdArrays.column(result.server, ids.servers),
            "egress_dc" + suffix: IdArrays.column(result.dc, ids.dcs),
            "egress_location" + suffix: IdArrays.column(result.location, ids.locations),
            "egress_ip" + suffix: IdArrays.column(result.ip, ids.ips),
            "distance" + suffix: pa.array(np.asarray(result.distance, dtype=np.float64), pa.float64()),
            **trace_columns(trace, rows.shape[0]),
        }
    )
    return pa.table(data, schema=decisions_schema(key_fields, suffix))


REJECT_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("row", pa.int64()),
        ("reason", pa.string()),
        ("RayID", pa.string()),
        ("EdgeColoCode", pa.string()),
        ("ZoneName", pa.string()),
        ("OriginIP", pa.string()),
        ("ClientIP", pa.string()),
        ("raw", pa.string()),
    ]
)


def rejects_table(
    source: str,
    row_numbers: np.ndarray,
    reasons: np.ndarray,
    cols: dict[str, pa.Array | None],
    rows: np.ndarray,
) -> pa.Table:
    n = len(rows)
    keys = key_columns(cols, rows, ("RayID", "EdgeColoCode", "ZoneName", "OriginIP", "ClientIP"))
    reason_dict = pa.array(list(REASONS), pa.string())
    return pa.table(
        {
            "source": pa.array([source] * n, pa.string()) if n else pa.array([], pa.string()),
            "row": pa.array(row_numbers, pa.int64()),
            "reason": reason_dict.take(pa.array(reasons.astype(np.int64))),
            **keys,
            "raw": pa.nulls(n, pa.string()),
        },
        schema=REJECT_SCHEMA,
    )


def malformed_table(source: str, malformed: list[tuple[int, str]], reason: str) -> pa.Table:
    n = len(malformed)
    return pa.table(
        {
            "source": pa.array([source] * n, pa.string()),
            "row": pa.array([r for r, _ in malformed], pa.int64()),
            "reason": pa.array([reason] * n, pa.string()),
            "RayID": pa.nulls(n, pa.string()),
            "EdgeColoCode": pa.nulls(n, pa.string()),
            "ZoneName": pa.nulls(n, pa.string()),
            "OriginIP": pa.nulls(n, pa.string()),
            "ClientIP": pa.nulls(n, pa.string()),
            "raw": pa.array([t for _, t in malformed], pa.string()),
        },
        schema=REJECT_SCHEMA,
    )


class TableWriter:
    """Append tables to one file: Parquet (``.parquet``/``.pq``), NDJSON (``.json``/``.jsonl``/
    ``.ndjson``) or CSV (anything else). The schema is fixed by the first table; later tables are
    conformed to it (missing columns become nulls)."""

    def __init__(
        self,
        path: str | Path,
        schema: pa.Schema | None = None,
        *,
        background: bool = True,
        parquet_options: Any = None,
    ) -> None:
        # Writing (encoding, compression) runs on one background thread, overlapping the next
        # batch's evaluation; at most one table waits, so memory stays bounded.
        from concurrent.futures import ThreadPoolExecutor

        self._pool = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="aegisfwd-writer") if background else None
        )
        self._pending: Any = None
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        suffix = self.path.suffix.lower()
        self.kind = (
            "parquet"
            if suffix in (".parquet", ".pq")
            else "ndjson"
            if suffix in (".json", ".jsonl", ".ndjson")
            else "csv"
        )
        self.schema = schema
        # ParquetWriter keyword arguments, or a function of the schema returning them.
        self._parquet_options = parquet_options
        self._writer: Any = None
        self._file: Any = None
        self.rows = 0
        if schema is not None:
            self._open(schema)

    def _open(self, schema: pa.Schema) -> None:
        self.schema = schema
        if self.kind == "parquet":
            import pyarrow.parquet as pq

            opts = self._parquet_options
            opts = opts(schema) if callable(opts) else dict(opts or {"compression": "zstd"})
            self._writer = pq.ParquetWriter(self.path, schema, **opts)
        elif self.kind == "csv":
            import pyarrow.csv as pcsv

            self._plain = pa.schema(
                [
                    pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type)
                    for f in schema
                ]
            )
            self._writer = pcsv.CSVWriter(str(self.path), self._plain)
        else:
            self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def write(self, table: pa.Table) -> None:
        if self._pool is None:
            self._write(table)
            return
        if self._pending is not None:
            self._pending.result()  # re-raises a failed write here
        self._pending = self._pool.submit(self._write, table)

    def _write(self, table: pa.Table) -> None:
        if self.schema is None:
            self._open(table.schema)
        assert self.schema is not None
        if table.schema != self.schema:
            table = pa.table(
                {
                    f.name: (
                        table.column(f.name).cast(f.type)
                        if f.name in table.column_names
                        else pa.nulls(table.num_rows, f.type)
                    )
                    for f in self.schema
                },
                schema=self.schema,
            )
        self.rows += table.num_rows
        if self.kind == "parquet":
            self._writer.write_table(table, row_group_size=1 << 20)
        elif self.kind == "csv":
            self._writer.write_table(table.cast(self._plain))
        else:
            import json

            for rec in table.to_pylist():
                self._file.write(json.dumps(rec, default=str) + "\n")

    def close(self, empty_schema: pa.Schema | None = None) -> None:
        """Finish the file; one that got no table is written empty with ``empty_schema``."""
        if self._pool is not None:
            try:
                if self._pending is not None:
                    self._pending.result()
            finally:
                self._pending = None
                self._pool.shutdown(wait=True)
                self._pool = None
        if self.schema is None:
            self._open(empty_schema if empty_schema is not None else pa.schema([]))
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._file is not None:
            self._file.close()
            self._file = None
