"""Input normalisation shared by every engine (``ReferenceEngine`` and the compiled ``Engine``).

Nothing here knows about an engine: the functions take the id sequence of a kind (for its
length) and the ``id -> index`` lookup dict, so any engine with those tables can call them.

Scalars (``decide``)
    ``resolve_id`` turns a str id or an integer index (Python or numpy integer, not bool) into an
    index, ``resolve_family`` checks 4/6 and ``resolve_flow`` returns the flow key as a Python int
    in ``[0, 2**64)``. Each raises the ``ValueError`` subclass of ``aegisfwd.errors`` naming the bad
    value.

Batches (``decide_batch``)
    ``normalize_batch`` converts the four arguments to C-contiguous arrays (server and pool
    indices int32, family uint8, flow uint64) and returns the rows that were bad. Accepted per
    argument: a numpy 1-D array, a list/tuple or any other iterable (a generator or iterator is
    read once, into a list), a pyarrow ``Array`` or ``ChunkedArray``, a pandas ``Series``, or a
    scalar, which is broadcast to the batch length (the common length of the non-scalar arguments).

    * ids: str ids (numpy ``U``/object arrays, Arrow string / large_string / string_view / dictionary, pandas
      object / string / categorical) or integer indices of any integer dtype (range-checked);
      float and bool arrays are rejected as a whole (``BatchInputError``).
    * families: integers equal to 4 or 6.
    * flows: unsigned integers of any width are widened to uint64. **Signed integer arrays are
      reinterpreted bitwise** (two's complement, as ``ndarray.astype(np.uint64)`` does): flow hashes
      often arrive as int64 from Arrow or pandas, and ``-1`` is then the key ``2**64 - 1``. The same
      holds for a numpy signed integer scalar, so ``decide(..., flow=a[i])`` answers like row ``i``
      of a batch. Python ints, which have no width, must lie in ``[0, 2**64)``.
    * nulls (Arrow nulls, pandas NA/NaN, ``None`` in a list) are bad rows.

    With ``errors="raise"`` the first bad row raises the same exception class as the scalar call
    (for the first bad argument of that row, in the order servers, pools, families, flows), with
    the argument and row appended to its message and ``.row`` / ``.argument`` set. With ``errors="mark"`` bad rows come
    back in ``bad_rows`` (and as -1 in the index arrays); the caller answers them ``Tier.INVALID``.
    Shape problems (2-D arrays, mismatched lengths, a float id array, an unknown ``errors`` value)
    are ``BatchInputError`` naming the argument, whatever ``errors`` says.

Pandas and pyarrow are optional: they are only touched when the caller passes their objects
(found through ``sys.modules``, so a proxy embedding the engine never imports them), except that
str ids in a numpy ``U`` array, a list or an object array of at least ``ARROW_MIN_ROWS`` rows are
dictionary-encoded with pyarrow when it is installed (3-5x faster than one dict lookup per row,
which is the fallback). Measured on 10M ids out of 60k (2 shared cores): Arrow dictionary 0.16 s,
Arrow string 0.3-0.8 s, pandas categorical 0.12 s, pandas object 1.1-1.3 s, integer indices
0.3 s, list / numpy ``U`` 1.3-2 s.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from itertools import repeat
from typing import Any, NamedTuple, TypeGuard

import numpy as np

from .errors import BatchInputError, InvalidFamilyError, InvalidFlowError, UnknownIdError

__all__ = [
    "FLOW_LIMIT",
    "normalize_batch",
    "resolve_family",
    "resolve_flow",
    "resolve_id",
    "to_family_array",
    "to_flow_array",
    "to_index_array",
]

FLOW_LIMIT = 1 << 64
# From this many rows on, str ids in numpy ``U`` arrays, lists and object arrays are
# dictionary-encoded with pyarrow when it is installed (3-5x faster than the pure-Python lookup);
# smaller batches never import it.
ARROW_MIN_ROWS = 10_000
ERRORS_MODES = ("raise", "mark")


# ---------------------------------------------------------------------------------------------
# Scalars
# ---------------------------------------------------------------------------------------------
def _is_integer(value: object) -> TypeGuard[int | np.integer[Any]]:
    """A Python or numpy integer that is not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def resolve_id(value: object, ids: Sequence[str], lookup: Mapping[str, int], kind: str) -> int:
    """Index of ``value``: a str id found in ``lookup``, or an integer index in ``[0, len(ids))``.

    Anything else (unknown id, index out of range, bool, float, None, ...) raises
    ``UnknownIdError(kind, value)``.
    """
    if isinstance(value, str):
        index = lookup.get(value)
        if index is not None:
            return index
    elif _is_integer(value):
        index = int(value)
        if 0 <= index < len(ids):
            return index
    raise UnknownIdError(kind, value)


