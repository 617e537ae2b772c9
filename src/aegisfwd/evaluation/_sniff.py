"""What a log file really is: compression and format from its first bytes, not only its name.

Names lie (a gzip file without ``.gz``, a CSV named ``.parquet``): the content decides, and a
``note`` says when it disagreed with the name. A file that cannot be a log at all (empty, binary,
a CSV without a header line) raises ``LogInputError`` naming the file and what is wrong, before a
single row is read, so a run never ends in silent all-zero tables.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..errors import LogInputError

PARQUET_SUFFIXES = {".parquet", ".pq", ".parq"}
CSV_SUFFIXES = {".csv", ".tsv"}
JSON_SUFFIXES = {".json", ".ndjson", ".jsonl", ".log", ".txt"}
COMPRESSION_SUFFIXES = {".gz": "gzip", ".gzip": "gzip", ".bz2": "bz2", ".zst": "zstd", ".lz4": "lz4"}
# Magic numbers of the compressions Arrow reads (RFC 1952, bzip2, RFC 8878, the LZ4 frame format).
_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bz2"), (b"\x28\xb5\x2f\xfd", "zstd"), (b"\x04\x22\x4d\x18", "lz4"))
PARQUET_MAGIC = b"PAR1"
SNIFF_BYTES = 64 << 10


@dataclass
class FileKind:
    """How to read one file: ``format`` is ``parquet``, ``csv``, ``ndjson`` (one object per line) or
    ``json`` (a JSON array of records, or objects spread over several lines / concatenated)."""

    format: str
    compression: str | None
    delimiter: str = ","
    header: list[str] | None = None  # a CSV's column names
    notes: list[str] = field(default_factory=list)


def name_hints(path: Path) -> tuple[str | None, str]:
    """(compression named by the last suffix, the format suffix before it), lower-cased."""
    suffixes = [s.lower() for s in path.suffixes]
    comp = None
    if suffixes and suffixes[-1] in COMPRESSION_SUFFIXES:
        comp = COMPRESSION_SUFFIXES[suffixes[-1]]
        suffixes = suffixes[:-1]
    return comp, suffixes[-1] if suffixes else ""


def _named_format(suffix: str) -> str | None:
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in JSON_SUFFIXES:
        return "json"
    return None


def _looks_binary(data: bytes) -> bool:
    """NUL bytes, or more than 5% of the bytes not UTF-8 (a cut multi-byte character at the end
    does not count). A few stray bytes in a text log are corrupt values, not a binary file: their
    rows are rejected naming the field (evaluation/_utf8.py) and the rest of the file is read."""
    if b"\x00" in data:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start >= len(data) - 4 and len(data) > 4:
            return False
        not_utf8 = data[: len(data) - 4].decode("utf-8", "replace").count("\ufffd") - data.count(
            "\ufffd".encode()
        )
        return not_utf8 * 20 > len(data)
    return False


def _first_line(text: bytes) -> bytes:
    return text.split(b"\n", 1)[0].rstrip(b"\r")


def sniff(path: Path, columns: list[str] | None = None) -> FileKind:
    """Decide how to read ``path``; ``columns``: the column names the evaluation reads (a CSV
    whose header names none of them is refused). Raises ``LogInputError``."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise LogInputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if size == 0:
        raise LogInputError(f"{path}: empty file (0 bytes): not a log")
    named_comp, suffix = name_hints(path)
    named = _named_format(suffix)
    notes: list[str] = []

    comp = next((c for magic, c in _MAGIC if head.startswith(magic)), None)
    if comp != named_comp:
        if comp is not None:
            why = f"its name ends in {path.suffix!r}" if named_comp else "its name has no compression suffix"
            notes.append(f"{path}: {comp}-compressed although {why}: read as {comp}")
        else:
            notes.append(f"{path}: named {path.suffix!r} but not {named_comp}-compressed: read as is")

    if comp is None and head.startswith(PARQUET_MAGIC):
        if named != "parquet":
            notes.append(f"{path}: a Parquet file (magic PAR1) although named {path.name!r}: read as Parquet")
        return FileKind("parquet", None, notes=notes)

    text = _head(path, comp)
    stripped = text.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not stripped:
        what = "empty after decompression" if comp else "only whitespace"
        raise LogInputError(f"{path}: {what}: not a log")
    if _looks_binary(text):
        raise LogInputError(
            f"{path}: binary content, not a log (expected Parquet, CSV or JSON, plain or gzip/bz2/zstd/lz4 compressed)"
        )

    if stripped[:1] in (b"[", b"{"):
        fmt = "json" if stripped[:1] == b"[" else _json_layout(stripped)
        if named in ("parquet", "csv"):
            notes.append(f"{path}: JSON content although named {path.name!r}: read as JSON")
        return FileKind(fmt, comp, notes=notes)

    if named == "json" and any(line.lstrip()[:1] == b"{" for line in stripped.split(b"\n")[1:50]):
        return FileKind("ndjson", comp, notes=notes)  # NDJSON whose first line is broken

    # Text that is not JSON: CSV (or TSV). The first line must be the header.
    line = _first_line(stripped).decode("utf-8", "replace")
    delimiter = "\t" if suffix == ".tsv" or ("\t" in line and "," not in line) else ","
    if named in ("parquet", "json"):
        kind = "TSV" if delimiter == "\t" else "CSV"
        notes.append(f"{path}: {kind} text although named {path.name!r}: read as {kind}")
    header = next(csv.reader(io.StringIO(line), delimiter=delimiter), [])
    if columns is not None and not {h.strip() for h in header} & set(columns):
        shown = line if len(line) <= 80 else line[:77] + "..."
        raise LogInputError(
            f"{path}: the first line is not a CSV header naming any column the evaluation reads "
            f"(such as {', '.join(columns[:4])}): it is {shown!r}. A CSV log needs a header line; "
            "name other columns with --map COL=FIELD"
        )
    return FileKind("csv", comp, delimiter=delimiter, header=[h.strip() for h in header], notes=notes)


