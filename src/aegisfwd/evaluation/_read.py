"""Log sources: files (Parquet, CSV, NDJSON; gzip or not), directories, Arrow streams, in batches.

Every reader yields ``Chunk``s of at most ``batch_rows`` rows holding only the columns the evaluator
needs, so memory stays bounded whatever the size of the log. Records a reader cannot parse come
back as ``Chunk.malformed`` (they become rejects, never stop the run).
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import LogInputError
from ._sniff import FileKind, name_hints, sniff

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
    notes: list[str] = field(default_factory=list)  # what reading found and did (a name that lied, ...)
    files: list[str] = field(default_factory=list)  # the files read, in order
    given: list[tuple[str, list[str]]] = field(default_factory=list)  # each path given -> its files

    def given_by_file(self) -> dict[str, str]:
        """file -> the directory given that holds it (files given by name are not listed)."""
        return {f: g for g, files in self.given for f in files if f != g}


def _compression(path: Path) -> tuple[str | None, str]:
    return name_hints(path)


def detect_format(path: Path) -> str:
    """``parquet``, ``csv``, ``ndjson`` or ``json`` (arrays, multi-line objects), by content."""
    return sniff(path).format


def expand_paths(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Files of a path, a directory (recursively, sorted, hidden files skipped) or a list of them."""
    return [f for _, files in expand_sources(source) for f in files]


def expand_sources(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
) -> list[tuple[Path, list[Path]]]:
    """Each path given with the files it stands for (a directory: its files, recursively, sorted,
    hidden files skipped). A missing path or a directory without files is a ``LogInputError``."""
    items = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    out: list[tuple[Path, list[Path]]] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            files = [
                f
                for f in sorted(p.rglob("*"))
                if f.is_file() and not any(part.startswith((".", "_")) for part in f.relative_to(p).parts)
            ]
            if not files:
                raise LogInputError(
                    f"{p}: directory holds no log file (files whose name starts with . or _ are skipped)"
                )
            out.append((p, files))
        elif p.exists():
            out.append((p, [p]))
        else:
            raise LogInputError(f"{p}: no such log file or directory")
    if not out:
        raise LogInputError("no log file given")
    return out


def is_path_like(source: Any) -> bool:
    if isinstance(source, (str, os.PathLike)):
        return True
    return (
        isinstance(source, (list, tuple))
        and bool(source)
        and all(isinstance(s, (str, os.PathLike)) for s in source)
    )


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------
def _present(schema_names: Iterable[str], names: Sequence[str]) -> list[str]:
    have = set(schema_names)
    return [n for n in names if n in have]


def _parquet_chunks(
    path: Path, names: Sequence[str], batch_rows: int, dictionary: Sequence[str] = ()
) -> Iterator[Chunk]:
    """Batches of the ``names`` present in the file; text columns among ``dictionary`` come as
    dictionary arrays straight from the file's dictionary pages (no string per row is built, and
    the evaluator looks values up, parses and writes them per distinct value)."""
    import pyarrow.parquet as pq

    # pre_buffer (pyarrow's default) keeps the raw bytes of every row group read so far until the
    # reader is done: memory grew ~35 MB per 1M-row row group, and reading was slower. Without it
    # each column chunk is read when decoded and freed after.
    pf = pq.ParquetFile(path, pre_buffer=False)
    cols = _present(pf.schema_arrow.names, names)
    as_dict = [
        c
        for c in _present(cols, dictionary)
        if pa.types.is_string(t := pf.schema_arrow.field(c).type) or pa.types.is_large_string(t)
    ]
    if as_dict:
        pf = pq.ParquetFile(path, metadata=pf.metadata, read_dictionary=as_dict, pre_buffer=False)
    size = path.stat().st_size
    total = max(pf.metadata.num_rows, 1)
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


def _open_counted(path: Path, comp: str | None) -> tuple[Any, _Counted]:
    raw = _Counted(open(path, "rb", buffering=0))  # noqa: SIM115 - closed with the stream
    buffered = io.BufferedReader(raw, buffer_size=1 << 20)
    if comp is None:
        return buffered, raw
    return pa.CompressedInputStream(pa.PythonFile(buffered, mode="r"), comp), raw


