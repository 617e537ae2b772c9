"""JSON logs that are not one object per line: a JSON array of records, pretty-printed (multi-line)
objects, or objects simply concatenated.

Records are found by parsing, not by lines (``json.JSONDecoder.raw_decode`` over a sliding text
window), so the count of records never depends on how they are laid out or on their neighbours.
Memory stays bounded: the window holds one read block plus the record being parsed. A record that
does not parse is one malformed record (its text is kept for the rejects file), and reading resumes
at the next place a record starts: the next line opening with ``{`` at the indentation the records
of this file use, or, for records on one line, the next ``{`` after a ``},``.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

READ_BLOCK_CHARS = 4 << 20
MAX_RECORD_CHARS = 64 << 20  # a "record" longer than this is garbage: skipped as one malformed record
RAW_TEXT_CHARS = 2000  # malformed record text kept for the rejects file
_WS = " \t\r\n\ufeff"


class JsonRecords:
    """Iterate ``(record number, dict | None, raw text if malformed)`` over a text stream."""

    def __init__(self, read: Any) -> None:
        self._read = read  # read(n) -> str ("" at the end)
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.decoder = json.JSONDecoder()
        self.resync: re.Pattern[str] | None = None
        self.number = 0

    def _more(self) -> bool:
        if self.eof:
            return False
        data = self._read(READ_BLOCK_CHARS)
        if not data:
            self.eof = True
            return False
        self.buf = self.buf[self.pos :] + data
        self.pos = 0
        return True

    def _skip(self, chars: str) -> None:
        while True:
            n = len(self.buf)
            while self.pos < n and self.buf[self.pos] in chars:
                self.pos += 1
            if self.pos < n or not self._more():
                return

    def __iter__(self) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
        while True:
            self._skip(_WS + ",[]")  # separators of arrays (and of concatenated arrays)
            if self.pos >= len(self.buf):
                return
            start = self.pos
            try:
                rec, end = self._decode(start)
            except ValueError:
                self.resync = self._resync_pattern(start)
                raw = self._skip_broken(start)
                yield self.number, None, raw
                self.number += 1
                continue
            self.pos = end
            if isinstance(rec, dict):
                yield self.number, rec, None
            else:
                text = self.buf[start:end]
                yield self.number, None, text[:RAW_TEXT_CHARS]
            self.number += 1

    def _decode(self, start: int) -> tuple[Any, int]:
        """Parse one value at ``start``, reading more text while the value is cut by the window."""
        while True:
            try:
                return self.decoder.raw_decode(self.buf, start)
            except json.JSONDecodeError as exc:
                cut = exc.pos >= len(self.buf) - 1 or "Unterminated string" in exc.msg
                if not cut or self.eof or len(self.buf) - start > MAX_RECORD_CHARS:
                    raise
                keep = start - self.pos
                if not self._more():
                    raise
                start = keep  # the window was rebased at self.pos

    def _resync_pattern(self, start: int) -> re.Pattern[str]:
        """Where the record after the broken one at ``start`` can begin: a line opening with ``{``
        at the broken record's own indentation when it opens a line (nested objects of
        pretty-printed records sit deeper), else a ``{`` after a ``}`` or at a line start."""
        line_start = self.buf.rfind("\n", 0, start) + 1
        indent = self.buf[line_start:start]
        if indent.strip(" \t") == "":
            return re.compile(r"\n" + re.escape(indent) + r"\{")
        return re.compile(r"(?:\}\s*,?\s*|\n[ \t]*)\{")

    def _skip_broken(self, start: int) -> str:
        """Move past a record that does not parse; returns its text (shortened)."""
        assert self.resync is not None
        while True:
            m = self.resync.search(self.buf, start + 1)
            if m is not None:
                end = m.end() - 1  # at the "{" of the next record
                break
            if not self._more():
                end = len(self.buf)
                break
            start = 0  # rebased
        raw = self.buf[self.pos : end].strip(_WS + ",")
        self.pos = end
        return raw[:RAW_TEXT_CHARS]


def json_records_chunks(
    path: Path, open_text: Any, names: Sequence[str], batch_rows: int, make_chunk: Any
) -> Iterator[Any]:
    """Chunks of at most ``batch_rows`` records of a JSON-array / multi-line JSON file.
    ``open_text()`` returns ``(binary stream, byte counter)``; ``make_chunk(table, first_row,
    malformed, progress, numbers)`` builds the reader's chunk type."""
    from ._read import column_from_values
    from ._utf8 import readable

    stream, raw = open_text()
    # surrogateescape: bytes that are not UTF-8 survive as they were, so the evaluator rejects
    # their row naming the field (evaluation/_utf8.py) instead of looking up a mangled value.
    decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")

    def read(n: int) -> str:
        data = stream.read(n)
        return decoder.decode(data, final=not data)

    cols: dict[str, list[Any]] = {n: [] for n in names}
    numbers: list[int] = []
    bad: list[tuple[int, str]] = []
    done = 0

    def flush() -> Any:
        nonlocal cols, numbers, bad, done
        table = pa.table({n: column_from_values(v) for n, v in cols.items()}) if numbers else None
        first = numbers[0] if numbers else (bad[0][0] if bad else 0)
        chunk = make_chunk(table, first, bad, float(raw.count - done), np.asarray(numbers, dtype=np.int64))
        done = raw.count
        cols, numbers, bad = {n: [] for n in names}, [], []
        return chunk

    try:
        for number, rec, text in JsonRecords(read):
            if rec is None:
                bad.append((number, readable(text or "")))
            else:
                numbers.append(number)
                for n in names:
                    cols[n].append(rec.get(n))
            if len(numbers) >= batch_rows:
                yield flush()
        if numbers or bad or raw.count > done:
            yield flush()
    finally:
        stream.close()
