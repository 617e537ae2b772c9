"""Log values that are not valid UTF-8 text: which rows hold them, and a readable stand-in.

Readers do not all check text: Arrow's JSON reader, a CSV read without its UTF-8 check and a Parquet
string column pass the bytes through as they are, and a Parquet ``binary`` column is bytes by type.
A value that cannot be read as text must not reach the evaluator (a ``UnicodeDecodeError`` in the
middle of a run, or a lookup of a mangled id), so every column the evaluator reads is checked once
per batch, here: the rows whose value is not UTF-8 are returned (they are rejected with a reason
naming the field), and their values are replaced by the bytes decoded with U+FFFD for what cannot be
decoded, so that counting, examples and the rejects file can still show them.

The check costs one UTF-8 validation pass over each text column (Arrow's, in C++; for a dictionary
column, over its dictionary only); the per-value work is only done for a column that fails it.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ._arrow import _chunk, dictionary_indices

_BINARY_OF = {
    pa.string(): pa.binary(),
    pa.large_string(): pa.large_binary(),
    pa.string_view(): pa.binary_view(),
}


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _is_bytes(t: pa.DataType) -> bool:
    return pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t)


def _decode_each(values: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Binary values -> (text with U+FFFD where not UTF-8, rows that were not UTF-8)."""
    out: list[str | None] = []
    bad = np.zeros(len(values), dtype=bool)
    for k, v in enumerate(values.to_pylist()):
        if v is None:
            out.append(None)
            continue
        try:
            out.append(v.decode("utf-8"))
        except UnicodeDecodeError:
            out.append(v.decode("utf-8", "replace"))
            bad[k] = True
    return pa.array(out, pa.large_string()), bad


def check_text(arr: pa.Array | None) -> tuple[pa.Array | None, np.ndarray | None]:
    """``(column safe to read as text, rows whose value is not UTF-8 or None when there are none)``.

    Text and binary columns (plain or dictionary-encoded) are checked; other types (numbers, nested
    values) are returned as they are. A column whose values are all UTF-8 is returned unchanged,
    except that a binary one becomes ``large_string``.
    """
    if arr is None:
        return None, None
    t = arr.type
    if pa.types.is_dictionary(t):
        if not (_is_text(t.value_type) or _is_bytes(t.value_type)):
            return arr, None
        a = _chunk(arr)
        fixed, bad_entries = check_text(a.dictionary)
        if bad_entries is None and fixed is a.dictionary:
            return arr, None
        assert fixed is not None
        rows = None
        if bad_entries is not None:
            rows = np.append(bad_entries, False)[dictionary_indices(a)]  # -1 (a null row) reads False
        return pa.DictionaryArray.from_arrays(a.indices, fixed), rows
    if _is_text(t):
        a = _chunk(arr)
        as_bytes = a.view(_BINARY_OF[a.type])
        try:
            # Arrow's cast from bytes to text checks UTF-8 in C++ (about 2-4 ms per million values
            # here; a third less than validate(full=True), which checks the offsets too).
            as_bytes.cast(a.type)
            return arr, None
        except pa.ArrowInvalid:
            pass
        fixed_text, bad = _decode_each(as_bytes)
        return fixed_text, (bad if bad.any() else None)
    if _is_bytes(t):
        a = _chunk(arr)
        try:
            return a.cast(pa.large_string()), None  # the cast checks UTF-8
        except pa.ArrowInvalid:
            pass
        fixed_text, bad = _decode_each(a)
        return fixed_text, (bad if bad.any() else None)
    return arr, None


def raw_bytes(text: str) -> bytes:
    """The bytes a text decoded with ``surrogateescape`` came from; a lone surrogate that no bytes
    gave (a JSON escape of half a pair) as its ``surrogatepass`` bytes, which are not UTF-8 either."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def readable(text: str) -> str:
    """``text`` as valid UTF-8 text: what is not, replaced by U+FFFD (for messages and raw lines)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return raw_bytes(text).decode("utf-8", "replace")
