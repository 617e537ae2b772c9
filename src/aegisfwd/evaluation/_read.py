"""Log sources: files (Parquet, CSV, NDJSON; gzip or not), directories, Arrow streams, in batches.

Every reader yields ``Chunk``s of at most ``batch_rows`` rows holding only the columns the evaluator
needs, so memory stays bounded whatever the size of the log. Records a reader cannot parse come
back as ``Chunk.malformed`` (they become rejects, never stop the run).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

_PARQUET_SUFFIXES = {".parquet", ".pq", ".parq"}
_CSV_SUFFIXES = {".csv", ".tsv"}
_JSON_SUFFIXES = {".json", ".ndjson", ".jsonl", ".log", ".txt"}
_COMPRESSION_SUFFIXES = {".gz": "gzip", ".gzip": "gzip", ".bz2": "bz2", ".zst": "zstd", ".lz4": "lz4"}

NDJSON_BLOCK_BYTES = 8 << 20


@dataclass
class Chunk:
    """Up to ``batch_rows`` records of one source, in order."""

    batch: pa.RecordBatch | None
    source: str
    first_row: int  # record number (0-based, within the source) of the batch's first row
    malformed: list[tuple[int, str]] = field(default_factory=list)  # (record number, raw text)
    malformed_reason: str = "malformed-json"
    progress: float = 0.0  # work units done by this chunk (bytes of file, or rows)
    row_numbers: np.ndarray | None = None  # record number of each row, when not first_row + position

    def rows_of(self, positions: np.ndarray) -> np.ndarray:
        """Record numbers (within the source) of the batch rows at ``positions``."""
        if self.row_numbers is not None:
            return self.row_numbers[positions]
        return self.first_row + positions.astype(np.int64)


@dataclass
class Source:
    """A log to read: ``total`` work units (bytes or rows; None when unknown) and the chunk stream."""

    chunks: Iterator[Chunk]
    total: float | None
    unit: str  # "bytes" or "rows"
    description: str
    errors: list[str] = field(default_factory=list)  # whole-source problems (a truncated gzip, ...)


def _compression(path: Path) -> tuple[str | None, str]:
    suffixes = [s.lower() for s in path.suffixes]
    comp = None
    if suffixes and suffixes[-1] in _COMPRESSION_SUFFIXES:
        comp = _COMPRESSION_SUFFIXES[suffixes[-1]]
        suffixes = suffixes[:-1]
    return comp, suffixes[-1] if suffixes else ""


def detect_format(path: Path) -> str:
    """``parquet``, ``csv`` or ``ndjson``: by suffix, else by sniffing the first bytes."""
    comp, suffix = _compression(path)
    if suffix in _PARQUET_SUFFIXES:
        return "parquet"
    if suffix in _CSV_SUFFIXES:
        return "csv"
    if suffix in _JSON_SUFFIXES:
        return "ndjson"
    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"PAR1":
        return "parquet"
    try:
        with pa.input_stream(str(path), compression=comp) as s:
            text = s.read(4096).lstrip()
    except (OSError, pa.ArrowException):
        text = b""
    return "ndjson" if text[:1] in (b"{", b"[") else "csv"


def expand_paths(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Files of a path, a directory (recursively, sorted, hidden files skipped) or a list of them."""
    items = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and not any(part.startswith((".", "_")) for part in f.relative_to(p).parts):
                    out.append(f)
        elif p.exists():
            out.append(p)
        else:
            raise FileNotFoundError(f"no such log file or directory: {p}")
    if not out:
        raise FileNotFoundError(f"no log files found in {source!r}")
    return out


def is_path_like(source: Any) -> bool:
    if isinstance(source, (str, os.PathLike)):
        return True
    return isinstance(source, (list, tuple)) and bool(source) and all(isinstance(s, (str, os.PathLike)) for s in source)


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------
def _present(schema_names: Iterable[str], names: Sequence[str]) -> list[str]:
    have = set(schema_names)
    return [n for n in names if n in have]