def _head(path: Path, comp: str | None) -> bytes:
    """The first ``SNIFF_BYTES`` of the (decompressed) content. A compressed file cut short still
    gives what it holds (reading reports the cut later); one that yields nothing is refused."""
    if comp == "gzip":  # zlib hands back what a cut stream holds; Arrow's reader fails outright
        import zlib

        with open(path, "rb") as f:
            raw = f.read(4 << 20)
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out = d.decompress(raw, SNIFF_BYTES)
        except zlib.error as exc:
            raise LogInputError(f"{path}: cannot decompress as gzip: {exc}") from None
        if not out and not d.eof:
            raise LogInputError(f"{path}: cannot decompress as gzip: the stream ends before any data")
        return out
    parts: list[bytes] = []
    got = 0
    try:
        with pa.input_stream(str(path), compression=comp) as s:
            while got < SNIFF_BYTES:
                piece = s.read(4096)
                if not piece:
                    break
                parts.append(piece)
                got += len(piece)
    except (OSError, pa.ArrowException, EOFError) as exc:
        if not parts:
            raise LogInputError(f"{path}: cannot decompress as {comp}: {exc}") from None
    return b"".join(parts)


def _json_layout(text: bytes) -> str:
    """``ndjson`` when the first line is one whole JSON object, else ``json`` (pretty-printed or
    concatenated objects). A first line longer than the sniffed bytes is taken as NDJSON."""
    if b"\n" not in text:
        return "ndjson"
    try:
        # surrogateescape: a stray byte in a value does not make the line something else than JSON
        rec: Any = json.loads(_first_line(text).decode("utf-8", "surrogateescape"))
    except ValueError:
        return "json"
    return "ndjson" if isinstance(rec, dict) else "json"