def _csv_chunks(
    path: Path, kind: FileKind, names: Sequence[str], batch_rows: int, errors: list[str]
) -> Iterator[Chunk]:
    import pyarrow.csv as pcsv

    invalid = _InvalidRows()
    stream, raw = _open_counted(path, kind.compression)
    delimiter = kind.delimiter
    try:
        reader = pcsv.open_csv(
            stream,
            read_options=pcsv.ReadOptions(block_size=4 << 20, use_threads=False),
            parse_options=pcsv.ParseOptions(delimiter=delimiter, invalid_row_handler=invalid),
            # Every needed column as text: a column that is numeric in one block and text in another
            # must not stop the reader; the evaluator parses values itself.
            convert_options=pcsv.ConvertOptions(
                column_types={n: pa.large_string() for n in names},
                # only the columns the header has: an absent column stays absent (not all null)
                include_columns=[n for n in names if kind.header is None or n in kind.header],
                include_missing_columns=kind.header is None,
                strings_can_be_null=True,
                # A value that is not UTF-8 would stop the file here; the evaluator rejects its row
                # alone, naming the field (evaluation/_utf8.py).
                check_utf8=False,
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
    path: Path,
    kind: FileKind,
    parser: NdjsonBlockParser,
    batch_rows: int,
    errors: list[str],
    block_bytes: int,
) -> Iterator[Chunk]:
    """Read blocks of whole lines, parse each, and gather the parsed rows into batches of
    ``batch_rows`` (a block holds a few tens of thousands of rows; the engine and the writers work
    best on larger batches). Every row carries its record number (malformed lines count too)."""
    stream, raw = _open_counted(path, kind.compression)
    row = 0  # record number of the next line
    done = 0
    carry = b""
    pending: list[pa.Table] = []
    pending_numbers: list[np.ndarray] = []
    pending_bad: list[tuple[int, str]] = []
    pending_rows = 0

    def flush(final: bool) -> Iterator[Chunk]:
        nonlocal pending, pending_numbers, pending_bad, pending_rows, done
        progress = float(raw.count - done)
        done = raw.count
        if pending_rows == 0:
            if pending_bad or progress:
                yield Chunk(None, str(path), row, pending_bad, "malformed-json", progress=progress)
            pending_bad = []
            return
        table = _concat_mixed(pending)
        numbers = np.concatenate(pending_numbers)
        bad = pending_bad
        pending, pending_numbers, pending_bad, pending_rows = [], [], [], 0
        for k, batch in enumerate(table.to_batches(max_chunksize=batch_rows)):
            start = k * batch_rows
            nums = numbers[start : start + batch.num_rows]
            yield Chunk(
                batch,
                str(path),
                int(nums[0]),
                bad if k == 0 else [],
                "malformed-json",
                progress=progress if k == 0 else 0.0,
                row_numbers=nums,
            )

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
            n = table.num_rows if table is not None else 0
            if n:
                pending.append(table)
                pending_numbers.append(
                    numbers if numbers is not None else np.arange(row, row + n, dtype=np.int64)
                )
                pending_rows += n
            pending_bad.extend(bad)
            row += n + len(bad)
            if pending_rows >= batch_rows:
                yield from flush(False)
        yield from flush(True)
    finally:
        stream.close()


def _json_records(
    path: Path, kind: FileKind, names: Sequence[str], batch_rows: int, errors: list[str]
) -> Iterator[Chunk]:
    """A JSON array of records, or multi-line / concatenated objects (``_jsonstream``)."""
    from ._jsonstream import json_records_chunks

    def make(
        table: pa.Table | None, first: int, bad: list[tuple[int, str]], progress: float, numbers: np.ndarray
    ) -> Chunk:
        batch = table.combine_chunks().to_batches()[0] if table is not None and table.num_rows else None
        return Chunk(
            batch,
            str(path),
            first,
            bad,
            "malformed-json",
            progress=progress,
            row_numbers=numbers if batch is not None else None,
        )

    try:
        yield from json_records_chunks(
            path, lambda: _open_counted(path, kind.compression), names, batch_rows, make
        )
    except (OSError, pa.ArrowException, EOFError) as exc:
        errors.append(f"{path}: input ends early (corrupt or truncated compression): {exc}")


def _concat_mixed(tables: list[pa.Table]) -> pa.Table:
    """Concatenate parsed blocks whose columns may differ in type (an integer field read as text in
    one block): a column with several types becomes text, exactly (integers keep every digit)."""
    if len(tables) == 1:
        return tables[0].combine_chunks()
    names = tables[0].column_names
    cols = {}
    for n in names:
        parts = [t.column(n) for t in tables]
        kinds = {p.type for p in parts if not pa.types.is_null(p.type)}
        if len(kinds) > 1:
            parts = [p.cast(pa.large_string()) if not pa.types.is_large_string(p.type) else p for p in parts]
        elif len(kinds) == 1:
            (k,) = kinds
            parts = [p.cast(k) if p.type != k else p for p in parts]
        cols[n] = pa.chunked_array(
            [c for p in parts for c in p.chunks], type=parts[0].type if parts else pa.null()
        )
    return pa.table(cols).combine_chunks()


class NdjsonBlockParser:
    """Parse blocks of complete NDJSON lines, surviving every Logpush quirk.

    1. Fast path: ``pyarrow.json`` with an explicit schema for the needed fields only (other fields,
       nested or not, are ignored), typed as learned from the first lines seen.
    2. Arrow stops on a field whose type changes between rows (an integer timestamp here, an RFC 3339
       string there; numbers sent as strings). The field named in Arrow's error is then read as text:
       its bare numbers are quoted in the block's bytes first (one literal-prefixed regex per such
       field, ``"Field":123`` -> ``"Field":"123"``), and the evaluator parses the text. Later blocks try
       the typed schema first again, so one odd segment of a log does not slow the rest.
    3. A block Arrow still refuses (a broken line, a nested object where a value was expected) is
       parsed line by line with ``json.loads``: mixed values become text, broken lines come back as
       malformed records.
    """

    _NUMBER = rb"(-?[0-9][0-9.eE+-]*|true|false)"

    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)
        self.types: dict[str, pa.DataType] | None = None
        self.textual: set[str] = set()  # fields that needed reading as text at least once
        self._patterns: dict[str, Any] = {}
        self.stats = {"typed": 0, "quoted": 0, "lines": 0}

    def _learn(self, block: bytes) -> None:
        types: dict[str, pa.DataType] = {}
        for line in block.split(b"\n", 2000)[:2000]:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if not isinstance(rec, dict):
                continue
            for n in self.names:
                v = rec.get(n)
                if n in types or v is None:
                    continue
                if isinstance(v, bool):
                    types[n] = pa.string()
                    self.textual.add(n)
                elif isinstance(v, int):
                    types[n] = pa.int64()
                elif isinstance(v, float):
                    # as text: an integer later in the field (a nanosecond timestamp) would lose
                    # digits through float64; the evaluator parses the text exactly
                    types[n] = pa.string()
                    self.textual.add(n)
                else:
                    types[n] = pa.string()
        self.types = types

    def _read(self, data: bytes, schema: pa.Schema) -> pa.Table:
        import pyarrow.json as pj

        return pj.read_json(
            io.BytesIO(data),
            read_options=pj.ReadOptions(block_size=1 << 20, use_threads=True),
            parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"),
        )

    def _schema(self, text: set[str]) -> pa.Schema:
        assert self.types is not None
        return pa.schema(
            [(n, pa.string() if n in text else self.types.get(n, pa.string())) for n in self.names]
        )

    def _quote(self, block: bytes, fields: set[str]) -> bytes:
        for f in sorted(fields):
            got = self._patterns.get(f)
            if got is None:
                key = re.escape(b'"' + f.encode() + b'":')
                got = self._patterns[f] = (
                    re.compile(key + rb"\s*" + self._NUMBER),
                    b'"' + f.encode() + b'":"\\1"',
                )
            pat, repl = got
            block = pat.sub(repl, block)
        return block

    def parse(
        self, block: bytes, first_row: int
    ) -> tuple[pa.Table | None, list[tuple[int, str]], np.ndarray | None]:
        """``(rows, malformed lines as (record number, text), record numbers of the rows or None
        when they are simply consecutive from first_row)``."""
        if self.types is None:
            self._learn(block)
        try:
            table = self._read(block, self._schema(set()))
            self.stats["typed"] += 1
            return table, [], None
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            text = set(self.textual) | self._culprits(str(exc))
        for _ in range(len(self.names) + 1):
            if not text:
                break
            try:
                table = self._read(self._quote(block, text), self._schema(text))
                self.textual |= text
                self.stats["quoted"] += 1
                return table, [], None
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                more = self._culprits(str(exc)) - text
                if not more:
                    break
                text |= more
        self.stats["lines"] += 1
        return self._slow(block, first_row)

    def _culprits(self, message: str) -> set[str]:
        """Needed fields an Arrow error blames: named ones, or every integer field for a failed
        int64 conversion (which names none)."""
        named = {c for c in re.findall(r"Column\(/([^)/]+)\)", message) if c in self.names}
        if not named and "to int64" in message and self.types is not None:
            named = {n for n, t in self.types.items() if pa.types.is_integer(t)}
        if not named and "to double" in message and self.types is not None:
            named = {n for n, t in self.types.items() if pa.types.is_floating(t)}
        return named

    def _slow(
        self, block: bytes, first_row: int
    ) -> tuple[pa.Table | None, list[tuple[int, str]], np.ndarray | None]:
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
                try:
                    rec = loads(line)
                except UnicodeDecodeError:
                    # Bytes that are not UTF-8 in a line that is otherwise JSON: parse it, keep the
                    # bytes (column_from_values), and let the evaluator reject the row naming the field
                    # (evaluation/_utf8.py), as it does for the rows Arrow's reader passes through.
                    rec = loads(line.decode("utf-8", "surrogateescape"))
                if not isinstance(rec, dict):
                    raise ValueError("not an object")  # noqa: TRY004 - handled as a malformed line below
            except ValueError:
                bad.append((first_row + good + len(bad), line.decode("utf-8", "replace")))
                continue
            numbers.append(first_row + good + len(bad))
            good += 1
            for n in names:
                cols[n].append(rec.get(n))
        if good == 0:
            return None, bad, None
        arrays = {n: column_from_values(cols[n]) for n in names}
        return pa.table(arrays), bad, (np.asarray(numbers, dtype=np.int64) if bad else None)