def resolve_family(value: object) -> int:
    """4 or 6 (a Python or numpy integer, not bool); anything else raises ``InvalidFamilyError``."""
    if _is_integer(value) and int(value) in (4, 6):
        return int(value)
    raise InvalidFamilyError(value)


def _flow_error(value: object) -> ValueError:
    return InvalidFlowError(f"invalid flow key {value!r}: expected an integer in [0, 2**64)")


def resolve_flow(value: object) -> int:
    """The flow key as a Python int in ``[0, 2**64)``.

    A numpy signed integer is reinterpreted bitwise (``np.int64(-1)`` is ``2**64 - 1``), exactly as
    in batches; a Python int must already be in range. Anything else raises ``ValueError``.
    """
    if isinstance(value, np.signedinteger):
        return int(np.asarray(value).astype(np.uint64))
    if _is_integer(value):
        flow = int(value)
        if 0 <= flow < FLOW_LIMIT:
            return flow
    raise _flow_error(value)


# ---------------------------------------------------------------------------------------------
# Batch helpers
# ---------------------------------------------------------------------------------------------
def _check_errors(errors: str) -> None:
    if errors not in ERRORS_MODES:
        raise BatchInputError(f"errors must be 'raise' or 'mark', not {errors!r}")


def _with_row(exc: Exception, name: str, row: int) -> Exception:
    """The scalar exception for a batch row: same class, message says where, ``.row`` set."""
    exc.args = (f"{exc.args[0] if exc.args else exc} (argument {name!r}, row {row})",)
    exc.row = row  # type: ignore[attr-defined]
    exc.argument = name  # type: ignore[attr-defined]
    return exc


def _pyarrow() -> Any:
    return sys.modules.get("pyarrow")


def _pandas() -> Any:
    return sys.modules.get("pandas")


def _is_arrow(values: object) -> bool:
    pa = _pyarrow()
    return pa is not None and isinstance(values, (pa.Array, pa.ChunkedArray))


def _is_series(values: object) -> bool:
    pd = _pandas()
    return pd is not None and isinstance(values, (pd.Series, pd.Index))


def _is_scalar(values: object) -> bool:
    if isinstance(values, np.ndarray):
        return values.ndim == 0
    return values is None or isinstance(values, (str, bytes, int, float, complex, np.generic))


def _length(values: object, name: str) -> int:
    """Length of a non-scalar batch argument; BatchInputError for anything that is not 1-D."""
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise BatchInputError(f"{name} must be 1-D, got an array of shape {values.shape}")
        return int(values.shape[0])
    pd = _pandas()
    if pd is not None and isinstance(values, pd.DataFrame):
        raise BatchInputError(f"{name} must be 1-D, got a DataFrame; pass one column")
    try:
        return len(values)  # type: ignore[arg-type]
    except TypeError:
        raise BatchInputError(f"{name} must be a sequence or a scalar, not {type(values).__name__}") from None


def _materialize(values: object, name: str) -> Any:
    """An iterable without a length (generator, ``map``, iterator) becomes a list, read once, so
    that it can be measured and broadcast against; everything else is returned as it is."""
    if (
        _is_scalar(values)
        or isinstance(values, np.ndarray)
        or _is_arrow(values)
        or _is_series(values)
        or hasattr(values, "__len__")
    ):
        return values
    try:
        iterator = iter(values)  # type: ignore[call-overload]
    except TypeError:
        raise BatchInputError(
            f"{name} must be a sequence, an iterable or a scalar, not {type(values).__name__}"
        ) from None
    return list(iterator)


def _as_1d(values: object, name: str) -> Any:
    """Lists, tuples and other iterables become a list; arrays, Arrow and pandas pass through."""
    if isinstance(values, np.ndarray):
        _length(values, name)
        return values
    if _is_arrow(values) or _is_series(values):
        return values
    pd = _pandas()
    if pd is not None and isinstance(values, pd.DataFrame):
        _length(values, name)
    if isinstance(values, list):
        return values
    try:
        return list(values)  # type: ignore[call-overload]
    except TypeError:
        raise BatchInputError(f"{name} must be a sequence or a scalar, not {type(values).__name__}") from None


