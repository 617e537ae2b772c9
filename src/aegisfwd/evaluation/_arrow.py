"""Vectorised parsing of log columns whatever type they arrive in.

Every function takes one Arrow array of any type (a column can be int in one batch and string in
the next, or hold nested values) and returns numpy arrays plus a validity mask; nothing raises on
bad values, bad values are simply invalid.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import _core

# Flow-key constants and the one-row definition (docs/evaluate.md "Flow key") live in
# aegisfwd._flowkey, free of pyarrow, for proxies deciding per connection.
from .._flowkey import PORT_SALT, RAY_SALT, STRING_SEED, flow_key_py, string_hash_py  # noqa: F401
from .._ingress import mix64_np

_MASK64 = (1 << 64) - 1

# Strings longer than this are hashed one by one in Python (only garbage is that long).
_MAX_VECTOR_BYTES = 256


def _chunk(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        return arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    return arr


def to_string(arr: pa.Array) -> pa.Array:
    """Any array as a ``large_string`` array: text as is, numbers in their decimal form, nested
    values as compact JSON, nulls kept."""
    arr = _chunk(arr)
    t = arr.type
    if pa.types.is_dictionary(t):
        return to_string(arr.dictionary_decode())
    if pa.types.is_large_string(t):
        return arr
    if pa.types.is_string(t) or pa.types.is_string_view(t):
        return arr.cast(pa.large_string())
    if pa.types.is_null(t):
        return pa.nulls(len(arr), pa.large_string())
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        vals = [None if v is None else v.decode("utf-8", "replace") for v in arr.to_pylist()]
        return pa.array(vals, pa.large_string())
    if pa.types.is_nested(t):
        vals = [
            None if v is None else json.dumps(v, separators=(",", ":"), default=str) for v in arr.to_pylist()
        ]
        return pa.array(vals, pa.large_string())
    try:
        return arr.cast(pa.large_string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.array([None if v is None else str(v) for v in arr.to_pylist()], pa.large_string())


def as_dictionary(arr: pa.Array | pa.ChunkedArray) -> pa.DictionaryArray:
    """A column as one dictionary array: itself when it is one (as Parquet columns read with
    ``read_dictionary`` are), else its text form dictionary-encoded. Entries need not be unique."""
    arr = _chunk(arr)
    if pa.types.is_dictionary(arr.type):
        return arr
    return _chunk(pc.dictionary_encode(to_string(arr)))


def dictionary_indices(arr: pa.DictionaryArray) -> np.ndarray:
    """The indices of a dictionary array as int64, -1 where null."""
    idx = arr.indices
    if idx.null_count:
        idx = idx.fill_null(-1)
    return np.asarray(idx.to_numpy(zero_copy_only=False), dtype=np.int64)


def _valid_np(arr: pa.Array) -> np.ndarray:
    if arr.null_count == 0:
        return np.ones(len(arr), dtype=bool)
    return np.asarray(arr.is_valid().to_numpy(zero_copy_only=False), dtype=bool)


# ---------------------------------------------------------------------------------------------
# Numbers
# ---------------------------------------------------------------------------------------------
_INT_RE = r"^[0-9]{1,19}$"
_FLOAT_RE = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"


def to_number(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Parse numbers: ``(ints, is_int, floats, valid)``.

    ``ints`` is exact int64 where ``is_int`` (integer input, or a string of digits); ``floats`` is
    float64 for every valid row (for integers beyond 2**53 it is rounded: use ``ints``).
    Strings are trimmed; anything that is not a number is invalid.
    """
    arr = _chunk(arr)
    n = len(arr)
    t = arr.type
    ints = np.zeros(n, dtype=np.int64)
    floats = np.zeros(n, dtype=np.float64)
    if pa.types.is_dictionary(t):
        return to_number(arr.dictionary_decode())
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        valid = _valid_np(arr)
        if pa.types.is_uint64(t):
            raw = arr.fill_null(0).to_numpy(zero_copy_only=False)
            valid &= raw <= np.uint64(np.iinfo(np.int64).max)
            ints = np.where(valid, raw, 0).astype(np.int64)
        else:
            ints = np.asarray(
                arr.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64
            )
        return ints, valid.copy(), ints.astype(np.float64), valid
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        f = np.asarray(
            arr.cast(pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False), dtype=np.float64
        )
        valid = np.isfinite(f)
        is_int = valid & (f == np.floor(f)) & (np.abs(f) < 2.0**53)
        ints[is_int] = f[is_int].astype(np.int64)
        return ints, is_int, np.where(valid, f, 0.0), valid
    if pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_duration(t):
        valid = _valid_np(arr)
        ints = np.asarray(arr.cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
        return ints, valid.copy(), ints.astype(np.float64), valid
    s = pc.utf8_trim_whitespace(to_string(arr))
    valid = np.zeros(n, dtype=bool)
    is_int = np.zeros(n, dtype=bool)
    m_int = _mask(pc.match_substring_regex(s, _INT_RE))
    if m_int.any():
        idx = np.flatnonzero(m_int)
        sub = s.take(pa.array(idx))
        try:
            vals = np.asarray(sub.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
            ok = np.ones(len(idx), dtype=bool)
        except (pa.ArrowInvalid, OverflowError):
            vals = np.zeros(len(idx), dtype=np.int64)
            ok = np.zeros(len(idx), dtype=bool)
            for k, v in enumerate(sub.to_pylist()):
                iv = int(v)
                if iv <= np.iinfo(np.int64).max:
                    vals[k], ok[k] = iv, True
        ints[idx[ok]] = vals[ok]
        floats[idx[ok]] = vals[ok].astype(np.float64)
        is_int[idx[ok]] = True
        valid[idx[ok]] = True
    m_float = _mask(pc.match_substring_regex(s, _FLOAT_RE)) & ~is_int
    if m_float.any():
        idx = np.flatnonzero(m_float)
        f = np.asarray(
            s.take(pa.array(idx)).cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64
        )
        ok = np.isfinite(f)
        floats[idx[ok]] = f[ok]
        valid[idx[ok]] = True
        whole = ok & (f == np.floor(f)) & (np.abs(f) < 2.0**53)
        ints[idx[whole]] = f[whole].astype(np.int64)
        is_int[idx[whole]] = True
    return ints, is_int, floats, valid


def _mask(b: pa.Array) -> np.ndarray:
    """A boolean Arrow array (nulls = False) as numpy."""
    return np.asarray(b.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def to_port(arr: pa.Array | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Ports as int64 and a mask of valid ones (an integer in [0, 65535])."""
    if arr is None:
        return np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)
    ints, is_int, _, _ = to_number(arr)
    ok = is_int & (ints >= 0) & (ints <= 65535)
    return np.where(ok, ints, 0), ok


# ---------------------------------------------------------------------------------------------
# Timestamps and durations
# ---------------------------------------------------------------------------------------------
_S_MAX = 1e11  # below: seconds (up to year 5138)
_MS_MAX = 1e14  # below: milliseconds
_US_MAX = 1e17  # below: microseconds; at or above: nanoseconds
_DEC_SECONDS_RE = r"^(?P<i>[0-9]{1,10})\.(?P<f>[0-9]*)$"
_ISO_OFFSET_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?([Zz]|[+-][0-9]{2}:?[0-9]{2})$"
_ISO_NAIVE_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?$"


def _scale_epoch(
    ints: np.ndarray, is_int: np.ndarray, floats: np.ndarray, valid: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Epoch numbers in s, ms, µs or ns (chosen by magnitude) to int64 ns, exactly for integers."""
    out = np.zeros(ints.shape[0], dtype=np.int64)
    ok = valid & (floats > 0)
    mag = np.abs(floats)
    for lo, hi, mult in (
        (0, _S_MAX, 10**9),
        (_S_MAX, _MS_MAX, 10**6),
        (_MS_MAX, _US_MAX, 10**3),
        (_US_MAX, np.inf, 1),
    ):
        sel = ok & (mag >= lo) & (mag < hi)
        exact = sel & is_int
        out[exact] = ints[exact] * mult
        approx = sel & ~is_int
        if approx.any():
            out[approx] = np.round(floats[approx] * mult).astype(np.int64)
    return out, ok


def to_epoch_ns(arr: pa.Array | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``EdgeStartTimestamp`` in any Logpush form to int64 Unix nanoseconds and a validity mask.

    Integers (or digit strings) are seconds, milliseconds, microseconds or nanoseconds by magnitude
    (< 1e11 s, < 1e14 ms, < 1e17 µs, else ns), parsed exactly as int64 (nanosecond values exceed
    float64 precision). Decimal strings/floats are seconds with a fraction. Strings in RFC 3339 /
    ISO 8601 form (``2024-05-01T12:00:00.123Z``, ``+02:00`` offsets) or ``YYYY-MM-DD HH:MM:SS``
    (taken as UTC) are parsed as such. Arrow timestamps are converted.
    """
    if arr is None:
        return np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)
    arr = _chunk(arr)
    t = arr.type
    if pa.types.is_dictionary(t):
        return to_epoch_ns(arr.dictionary_decode(), n)
    if pa.types.is_timestamp(t):
        valid = _valid_np(arr)
        v = np.asarray(
            arr.cast(pa.timestamp("ns", tz=t.tz))
            .cast(pa.int64())
            .fill_null(0)
            .to_numpy(zero_copy_only=False),
            dtype=np.int64,
        )
        return v, valid & (v > 0)
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return _scale_epoch(*to_number(arr))
    s = pc.utf8_trim_whitespace(to_string(arr))
    ints, is_int, floats, valid = to_number(s)
    out, ok = _scale_epoch(ints, is_int, floats, valid)
    # Decimal seconds ("1700000000.25"): exact, from the digits, not through float64.
    dec = ok & ~is_int & _mask(pc.match_substring_regex(s, _DEC_SECONDS_RE))
    if dec.any():
        idx = np.flatnonzero(dec)
        parts = pc.extract_regex(s.take(pa.array(idx)), _DEC_SECONDS_RE)
        whole = np.asarray(parts.field("i").cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)
        frac = pc.utf8_rpad(parts.field("f"), 9, "0")
        frac = np.asarray(
            pc.utf8_slice_codeunits(frac, 0, 9).cast(pa.int64()).to_numpy(zero_copy_only=False),
            dtype=np.int64,
        )
        out[idx] = whole * 10**9 + frac
    rest = ~ok & _valid_np(s)
    if rest.any():
        for pattern, tz in ((_ISO_OFFSET_RE, "UTC"), (_ISO_NAIVE_RE, None)):
            sel = rest & _mask(pc.match_substring_regex(s, pattern))
            if not sel.any():
                continue
            idx = np.flatnonzero(sel)
            sub = s.take(pa.array(idx))
            try:
                v = np.asarray(
                    sub.cast(pa.timestamp("ns", tz=tz)).cast(pa.int64()).to_numpy(zero_copy_only=False),
                    dtype=np.int64,
                )
                good = np.ones(len(idx), dtype=bool)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                v, good = _iso_slow(sub.to_pylist())
            out[idx[good]] = v[good]
            ok[idx[good]] = True
            rest[idx] = False
    return out, ok


def _iso_slow(values: list[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """Per-value ISO parsing for the rare batch where Arrow's vectorised parser refuses one value."""
    out = np.zeros(len(values), dtype=np.int64)
    ok = np.zeros(len(values), dtype=bool)
    for k, v in enumerate(values):
        if v is None:
            continue
        try:
            frac = 0
            text = v.replace("z", "Z").replace("Z", "+00:00")
            m = text.find(".")
            if m >= 0:  # fromisoformat keeps µs only: split the fraction off to keep ns
                end = m + 1
                while end < len(text) and text[end].isdigit():
                    end += 1
                digits = text[m + 1 : end]
                frac = int((digits + "000000000")[:9]) if digits else 0
                text = text[:m] + text[end:]
            d = datetime.fromisoformat(text)
            if d.tzinfo is None:
                d = d.replace(tzinfo=timezone.utc)
            secs = int((d - datetime(1970, 1, 1, tzinfo=timezone.utc)).total_seconds())
            out[k] = secs * 10**9 + frac
            ok[k] = out[k] > 0
        except (ValueError, OverflowError):
            continue
    return out, ok


_MAX_DURATION_MS = 9.2e12  # * 10**6 stays below 2**63


def to_duration_ns(ms: pa.Array | None, ns: pa.Array | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Origin response duration in ns: ``OriginResponseDurationMs`` (ms) where valid, else the older
    ``OriginResponseTime`` (ns). Negative values, and values too large for int64 nanoseconds (over
    ~292 years), are invalid."""
    out = np.zeros(n, dtype=np.int64)
    ok = np.zeros(n, dtype=bool)
    if ms is not None:
        ints, is_int, floats, valid = to_number(ms)
        good = valid & (floats >= 0) & (floats < _MAX_DURATION_MS)
        out[good & is_int] = ints[good & is_int] * 10**6
        f = good & ~is_int
        out[f] = np.round(floats[f] * 1e6).astype(np.int64)
        ok |= good
    if ns is not None:
        ints, is_int, floats, valid = to_number(ns)
        good = valid & (floats >= 0) & (is_int | (floats < 2.0**63)) & ~ok  # exact int64 or a float that fits
        out[good & is_int] = ints[good & is_int]
        f = good & ~is_int
        out[f] = np.round(floats[f]).astype(np.int64)
        ok |= good
    return out, ok


# ---------------------------------------------------------------------------------------------
# IP addresses
# ---------------------------------------------------------------------------------------------
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"{_OCTET}(\.{_OCTET}){{3}}"
IPV4_RE = rf"^{_IPV4}$"
_H = r"[0-9a-fA-F]{1,4}"
_LS32 = rf"({_H}:{_H}|{_IPV4})"
# RFC 3986 section 3.2.2 IPv6address, alternative by alternative.
IPV6_RE = (
    "^("
    + "|".join(
        [
            rf"({_H}:){{6}}{_LS32}",
            rf"::({_H}:){{5}}{_LS32}",
            rf"({_H})?::({_H}:){{4}}{_LS32}",
            rf"(({_H}:){{0,1}}{_H})?::({_H}:){{3}}{_LS32}",
            rf"(({_H}:){{0,2}}{_H})?::({_H}:){{2}}{_LS32}",
            rf"(({_H}:){{0,3}}{_H})?::{_H}:{_LS32}",
            rf"(({_H}:){{0,4}}{_H})?::{_LS32}",
            rf"(({_H}:){{0,5}}{_H})?::{_H}",
            rf"(({_H}:){{0,6}}{_H})?::",
        ]
    )
    + ")$"
)


def ip_family_of_strings(values: pa.Array) -> np.ndarray:
    """uint8 family per string: 4, 6, or 0 when the value is not an IP address (garbage, empty,
    null, zone ids, brackets, prefixes). Surrounding whitespace is ignored."""
    s = pc.utf8_trim_whitespace(to_string(values))
    fam = np.zeros(len(s), dtype=np.uint8)
    fam[_mask(pc.match_substring_regex(s, IPV4_RE))] = 4
    fam[_mask(pc.match_substring_regex(s, IPV6_RE))] = 6
    return fam


def ip_family(arr: pa.Array | None, n: int) -> tuple[np.ndarray, pa.Array, np.ndarray]:
    """Family per row of an IP column, through its dictionary (origin IPs repeat a lot).

    Returns ``(family uint8 per row, dictionary of values (trimmed; entries need not be unique),
    int32 dictionary index per row (-1 for null))``. A dictionary column (as read from Parquet) is
    used as it is; the families of the last dictionary are kept, so batches sharing one cost a
    comparison.
    """
    if arr is None:
        return np.zeros(n, dtype=np.uint8), pa.array([], pa.large_string()), np.full(n, -1, dtype=np.int32)
    arr = _chunk(arr)
    if pa.types.is_dictionary(arr.type):
        dictionary, fam_dict = _dictionary_families(arr.dictionary)
        idx = dictionary_indices(arr).astype(np.int32)
    else:
        enc = _chunk(pc.dictionary_encode(pc.utf8_trim_whitespace(to_string(arr))))
        dictionary = enc.dictionary
        idx = dictionary_indices(enc).astype(np.int32)
        fam_dict = np.append(ip_family_of_strings(dictionary), np.uint8(0))
    return fam_dict[idx], dictionary, idx


_LAST_FAMILIES: tuple[pa.Array, pa.Array, np.ndarray] | None = None


def _dictionary_families(raw: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """(trimmed text of a dictionary, family per entry plus a trailing 0 for null rows), cached for
    the last dictionary seen (a tuple swap: safe between threads)."""
    global _LAST_FAMILIES
    last = _LAST_FAMILIES
    if last is not None and last[0].equals(raw):
        return last[1], last[2]
    text = pc.utf8_trim_whitespace(to_string(raw))
    fam = np.append(ip_family_of_strings(text), np.uint8(0))
    _LAST_FAMILIES = (raw, text, fam)
    return text, fam


# ---------------------------------------------------------------------------------------------
# Hashing strings to 64 bits, vectorised
# ---------------------------------------------------------------------------------------------
def _u64(x: int) -> np.uint64:
    return np.uint64(x & _MASK64)


def hash_strings(arr: pa.Array | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``string_hash`` (docs/evaluate.md) of every value's UTF-8 bytes, and a mask of non-empty values.

    ``h = mix64(len ^ STRING_SEED)``, then for each 8-byte little-endian word of the bytes (the last
    one zero-padded) ``h = mix64(h ^ word)``. Computed by the compiled core straight over the Arrow
    string buffers (offsets and data, no copy); a dictionary array hashes its dictionary once and
    gathers. ``hash_strings_np`` is the numpy twin and ``string_hash_py`` the definition.
    """
    if arr is None:
        return np.zeros(n, dtype=np.uint64), np.zeros(n, dtype=bool)
    arr = _chunk(arr)
    if pa.types.is_dictionary(arr.type):
        dh, dok = hash_strings(arr.dictionary, len(arr.dictionary))
        idx = arr.indices
        valid = _valid_np(idx)
        ix = (
            np.asarray(idx.fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
            if len(idx)
            else np.zeros(0, np.int64)
        )
        if len(dh) == 0:
            return np.full(len(arr), np.uint64(_EMPTY_HASH)), np.zeros(len(arr), dtype=bool)
        return np.where(valid, dh[ix], np.uint64(_EMPTY_HASH)), valid & dok[ix]
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = to_string(arr)  # the text form (binary: decoded as UTF-8 with replacement)
    large = pa.types.is_large_string(arr.type)
    m = len(arr)
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64 if large else np.int32, count=m + 1 + arr.offset)[
        arr.offset :
    ]
    if not offsets.flags.aligned:  # buffers from IPC / pickles may sit at any address
        offsets = offsets.copy()
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None and bufs[2].size else _NO_BYTES
    return _core.logeval.string_hashes(offsets, data, _valid_np(arr) if arr.null_count else None)


_NO_BYTES = np.zeros(0, dtype=np.uint8)


def hash_strings_np(arr: pa.Array | None, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``hash_strings`` in numpy (the vectorised twin the compiled version is tested against): the
    bytes are gathered into a fixed-width ``rows x 8k`` matrix, viewed as uint64 words and folded
    column by column."""
    if arr is None:
        return np.zeros(n, dtype=np.uint64), np.zeros(n, dtype=bool)
    s = to_string(arr)
    valid = _valid_np(s)
    bufs = s.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64, count=len(s) + 1 + s.offset)[s.offset :]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    starts = offsets[:-1]
    lengths = (offsets[1:] - starts) * valid
    nonempty = lengths > 0
    h = lengths.astype(np.uint64) ^ _u64(STRING_SEED)
    mix64_np(h, out=h)
    long_rows = np.flatnonzero(lengths > _MAX_VECTOR_BYTES)
    vec_lengths = np.where(lengths > _MAX_VECTOR_BYTES, 0, lengths)
    width = int(vec_lengths.max()) if len(vec_lengths) else 0
    words = (width + 7) // 8
    if words and long_rows.shape[0] == 0 and _is_ascii(s):
        # Fast path: pad every value with NULs to one width (Arrow kernel; characters = bytes for
        # ASCII), so the data buffer is a rows x words matrix of little-endian uint64.
        padded = pc.utf8_rpad(pc.if_else(pc.is_null(s), "", s), words * 8, "\0")
        pb = padded.buffers()
        po = np.frombuffer(pb[1], dtype=np.int64, count=len(padded) + 1 + padded.offset)[padded.offset :]
        mat = np.frombuffer(pb[2], dtype="<u8", count=(int(po[-1]) - int(po[0])) // 8, offset=int(po[0]))
        mat = mat.reshape(len(padded), words)
        for w in range(words):
            x = h ^ mat[:, w]
            mix64_np(x, out=x)
            live = vec_lengths > w * 8
            h = np.where(live, x, h) if not live.all() else x
        return h, nonempty
    if words:
        cols = np.arange(words * 8, dtype=np.int64)
        for w in range(words):
            c = cols[w * 8 : w * 8 + 8]
            rows = np.flatnonzero(vec_lengths > w * 8)
            if rows.shape[0] == 0:
                break
            pos = starts[rows, None] + c[None, :]
            inside = c[None, :] < vec_lengths[rows, None]
            block = np.where(
                inside, data[np.minimum(pos, max(len(data) - 1, 0))] if len(data) else 0, 0
            ).astype(np.uint8)
            word = np.ascontiguousarray(block).view("<u8").reshape(-1)
            x = h[rows] ^ word
            mix64_np(x, out=x)
            h[rows] = x
    if long_rows.shape[0]:
        py = s.take(pa.array(long_rows)).to_pylist()
        for r, v in zip(long_rows.tolist(), py, strict=True):
            h[r] = np.uint64(string_hash_py(v.encode("utf-8")))
    return h, nonempty


def _is_ascii(s: pa.Array) -> bool:
    """All values ASCII (then a value's characters are its bytes)."""
    bufs = s.buffers()
    if bufs[2] is None:
        return True
    offs = np.frombuffer(bufs[1], dtype=np.int64, count=len(s) + 1 + s.offset)[s.offset :]
    data = np.frombuffer(bufs[2], dtype=np.uint8, count=int(offs[-1]) - int(offs[0]), offset=int(offs[0]))
    return not bool((data >= 0x80).any())


_EMPTY_HASH = string_hash_py(b"")  # what a null value hashes as (its hash is never used)


def flow_keys(
    client_ip: pa.Array | None,
    client_port: pa.Array | None,
    ray_id: pa.Array | None,
    n: int,
) -> tuple[np.ndarray, np.ndarray]:
    """64-bit flow key per row and a mask of rows that have one (docs/evaluate.md "Flow key").

    * client address and port both usable: ``mix64(string_hash(ClientIP) ^ mix64(port ^ PORT_SALT))``;
    * else a non-empty ``RayID``: ``mix64(string_hash(RayID) ^ RAY_SALT)``;
    * else none (the row is rejected as ``missing-flow-key``).
    """
    ch, c_ok = hash_strings(client_ip, n)
    port, p_ok = to_port(client_port, n)
    use_client = c_ok & p_ok
    flows = np.zeros(n, dtype=np.uint64)
    if use_client.any():
        pm = port[use_client].astype(np.uint64) ^ _u64(PORT_SALT)
        mix64_np(pm, out=pm)
        x = ch[use_client] ^ pm
        flows[use_client] = mix64_np(x, out=x)
    rh, r_ok = hash_strings(ray_id, n)
    use_ray = ~use_client & r_ok
    if use_ray.any():
        x = rh[use_ray] ^ _u64(RAY_SALT)
        flows[use_ray] = mix64_np(x, out=x)
    return flows, use_client | use_ray


# ---------------------------------------------------------------------------------------------
# Timestamps that parse but cannot be trusted
# ---------------------------------------------------------------------------------------------
# Logpush started in 2019; anything before 2000-01-01 is not a request time but a small number
# (a counter, "1", a duration in the wrong field) that the magnitude rule would place in 1970.
EPOCH_FLOOR_NS = 946_684_800 * 10**9
_SCIENTIFIC_RE = r"^[+-]?[0-9.]+[eE][+-]?[0-9]+$"


def untrusted_timestamps(
    arr: pa.Array | None, start_ns: np.ndarray, start_ok: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(not_epoch, imprecise)`` masks over the rows ``to_epoch_ns`` accepted.

    ``not_epoch``: before 2000-01-01 (a tiny integer such as ``1``). ``imprecise``: written in
    scientific notation (``"1.7145648e+18"``) or a float beyond 2**53, whose digits are already
    lost, so no exact time can be recovered. Both are flagged and left out of timing, never
    placed in 1970 or rounded silently."""
    n = start_ns.shape[0]
    not_epoch = start_ok & (start_ns < EPOCH_FLOOR_NS)
    imprecise = np.zeros(n, dtype=bool)
    if arr is None:
        return not_epoch, imprecise
    arr = _chunk(arr)
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.dictionary_decode()
        t = arr.type
    if pa.types.is_floating(t):
        f = np.asarray(arr.cast(pa.float64()).fill_null(0.0).to_numpy(zero_copy_only=False), dtype=np.float64)
        imprecise = start_ok & (np.abs(f) >= 2.0**53)
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        imprecise = start_ok & _mask(pc.match_substring_regex(pc.utf8_trim_whitespace(arr), _SCIENTIFIC_RE))
    return not_epoch & ~imprecise, imprecise