def column_from_values(values: list[Any]) -> pa.Array:
    """One field's values from ``json.loads``: int64 if all ints, float64 if all floats, else text
    (exact: integers keep every digit, nested values become compact JSON)."""
    kinds = {type(v) for v in values if v is not None}
    if not kinds:
        return pa.nulls(len(values), pa.large_string())
    if kinds == {int}:
        try:
            return pa.array(values, pa.int64())
        except (OverflowError, pa.ArrowInvalid):
            pass
    if kinds == {float}:
        return pa.array(values, pa.float64())
    if kinds == {str}:
        return _text_array(values)
    return _text_array([None if v is None else _text(v) for v in values])


def _text_array(texts: list[Any]) -> pa.Array:
    try:
        return pa.array(texts, pa.large_string())
    except UnicodeEncodeError:
        # Lone surrogates: bytes that were not UTF-8 (decoded with surrogateescape above) or a JSON
        # escape of half a pair ("\ud800"). Kept as the bytes they stand for, which are not UTF-8,
        # so the row is rejected naming the field (evaluation/_utf8.py) instead of read as a guess.
        from ._utf8 import raw_bytes

        return pa.array([None if t is None else raw_bytes(t) for t in texts], pa.large_binary())


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
    source: Any,
    names: Sequence[str],
    batch_rows: int,
    *,
    ndjson_block_bytes: int | None = None,
    dictionary: Sequence[str] = (),
) -> Source:
    """Open any supported log source. ``names``: the columns to read where present; ``dictionary``:
    those of them to read from Parquet as dictionary arrays (low-cardinality text)."""
    block_bytes = NDJSON_BLOCK_BYTES if ndjson_block_bytes is None else int(ndjson_block_bytes)
    names = list(dict.fromkeys(names))
    if is_path_like(source):
        given = expand_sources(source)
        paths = [f for _, files in given for f in files]
        kinds, problems = [], []
        for p in paths:  # every file checked before any is read: all bad files named at once
            try:
                kinds.append(sniff(p, names))
            except LogInputError as exc:
                problems.append(str(exc))
        if problems:
            head = (
                problems[0]
                if len(problems) == 1
                else (f"{len(problems)} of {len(paths)} log files cannot be read: " + "; ".join(problems))
            )
            raise LogInputError(head)
        errors: list[str] = []
        notes = [n for k in kinds for n in k.notes]
        total = float(sum(p.stat().st_size for p in paths))

        parser = NdjsonBlockParser(names)  # shared: what it learns about the log carries across files

        def gen() -> Iterator[Chunk]:
            for p, kind in zip(paths, kinds, strict=True):
                if kind.format == "parquet":
                    try:
                        yield from _parquet_chunks(p, names, batch_rows, dictionary)
                    except (pa.ArrowInvalid, OSError) as exc:
                        errors.append(f"{p}: cannot read as Parquet: {exc}")
                elif kind.format == "csv":
                    yield from _csv_chunks(p, kind, names, batch_rows, errors)
                elif kind.format == "json":
                    yield from _json_records(p, kind, names, batch_rows, errors)
                else:
                    yield from _ndjson_chunks(p, kind, parser, batch_rows, errors, block_bytes)

        desc = str(paths[0]) if len(paths) == 1 else f"{len(paths)} files"
        return Source(
            gen(),
            total,
            "bytes",
            desc,
            errors,
            notes,
            files=[str(p) for p in paths],
            given=[(str(g), [str(f) for f in fs]) for g, fs in given],
        )

    # In-memory and streamed Arrow data.
    rows_total: float | None = None
    if isinstance(source, pa.RecordBatch):
        reader: Any = pa.RecordBatchReader.from_batches(source.schema, [source])
        rows_total = float(source.num_rows)
    elif isinstance(source, pa.Table):
        reader = source.to_reader(max_chunksize=batch_rows)
        rows_total = float(source.num_rows)
    elif isinstance(source, pa.RecordBatchReader):
        reader = source
    elif hasattr(source, "__arrow_c_stream__"):
        if hasattr(source, "__len__") and not hasattr(source, "execute"):
            try:
                rows_total = float(len(source))
            except TypeError:
                rows_total = None
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

    return Source(gen_stream(), rows_total, "rows", type(source).__name__)


def _one_batch(batch: pa.RecordBatch) -> tuple[pa.Schema, list[pa.RecordBatch]]:
    return batch.schema, [batch]