class _Column(NamedTuple):
    """One converted batch argument: its array, its bad rows, and how to name a bad value."""

    values: np.ndarray
    bad: np.ndarray | None  # None when every row is valid
    name: str
    value_at: Callable[[int], object]  # the caller's value at a row, for the message
    make_error: Callable[[object], Exception]  # the scalar call's exception for a value

    def error_at(self, row: int) -> Exception:
        return _with_row(self.make_error(self.value_at(row)), self.name, row)

    def result(self, errors: str) -> tuple[np.ndarray, np.ndarray | None]:
        """``(array, bad mask or None)``; under "raise" the first bad row raises instead."""
        bad = self.bad if self.bad is not None and self.bad.any() else None
        if bad is not None and errors == "raise":
            raise self.error_at(int(np.flatnonzero(bad)[0]))
        return np.ascontiguousarray(self.values), bad


def _list_types(values: Sequence[Any], name: str) -> set[type]:
    types = set(map(type, values))
    if types & {list, tuple, dict, set, np.ndarray}:
        raise BatchInputError(f"{name} must be 1-D: it holds nested sequences")
    return types


def _null_mask(values: Any) -> np.ndarray | None:
    """Null rows of an Arrow array (None when it has none)."""
    if values.null_count == 0:
        return None
    return np.asarray(values.is_null().to_numpy(zero_copy_only=False), dtype=bool)