def _parquet_chunks(path: Path, names: Sequence[str], batch_rows: int) -> Iterator[Chunk]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    size = path.stat().st_size
    total = max(pf.metadata.num_rows, 1)
    cols = _present(pf.schema_arrow.names, names)
    row = 0
    for batch in pf.iter_batches(batch_size=batch_rows, columns=cols, use_threads=True):
        yield Chunk(batch, str(path), row, progress=size * batch.num_rows / total)
        row += batch.num_rows


class _InvalidRows:
    def __init__(self) -> None:
        self.rows: list[tuple[int, str]] = []

    def __call__(self, row: Any) -> str:
        number = row.number if row.number is not None else -1
        self.rows.append((int(number) - 1 if number > 0 else -1, row.text))  # 1-based line -> record-ish
        return "skip"


class _Counted(io.RawIOBase):
    """A raw file that counts the (compressed) bytes read, for progress."""

    def __init__(self, f: Any) -> None:
        self._f = f
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self._f.readinto(b)
        self.count += n or 0
        return n or 0

    def close(self) -> None:
        self._f.close()
        super().close()


def _open_counted(path: Path) -> tuple[Any, _Counted]:
    comp, _ = _compression(path)
    raw = _Counted(open(path, "rb", buffering=0))
    buffered = io.BufferedReader(raw, buffer_size=1 << 20)
    if comp is None:
        return buffered, raw
    return pa.CompressedInputStream(pa.PythonFile(buffered, mode="r"), comp), raw