def _per_chunk(
    values: Any,
    convert: Callable[[Any], tuple[np.ndarray, np.ndarray | None]],
    dtype: Any,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Apply ``convert`` to every chunk of a ChunkedArray and concatenate."""
    parts = [convert(chunk) for chunk in values.chunks]
    if not parts:
        return np.empty(0, dtype=dtype), None
    out = np.concatenate([p[0] for p in parts]).astype(dtype, copy=False)
    if all(p[1] is None for p in parts):
        return out, None
    bad = np.concatenate([p[1] if p[1] is not None else np.zeros(len(p[0]), bool) for p in parts])
    return out, bad


# ---------------------------------------------------------------------------------------------
# Ids
# ---------------------------------------------------------------------------------------------
def _codes_from_str_iterable(values: Any, lookup: Mapping[str, int], n: int) -> np.ndarray:
    """One C-level pass of ``lookup.get`` over str values: index, or -1 for an unknown id."""
    return np.fromiter(map(lookup.get, values, repeat(-1)), dtype=np.int64, count=n)


def _indices_from_ints(values: np.ndarray, n_ids: int) -> tuple[np.ndarray, np.ndarray]:
    """Range-check an integer array (any integer dtype): int32 indices, -1 outside ``[0, n_ids)``."""
    bad = (values < 0) | (values >= n_ids)
    if not bad.any():
        return values.astype(np.int32), bad
    out = np.full(values.shape[0], -1, dtype=np.int32)
    good = ~bad
    out[good] = values[good]  # in range, so it fits int32 whatever the source dtype
    return out, bad


def _map_dictionary(dictionary: Any, ids: Sequence[str], lookup: Mapping[str, int], kind: str) -> np.ndarray:
    """Index of every entry of an id dictionary (Arrow/pandas uniques); -1 for bad entries."""
    out = np.empty(len(dictionary), dtype=np.int64)
    for k, value in enumerate(dictionary):
        try:
            out[k] = resolve_id(value, ids, lookup, kind)
        except UnknownIdError:
            out[k] = -1
    return out


def _ids_from_codes(codes: np.ndarray, mapped: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows given as codes into a dictionary (-1 = null): their mapped index, bad where -1."""
    if len(mapped) == 0:  # every row is null
        out = np.full(len(codes), -1, dtype=np.int32)
    else:
        out = np.where(codes < 0, -1, mapped[np.maximum(codes, 0)]).astype(np.int32)
    return out, out < 0


def _ids_from_arrow(
    values: Any, ids: Sequence[str], lookup: Mapping[str, int], kind: str, name: str
) -> tuple[np.ndarray, np.ndarray]:
    pa = _pyarrow()
    if isinstance(values, pa.ChunkedArray):
        return _per_chunk(  # type: ignore[return-value]
            values, lambda c: _ids_from_arrow(c, ids, lookup, kind, name), np.int32
        )
    t = values.type
    if pa.types.is_dictionary(t):
        dictionary = values.dictionary
        if not (
            pa.types.is_string(dictionary.type)
            or pa.types.is_large_string(dictionary.type)
            or getattr(pa.types, "is_string_view", bool)(dictionary.type)
        ):
            return _ids_from_arrow(values.dictionary_decode(), ids, lookup, kind, name)
        mapped = _map_dictionary(dictionary.to_pylist(), ids, lookup, kind)
        codes = values.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        return _ids_from_codes(codes, mapped)
    if getattr(pa.types, "is_string_view", bool)(t):
        # Arrow has no dictionary_encode kernel for string_view: take the same text as large_string.
        return _ids_from_arrow(values.cast(pa.large_string()), ids, lookup, kind, name)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return _ids_from_arrow(values.dictionary_encode(), ids, lookup, kind, name)
    if pa.types.is_integer(t):
        nulls = _null_mask(values)
        ints = values.fill_null(0).to_numpy(zero_copy_only=False)
        out, bad = _indices_from_ints(ints, len(ids))
        if nulls is not None:
            out[nulls] = -1
            bad |= nulls
        return out, bad
    raise BatchInputError(f"{name}: Arrow type {t} cannot hold {kind} ids or indices")


def _ids_from_objects(
    values: Any, ids: Sequence[str], lookup: Mapping[str, int], kind: str, name: str
) -> tuple[np.ndarray, np.ndarray]:
    """A list or a 1-D object array: str ids, integer indices, or a mix."""
    n = len(values)
    if n >= ARROW_MIN_ROWS and isinstance(values[0], str):
        pa = _import_pyarrow()
        if pa is not None:
            # Arrow builds a string array only if every element is a str (or None, a null row);
            # anything else (ints, bytes, NaN, lone surrogates) falls through to the paths below.
            try:
                arr = pa.array(values)
            except (pa.ArrowException, TypeError, ValueError, OverflowError, UnicodeError):
                arr = None
            if arr is not None and (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
                return _ids_from_arrow(arr, ids, lookup, kind, name)
    types = _list_types(values, name)
    if types <= {str, np.str_}:
        codes = _codes_from_str_iterable(values, lookup, n)
        return codes.astype(np.int32), codes < 0
    if types <= {int}:
        try:
            return _indices_from_ints(np.array(values, dtype=np.int64), len(ids))
        except OverflowError:
            pass  # a Python int beyond int64: resolved one by one below
    # Mixed or odd element types: resolve each distinct (type, value) once.
    cache: dict[Any, int] = {}
    out = np.empty(n, dtype=np.int32)
    for row, value in enumerate(values):
        try:
            key: Any = (type(value), value)
            hash(key)
        except TypeError:
            key = None
        index = cache.get(key, -2) if key is not None else -2
        if index == -2:
            try:
                index = resolve_id(value, ids, lookup, kind)
            except UnknownIdError:
                index = -1
            if key is not None:
                cache[key] = index
        out[row] = index
    return out, out < 0


def _ids_from_numpy(
    values: np.ndarray, ids: Sequence[str], lookup: Mapping[str, int], kind: str, name: str
) -> tuple[np.ndarray, np.ndarray]:
    kind_char = values.dtype.kind
    if kind_char in "iu":
        return _indices_from_ints(values, len(ids))
    if kind_char == "U":
        pa = _import_pyarrow() if len(values) >= ARROW_MIN_ROWS else None
        if pa is not None:
            try:
                arr = pa.array(values, type=pa.string())
            except (pa.ArrowException, UnicodeError):  # e.g. a lone surrogate: not UTF-8
                arr = None
            if arr is not None:
                return _ids_from_arrow(arr, ids, lookup, kind, name)
        codes = _codes_from_str_iterable(values.tolist(), lookup, len(values))
        return codes.astype(np.int32), codes < 0
    if kind_char == "O":
        return _ids_from_objects(values, ids, lookup, kind, name)
    raise BatchInputError(
        f"{name}: a {values.dtype} array cannot hold {kind} ids or indices (use str ids or integers)"
    )


def _ids_from_series(
    values: Any, ids: Sequence[str], lookup: Mapping[str, int], kind: str, name: str
) -> tuple[np.ndarray, np.ndarray]:
    pd = _pandas()
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        mapped = _map_dictionary(list(dtype.categories), ids, lookup, kind)
        return _ids_from_codes(
            np.asarray(values.cat.codes if hasattr(values, "cat") else values.codes, dtype=np.int64), mapped
        )
    if isinstance(dtype, np.dtype) and dtype.kind in "iu":
        return _indices_from_ints(values.to_numpy(), len(ids))
    if pd.api.types.is_integer_dtype(dtype):  # nullable Int64 & co.
        nulls = np.asarray(values.isna(), dtype=bool)
        ints = values.to_numpy(dtype=dtype.numpy_dtype, na_value=0)
        out, bad = _indices_from_ints(ints, len(ids))
        out[nulls] = -1
        return out, bad | nulls
    if isinstance(dtype, np.dtype) and dtype.kind in "fbcmM":
        raise BatchInputError(f"{name}: a {dtype} Series cannot hold {kind} ids or indices")
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_float_dtype(dtype):
        raise BatchInputError(f"{name}: a {dtype} Series cannot hold {kind} ids or indices")
    # object / string dtypes: hash-factorize, then map the (few) uniques. Only when they are all
    # str: factorize compares with ==, so 1 and True would share a code.
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    uniques = list(uniques)
    if not all(isinstance(u, str) for u in uniques):
        return _ids_from_objects(values.tolist(), ids, lookup, kind, name)
    mapped = _map_dictionary(uniques, ids, lookup, kind)
    return _ids_from_codes(np.asarray(codes, dtype=np.int64), mapped)


_PYARROW_TRIED = False


def _import_pyarrow() -> Any:
    """pyarrow if it is installed (imported on first need), else None."""
    global _PYARROW_TRIED
    pa = _pyarrow()
    if pa is None and not _PYARROW_TRIED:
        _PYARROW_TRIED = True
        try:
            pa = importlib.import_module("pyarrow")
        except ImportError:  # pragma: no cover - depends on the install
            pa = None
    return pa


def _value_at(values: Any, row: int) -> object:
    """The original value of one row, for an error message."""
    if _is_arrow(values):
        return values[row].as_py()
    if _is_series(values):
        value = values.iloc[row] if hasattr(values, "iloc") else values[row]
    else:
        value = values[row]
    if isinstance(value, np.generic):
        return value.item()
    return value


def to_index_array(
    values: Any,
    ids: Sequence[str],
    lookup: Mapping[str, int],
    kind: str,
    errors: str = "raise",
    *,
    name: str | None = None,
) -> np.ndarray:
    """Convert one batch argument of ids or indices to a C-contiguous int32 index array.

    ``values`` is 1-D (numpy array of any integer dtype or of str/object, list, pyarrow
    Array/ChunkedArray, pandas Series). Bad rows (unknown id, index outside ``[0, len(ids))``,
    null) are -1 under ``errors="mark"``; under ``"raise"`` the first one raises
    ``UnknownIdError(kind, value)`` with the row in its message. ``name`` is the argument name for
    messages (default ``kind + "s"``).
    """
    _check_errors(errors)
    out, _ = _id_column(values, ids, lookup, kind, name or f"{kind}s").result(errors)
    return out


def _id_column(values: Any, ids: Sequence[str], lookup: Mapping[str, int], kind: str, name: str) -> _Column:
    values = _as_1d(values, name)
    if isinstance(values, np.ndarray):
        out, bad = _ids_from_numpy(values, ids, lookup, kind, name)
    elif _is_arrow(values):
        try:
            out, bad = _ids_from_arrow(values, ids, lookup, kind, name)
        except _pyarrow().ArrowException as exc:  # a type or layout Arrow cannot convert
            raise BatchInputError(f"{name}: Arrow cannot read this {values.type} column: {exc}") from None
    elif _is_series(values):
        out, bad = _ids_from_series(values, ids, lookup, kind, name)
    else:
        out, bad = _ids_from_objects(values, ids, lookup, kind, name)
    return _Column(
        out.astype(np.int32, copy=False),
        bad,
        name,
        lambda row: _value_at(values, row),
        lambda value: UnknownIdError(kind, value),
    )


# ---------------------------------------------------------------------------------------------
# Families and flows
# ---------------------------------------------------------------------------------------------
def _integers(values: Any, name: str) -> tuple[np.ndarray | None, np.ndarray | None, list[Any] | None, bool]:
    """An integer view of a 1-D batch argument: ``(ints, null mask, objects, from_python_ints)``.

    Either ``ints`` is an integer array (Arrow/pandas nulls set to 0 and flagged in the mask) or
    ``objects`` is a list to check element by element (lists and object arrays whose elements are
    not all Python ints). ``from_python_ints`` says the integers were Python ints, which have no
    width. Float, bool and string arrays are ``BatchInputError``.
    """
    if isinstance(values, np.ndarray):
        if values.dtype.kind in "iu":
            return values, None, None, False
        if values.dtype.kind == "O":
            return None, None, values.tolist(), False
        raise BatchInputError(f"{name}: expected integers, got a {values.dtype} array")
    if _is_arrow(values):
        pa = _pyarrow()
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        if pa.types.is_dictionary(values.type):
            values = values.dictionary_decode()
        if not pa.types.is_integer(values.type):
            raise BatchInputError(f"{name}: expected integers, got Arrow type {values.type}")
        return values.fill_null(0).to_numpy(zero_copy_only=False), _null_mask(values), None, False
    if _is_series(values):
        pd = _pandas()
        dtype = values.dtype
        if isinstance(dtype, np.dtype) and dtype.kind in "iu":
            return values.to_numpy(), None, None, False
        if pd.api.types.is_integer_dtype(dtype):  # nullable Int64 & co.
            nulls = np.asarray(values.isna(), dtype=bool)
            return values.to_numpy(dtype=dtype.numpy_dtype, na_value=0), nulls, None, False
        if isinstance(dtype, np.dtype) and dtype.kind == "O":
            return None, None, values.tolist(), False
        raise BatchInputError(f"{name}: expected integers, got a {dtype} Series")
    types = _list_types(values, name)
    if types <= {int}:
        for dtype in (np.int64, np.uint64):
            try:
                return np.array(values, dtype=dtype), None, None, True
            except OverflowError:
                pass
    return None, None, values, False


def _checked_objects(
    objects: list[Any], dtype: Any, check: Callable[[Any], int], exc_type: type[Exception]
) -> tuple[np.ndarray, np.ndarray]:
    out = np.zeros(len(objects), dtype=dtype)
    bad = np.zeros(len(objects), dtype=bool)
    for row, value in enumerate(objects):
        try:
            out[row] = check(value)
        except exc_type:
            bad[row] = True
    return out, bad


def to_family_array(
    values: Any, errors: str = "raise", *, name: str = "families"
) -> tuple[np.ndarray, np.ndarray | None]:
    """uint8 families (4/6) of a 1-D batch argument, and the bad-row mask (None when clean).

    Bad rows (another value, null, a non-integer element) are 0 under ``errors="mark"``; under
    ``"raise"`` the first raises ``InvalidFamilyError``.
    """
    _check_errors(errors)
    return _family_column(values, name).result(errors)


def _family_column(values: Any, name: str) -> _Column:
    ints, nulls, objects, _ = _integers(_as_1d(values, name), name)
    if objects is not None:
        out, bad = _checked_objects(objects, np.uint8, resolve_family, InvalidFamilyError)
        return _Column(out, bad, name, objects.__getitem__, InvalidFamilyError)
    assert ints is not None
    bad = (ints != 4) & (ints != 6)
    if nulls is not None:
        bad |= nulls
    out = np.where(bad, 0, ints).astype(np.uint8)
    return _Column(out, bad, name, _int_value_at(ints, nulls), InvalidFamilyError)


def to_flow_array(
    values: Any, errors: str = "raise", *, name: str = "flows"
) -> tuple[np.ndarray, np.ndarray | None]:
    """uint64 flow keys of a 1-D batch argument, and the bad-row mask (None when clean).

    Integer arrays of any width are accepted; signed ones are reinterpreted bitwise (two's
    complement, ``astype(np.uint64)``): hashes often arrive as int64 from Arrow or pandas. Python
    ints in a list must lie in ``[0, 2**64)``. Bad rows (out of range, null, non-integer) are 0
    under ``errors="mark"``; under ``"raise"`` the first raises ``ValueError``.
    """
    _check_errors(errors)
    return _flow_column(values, name).result(errors)


def _flow_column(values: Any, name: str) -> _Column:
    ints, nulls, objects, python_ints = _integers(_as_1d(values, name), name)
    if objects is not None:
        out, checked = _checked_objects(objects, np.uint64, resolve_flow, ValueError)
        return _Column(out, checked, name, objects.__getitem__, _flow_error)
    assert ints is not None
    bad: np.ndarray | None = nulls
    if python_ints and ints.dtype.kind == "i":
        # Python ints have no width: a negative one is an error, not a bit pattern.
        bad = ints < 0 if nulls is None else (ints < 0) | nulls
    out = ints.astype(np.uint64)
    if bad is not None:
        out[bad] = 0
    return _Column(out, bad, name, _int_value_at(ints, nulls), _flow_error)


def _int_value_at(ints: np.ndarray, nulls: np.ndarray | None) -> Callable[[int], object]:
    def value_at(row: int) -> object:
        return None if nulls is not None and nulls[row] else ints[row].item()

    return value_at


# ---------------------------------------------------------------------------------------------
# The whole batch
# ---------------------------------------------------------------------------------------------
def normalize_batch(
    servers: Any,
    pools: Any,
    families: Any,
    flows: Any,
    *,
    server_ids: Sequence[str],
    server_lookup: Mapping[str, int],
    pool_ids: Sequence[str],
    pool_lookup: Mapping[str, int],
    errors: str = "raise",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Normalise the four arguments of ``decide_batch``.

    Returns ``(server_idx int32, pool_idx int32, family uint8, flow uint64, bad_rows)``, all
    C-contiguous and of the batch length; ``bad_rows`` is a bool mask, or None when every row is
    valid (always None under ``errors="raise"``, which raises instead). Bad rows hold -1 indices,
    family 0 and flow 0 where the bad value was, and must be answered ``Tier.INVALID``.

    Scalars broadcast to the batch length, which is the common length of the non-scalar
    arguments; if every argument is a scalar the batch has one row.
    """
    _check_errors(errors)
    args = {
        name: _materialize(value, name)
        for name, value in (("servers", servers), ("pools", pools), ("families", families), ("flows", flows))
    }
    lengths = {name: _length(v, name) for name, v in args.items() if not _is_scalar(v)}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{name}={n}" for name, n in lengths.items())
        raise BatchInputError(f"batch arguments have different lengths: {detail}")
    n = next(iter(lengths.values())) if lengths else 1

    def column(
        name: str,
        scalar: Callable[[Any], int],
        convert: Callable[[Any, str], _Column],
        dtype: Any,
        fill: int,
        make_error: Callable[[Any], Exception],
    ) -> _Column:
        value = args[name]
        if not _is_scalar(value):
            return convert(value, name)
        if isinstance(value, np.ndarray):
            value = value.item()
        try:
            return _Column(np.full(n, scalar(value), dtype=dtype), None, name, lambda row: value, make_error)
        except ValueError:  # a bad scalar makes every row bad
            return _Column(
                np.full(n, fill, dtype=dtype), np.ones(n, dtype=bool), name, lambda row: value, make_error
            )

    columns = [
        column(
            "servers",
            lambda v: resolve_id(v, server_ids, server_lookup, "server"),
            lambda v, name: _id_column(v, server_ids, server_lookup, "server", name),
            np.int32,
            -1,
            lambda v: UnknownIdError("server", v),
        ),
        column(
            "pools",
            lambda v: resolve_id(v, pool_ids, pool_lookup, "pool"),
            lambda v, name: _id_column(v, pool_ids, pool_lookup, "pool", name),
            np.int32,
            -1,
            lambda v: UnknownIdError("pool", v),
        ),
        column("families", resolve_family, _family_column, np.uint8, 0, InvalidFamilyError),
        column("flows", resolve_flow, _flow_column, np.uint64, 0, _flow_error),
    ]
    s_idx, p_idx, fam, flow = (np.ascontiguousarray(c.values) for c in columns)

    masks = [c.bad for c in columns if c.bad is not None and c.bad.any()]
    if not masks:
        return s_idx, p_idx, fam, flow, None
    bad = np.logical_or.reduce(masks)
    if errors == "raise":
        # The first bad row; within it, the first bad argument (servers, pools, families, flows).
        row = int(np.flatnonzero(bad)[0])
        raise next(c for c in columns if c.bad is not None and c.bad[row]).error_at(row)
    # Every index column says "none" on a bad row, whichever argument made it bad.
    s_idx = np.where(bad, -1, s_idx).astype(np.int32)
    p_idx = np.where(bad, -1, p_idx).astype(np.int32)
    return s_idx, p_idx, fam, flow, bad