def _csv_chunks(path: Path, names: Sequence[str], batch_rows: int, errors: list[str]) -> Iterator[Chunk]:
    import pyarrow.csv as pcsv

    invalid = _InvalidRows()
    stream, raw = _open_counted(path)
    delimiter = "\t" if _compression(path)[1] == ".tsv" else ","
    try:
        reader = pcsv.open_csv(
            stream,
            read_options=pcsv.ReadOptions(block_size=4 << 20, use_threads=False),
            parse_options=pcsv.ParseOptions(delimiter=delimiter, invalid_row_handler=invalid),
            # Every needed column as text: a column that is numeric in one block and text in another
            # must not stop the reader; the evaluator parses values itself.
            convert_options=pcsv.ConvertOptions(
                column_types={n: pa.large_string() for n in names},
                include_columns=list(names),
                include_missing_columns=True,
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowInvalid, OSError) as exc:
        errors.append(f"{path}: cannot read as CSV: {exc}")
        stream.close()
        return
    row = 0
    done = 0
    try:
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except (pa.ArrowInvalid, OSError, EOFError) as exc:
                errors.append(f"{path}: stopped reading at record {row}: {exc}")
                break
            for start in range(0, batch.num_rows, batch_rows):
                part = batch.slice(start, batch_rows)
                bad, invalid.rows = invalid.rows, []
                yield Chunk(part, str(path), row, bad, "malformed-csv", progress=raw.count - done)
                done = raw.count
                row += part.num_rows
        if invalid.rows:
            yield Chunk(None, str(path), row, invalid.rows, "malformed-csv", progress=raw.count - done)
    finally:
        stream.close()


def _ndjson_chunks(
    path: Path, names: Sequence[str], batch_rows: int, errors: list[str], block_bytes: int
) -> Iterator[Chunk]:
    stream, raw = _open_counted(path)
    parser = NdjsonBlockParser(names)
    row = 0
    done = 0
    carry = b""
    try:
        eof = False
        while not eof:
            try:
                data = stream.read(block_bytes)
            except (OSError, pa.ArrowException, EOFError) as exc:
                errors.append(f"{path}: input ends early (corrupt or truncated compression): {exc}")
                data = b""
            if not data:
                eof = True
                block, carry = carry, b""
            else:
                buf = carry + data
                cut = buf.rfind(b"\n")
                if cut < 0:
                    carry = buf
                    continue
                block, carry = buf[: cut + 1], buf[cut + 1 :]
            if not block.strip():
                continue
            table, bad, numbers = parser.parse(block, row)
            progress = raw.count - done
            done = raw.count
            n = table.num_rows if table is not None else 0
            if n == 0:
                yield Chunk(None, str(path), row, bad, "malformed-json", progress=progress)
                row += len(bad)
                continue
            # A block's malformed lines ride with its first chunk; they carry their own record numbers,
            # and so do the good rows of a block that had any (numbers then skip the broken lines).
            pos = 0
            for k, batch in enumerate(table.to_batches(max_chunksize=batch_rows)):
                nums = numbers[pos : pos + batch.num_rows] if numbers is not None else None
                yield Chunk(batch, str(path), row + pos, bad if k == 0 else [], "malformed-json",
                            progress=progress if k == 0 else 0.0, row_numbers=nums)
                pos += batch.num_rows
            row += n + len(bad)
    finally:
        stream.close()


class NdjsonBlockParser:
    """Parse blocks of complete NDJSON lines, surviving every Logpush quirk.

    Fast path: ``pyarrow.json`` with an explicit schema for the needed fields only (other fields,
    nested or not, are ignored). Arrow stops on a field that changes type between rows and on a
    broken line, so a block it refuses is parsed line by line with ``json.loads``: values of one
    field with mixed types become text (the evaluator parses text), broken lines come back as
    malformed. The explicit schema then follows the types that block had most of.
    """

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        self.schema: pa.Schema | None = None

    def parse(self, block: bytes, first_row: int) -> tuple[pa.Table | None, list[tuple[int, str]], np.ndarray | None]:
        """``(rows, malformed lines as (record number, text), record numbers of the rows or None
        when they are simply consecutive from first_row)``."""
        import pyarrow.json as pj

        if self.schema is not None:
            try:
                table = pj.read_json(
                    io.BytesIO(block),
                    read_options=pj.ReadOptions(block_size=max(len(block), 1 << 20), use_threads=True),
                    parse_options=pj.ParseOptions(explicit_schema=self.schema, unexpected_field_behavior="ignore"),
                )
                return table, [], None
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
        return self._slow(block, first_row)

    def _slow(self, block: bytes, first_row: int) -> tuple[pa.Table | None, list[tuple[int, str]], np.ndarray | None]:
        names = self.names
        cols: dict[str, list[Any]] = {n: [] for n in names}
        bad: list[tuple[int, str]] = []
        good = 0
        numbers: list[int] = []
        loads = json.loads
        for line in block.split(b"\n"):
            if not line.strip():
                continue
            try:
                rec = loads(line)
                if not isinstance(rec, dict):
                    raise ValueError("not an object")
            except ValueError:
                bad.append((first_row + good + len(bad), line.decode("utf-8", "replace")))
                continue
            numbers.append(first_row + good + len(bad))
            good += 1
            for n in names:
                cols[n].append(rec.get(n))
        if good == 0:
            return None, bad, None
        arrays = {}
        fields = []
        for n in names:
            arr, typ = _column_from_values(cols[n])
            arrays[n] = arr
            if typ is not None:
                fields.append(pa.field(n, typ))
        self.schema = pa.schema(fields) if fields else None
        return pa.table(arrays), bad, (np.asarray(numbers, dtype=np.int64) if bad else None)


def _column_from_values(values: list[Any]) -> tuple[pa.Array, pa.DataType | None]:
    """One field's values from ``json.loads``: int64 if all ints, text if all strings or mixed.

    Returns the array and the Arrow type to expect in later blocks (``None`` when all null).
    """
    kinds = {type(v) for v in values if v is not None}
    if not kinds:
        return pa.nulls(len(values), pa.large_string()), None
    if kinds == {int}:
        try:
            return pa.array(values, pa.int64()), pa.int64()
        except (OverflowError, pa.ArrowInvalid):
            pass
    if kinds <= {float, int}:
        if kinds == {float}:
            return pa.array(values, pa.float64()), pa.float64()
    if kinds == {str}:
        return pa.array(values, pa.large_string()), pa.string()
    out = [None if v is None else _text(v) for v in values]
    # Mixed kinds: keep exact text; later blocks go back to Arrow's reader typed as the majority kind.
    majority = max(kinds, key=lambda t: sum(1 for v in values if type(v) is t))
    hint = {int: pa.int64(), float: pa.float64(), str: pa.string()}.get(majority)
    return pa.array(out, pa.large_string()), hint


def _text(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(v, separators=(",", ":"), default=str)


# ---------------------------------------------------------------------------------------------
# Public entry
# ---------------------------------------------------------------------------------------------
def open_source(
    source: Any, names: Sequence[str], batch_rows: int, *, ndjson_block_bytes: int | None = None
) -> Source:
    """Open any supported log source. ``names``: the columns to read where present."""
    block_bytes = NDJSON_BLOCK_BYTES if ndjson_block_bytes is None else int(ndjson_block_bytes)
    names = list(dict.fromkeys(names))
    if is_path_like(source):
        paths = expand_paths(source)
        errors: list[str] = []
        total = float(sum(p.stat().st_size for p in paths))

        def gen() -> Iterator[Chunk]:
            for p in paths:
                fmt = detect_format(p)
                if fmt == "parquet":
                    try:
                        yield from _parquet_chunks(p, names, batch_rows)
                    except (pa.ArrowInvalid, OSError) as exc:
                        errors.append(f"{p}: cannot read as Parquet: {exc}")
                elif fmt == "csv":
                    yield from _csv_chunks(p, names, batch_rows, errors)
                else:
                    yield from _ndjson_chunks(p, names, batch_rows, errors, block_bytes)

        desc = str(paths[0]) if len(paths) == 1 else f"{len(paths)} files"
        return Source(gen(), total, "bytes", desc, errors)

    # In-memory and streamed Arrow data.
    total: float | None = None
    if isinstance(source, pa.RecordBatch):
        reader: Any = pa.RecordBatchReader.from_batches(source.schema, [source])
        total = float(source.num_rows)
    elif isinstance(source, pa.Table):
        reader = source.to_reader(max_chunksize=batch_rows)
        total = float(source.num_rows)
    elif isinstance(source, pa.RecordBatchReader):
        reader = source
    elif hasattr(source, "__arrow_c_stream__"):
        if hasattr(source, "__len__") and not hasattr(source, "execute"):
            try:
                total = float(len(source))
            except TypeError:
                total = None
        reader = pa.RecordBatchReader.from_stream(source)
    elif hasattr(source, "__arrow_c_array__"):
        reader = pa.RecordBatchReader.from_batches(*_one_batch(pa.record_batch(source)))
    else:
        try:
            import pandas as pd

            if isinstance(source, pd.DataFrame):
                table = pa.Table.from_pandas(source, preserve_index=False)
                return open_source(table, names, batch_rows)
        except ImportError:  # pragma: no cover
            pass
        raise TypeError(
            f"cannot read a log from {type(source).__name__}: pass a path, a list of paths, a directory, "
            "a pyarrow Table/RecordBatchReader or an object with __arrow_c_stream__ (pandas, Polars, DuckDB)"
        )

    def gen_stream() -> Iterator[Chunk]:
        cols = _present(reader.schema.names, names)
        row = 0
        for batch in reader:
            batch = batch.select(cols) if cols != batch.schema.names else batch
            for start in range(0, batch.num_rows, batch_rows):
                part = batch.slice(start, batch_rows)  # zero-copy
                yield Chunk(part, "<arrow>", row, progress=float(part.num_rows))
                row += part.num_rows

    return Source(gen_stream(), total, "rows", type(source).__name__)


def _one_batch(batch: pa.RecordBatch) -> tuple[pa.Schema, list[pa.RecordBatch]]:
    return batch.schema, [batch]
