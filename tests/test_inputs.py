"""Input normalisation shared by the engines (``aegisfwd._inputs``): every accepted input kind,
every rejected one, and agreement with the scalar resolvers."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aegisfwd import _inputs as inp
from aegisfwd.errors import BatchInputError, InvalidFamilyError, UnknownIdError

IDS = ("s0", "s1", "s2", "s3", "ü4")
LOOKUP = {s: i for i, s in enumerate(IDS)}
POOLS = ("p0", "p1")
POOL_LOOKUP = {p: i for i, p in enumerate(POOLS)}


def idx(values: Any, errors: str = "mark") -> list[int]:
    return inp.to_index_array(values, IDS, LOOKUP, "server", errors).tolist()


# ---- scalars ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [("s0", 0), ("ü4", 4), (np.str_("s2"), 2), (3, 3), (np.int8(1), 1), (np.uint64(4), 4)],
)
def test_resolve_id(value: object, expected: int) -> None:
    assert inp.resolve_id(value, IDS, LOOKUP, "server") == expected


@pytest.mark.parametrize(
    "value", ["S0", "", "nope", 5, -1, True, np.bool_(False), 1.0, None, b"s0", np.uint64(2**63)]
)
def test_resolve_id_rejects(value: object) -> None:
    with pytest.raises(UnknownIdError) as info:
        inp.resolve_id(value, IDS, LOOKUP, "server")
    assert info.value.kind == "server" and info.value.value is value


def test_resolve_family_and_flow() -> None:
    assert inp.resolve_family(4) == 4 and inp.resolve_family(np.uint8(6)) == 6
    for bad in (5, True, 4.0, "6", None):
        with pytest.raises(InvalidFamilyError):
            inp.resolve_family(bad)
    assert inp.resolve_flow(0) == 0 and inp.resolve_flow(2**64 - 1) == 2**64 - 1
    assert inp.resolve_flow(np.int64(-2)) == 2**64 - 2
    assert inp.resolve_flow(np.int8(-1)) == 2**64 - 1
    assert inp.resolve_flow(np.uint32(7)) == 7
    for bad in (-1, 2**64, 1.0, "3", None, True):
        with pytest.raises(ValueError, match="invalid flow key"):
            inp.resolve_flow(bad)


# ---- id arrays ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]
)
def test_integer_arrays_of_any_dtype(dtype: Any) -> None:
    values = np.array([0, 4, 2], dtype=dtype)
    out = inp.to_index_array(values, IDS, LOOKUP, "server")
    assert out.tolist() == [0, 4, 2] and out.dtype == np.int32 and out.flags.c_contiguous


def test_integer_range_check() -> None:
    assert idx(np.array([0, 5, -1, 4], dtype=np.int64)) == [0, -1, -1, 4]
    assert idx(np.array([2**64 - 1, 1], dtype=np.uint64)) == [-1, 1]
    assert idx(np.array([2**40, 3], dtype=np.int64)) == [-1, 3]  # would wrap in int32
    assert idx(np.array([0, 1, 2, 3], dtype=np.int32)[::2]) == [0, 2]  # strided input


def test_string_inputs() -> None:
    expected = [1, -1, 4, 0]
    values = ["s1", "x", "ü4", "s0"]
    assert idx(values) == expected
    assert idx(tuple(values)) == expected
    assert idx(np.array(values)) == expected
    assert idx(np.array(values, dtype=object)) == expected
    assert idx(iter(values)) == expected
    assert idx(pd.Series(values)) == expected
    assert idx(pd.Series(values, dtype="string")) == expected
    assert idx(pd.Series(values, dtype="category")) == expected
    assert idx(pa.array(values)) == expected
    assert idx(pa.array(values, type=pa.large_string())) == expected
    assert idx(pa.array(values).dictionary_encode()) == expected
    assert idx(pa.chunked_array([values[:1], values[1:]])) == expected


def test_arrow_dictionary_chunks_with_different_dictionaries() -> None:
    chunks = [pa.array(["s3", "bad", "s3"]).dictionary_encode(), pa.array(["s0", "s3"]).dictionary_encode()]
    assert idx(pa.chunked_array(chunks)) == [3, -1, 3, 0, 3]
    # An unused unknown dictionary entry marks nothing.
    arr = pa.DictionaryArray.from_arrays(pa.array([1, 1], type=pa.int32()), pa.array(["nope", "s2"]))
    assert idx(arr, "raise") == [2, 2]


def test_nulls_are_bad_rows() -> None:
    assert idx(["s0", None, "s1"]) == [0, -1, 1]
    assert idx(pa.array(["s0", None])) == [0, -1]
    assert idx(pa.array([None, None], type=pa.string())) == [-1, -1]
    assert idx(pa.array([1, None, 9], type=pa.int64())) == [1, -1, -1]
    assert idx(pd.Series(["s0", None, np.nan])) == [0, -1, -1]
    assert idx(pd.Series([1, None], dtype="Int64")) == [1, -1]
    assert idx(pd.Series(["s1", None], dtype="category")) == [1, -1]


def test_integer_containers() -> None:
    assert idx([0, 3, 7]) == [0, 3, -1]
    assert idx([0, 2**70]) == [0, -1]
    assert idx(pa.array([4, 0], type=pa.uint8())) == [4, 0]
    assert idx(pd.Series([4, 9], dtype=np.int16)) == [4, -1]
    assert idx(range(3)) == [0, 1, 2]


def test_mixed_lists_resolve_each_element_like_a_scalar() -> None:
    assert idx(["s1", 2, True, 1.0, np.int64(3), None, "s1", 2]) == [1, 2, -1, -1, 3, -1, 1, 2]
    assert idx(pd.Series(["s1", 2, True], dtype=object)) == [1, 2, -1]
    assert idx(np.array([True, 1, "s1"], dtype=object)) == [-1, 1, 1]


@pytest.mark.parametrize(
    "tail", [["s2", None], ["s2", 3], ["s2", b"s1"], ["s2", float("nan")], ["s2", "\ud800"]]
)
def test_large_lists_take_the_arrow_path_only_when_every_element_is_a_str(tail: list[Any]) -> None:
    values = ["s1", "x"] * inp.ARROW_MIN_ROWS + tail
    expected = [1, -1] * inp.ARROW_MIN_ROWS + [2, 3 if tail[1] == 3 else -1]
    assert idx(values) == expected
    assert idx(np.array(values, dtype=object)) == expected
    if all(isinstance(v, str) for v in values):
        assert idx(np.array(values)) == expected


@pytest.mark.parametrize(
    "values",
    [
        np.array([1.0, 2.0]),
        np.array([True, False]),
        np.array([b"s0"]),
        np.zeros((2, 2), dtype=np.int32),
        pa.array([1.5]),
        pa.array([True]),
        pd.Series([1.0, 2.0]),
        pd.Series([True, False]),
        pd.DataFrame({"a": [1]}),
        [["s0"], ["s1"]],
        object(),
    ],
)
def test_wrong_kinds_of_arrays_are_batch_input_errors(values: Any) -> None:
    with pytest.raises(BatchInputError, match="servers"):
        inp.to_index_array(values, IDS, LOOKUP, "server", "mark")


def test_raise_names_first_bad_value_and_row() -> None:
    for values, needle in [
        (["s0", "s1", "zz", "yy"], "unknown server: 'zz' (argument 'servers', row 2)"),
        (np.array([0, 1, 2, 3, 77], dtype=np.uint16), "unknown server: 77 (argument 'servers', row 4)"),
        (pa.array(["s0", None]), "unknown server: None (argument 'servers', row 1)"),
        (pd.Series(["s0", "s0", "q"], dtype="category"), "unknown server: 'q' (argument 'servers', row 2)"),
        (np.array(["s0", "q"]), "unknown server: 'q' (argument 'servers', row 1)"),
    ]:
        with pytest.raises(UnknownIdError) as info:
            inp.to_index_array(values, IDS, LOOKUP, "server", "raise")
        assert str(info.value) == needle
        assert info.value.row == int(needle.rsplit("row ", 1)[1][:-1])  # type: ignore[attr-defined]


@given(
    st.lists(
        st.one_of(st.sampled_from(IDS + ("x", "")), st.integers(-2, 7), st.none(), st.booleans()), max_size=30
    )
)
def test_batch_agrees_with_scalar_resolver(values: list[Any]) -> None:
    expected = []
    for v in values:
        try:
            expected.append(inp.resolve_id(v, IDS, LOOKUP, "server"))
        except UnknownIdError:
            expected.append(-1)
    assert idx(values) == expected
    assert idx(np.array(values, dtype=object)) == expected


# ---- families and flows ------------------------------------------------------------------------
def test_family_arrays() -> None:
    out, bad = inp.to_family_array([4, 6, 4])
    assert out.tolist() == [4, 6, 4] and out.dtype == np.uint8 and bad is None
    out, bad = inp.to_family_array(np.array([4, 5, 6], dtype=np.int64), "mark")
    assert out.tolist() == [4, 0, 6] and bad.tolist() == [False, True, False]
    out, bad = inp.to_family_array([4, True, "6", None], "mark")
    assert bad.tolist() == [False, True, True, True]
    out, bad = inp.to_family_array(pa.array([6, None], type=pa.uint8()), "mark")
    assert out.tolist() == [6, 0] and bad.tolist() == [False, True]
    out, bad = inp.to_family_array(pd.Series([4, None], dtype="UInt8"), "mark")
    assert bad.tolist() == [False, True]
    with pytest.raises(InvalidFamilyError, match=r"invalid address family 5:.*row 1"):
        inp.to_family_array([4, 5])
    with pytest.raises(BatchInputError, match="families"):
        inp.to_family_array(np.array([4.0]))


def test_flow_arrays() -> None:
    out, bad = inp.to_flow_array(np.array([-1, 0, 5], dtype=np.int64))
    assert out.tolist() == [2**64 - 1, 0, 5] and out.dtype == np.uint64 and bad is None
    out, _ = inp.to_flow_array(np.array([-1], dtype=np.int8))
    assert out.tolist() == [2**64 - 1]  # sign-extended, as astype(uint64)
    out, _ = inp.to_flow_array(pa.array([-2, 3], type=pa.int64()))
    assert out.tolist() == [2**64 - 2, 3]
    out, _ = inp.to_flow_array(pd.Series([-3], dtype=np.int64))
    assert out.tolist() == [2**64 - 3]
    out, _ = inp.to_flow_array([0, 2**64 - 1, 2**63])
    assert out.tolist() == [0, 2**64 - 1, 2**63]
    out, bad = inp.to_flow_array([1, -1, 2**64, 2**64 - 1, 1.0, None, np.int64(-1)], "mark")
    assert bad.tolist() == [False, True, True, False, True, True, False]
    assert out.tolist() == [1, 0, 0, 2**64 - 1, 0, 0, 2**64 - 1]
    out, bad = inp.to_flow_array(pa.array([None, 7], type=pa.uint64()), "mark")
    assert out.tolist() == [0, 7] and bad.tolist() == [True, False]
    with pytest.raises(ValueError, match=r"invalid flow key -5:.*row 1"):
        inp.to_flow_array([0, -5])
    with pytest.raises(BatchInputError, match="flows"):
        inp.to_flow_array(np.array([1.0]))


# ---- the whole batch -----------------------------------------------------------------------------
def norm(servers: Any, pools: Any, families: Any, flows: Any, errors: str = "raise") -> tuple[Any, ...]:
    return inp.normalize_batch(
        servers,
        pools,
        families,
        flows,
        server_ids=IDS,
        server_lookup=LOOKUP,
        pool_ids=POOLS,
        pool_lookup=POOL_LOOKUP,
        errors=errors,
    )


def test_normalize_batch_types_and_broadcasting() -> None:
    s, p, f, fl, bad = norm(["s0", "s1", "s2"], "p1", 6, np.array([1, 2, 3], dtype=np.int64))
    assert (s.dtype, p.dtype, f.dtype, fl.dtype) == (np.int32, np.int32, np.uint8, np.uint64)
    assert all(a.flags.c_contiguous for a in (s, p, f, fl))
    assert s.tolist() == [0, 1, 2] and p.tolist() == [1, 1, 1] and f.tolist() == [6, 6, 6] and bad is None
    s, p, f, fl, bad = norm("s3", ["p0", "p1"], [4, 6], 9)
    assert s.tolist() == [3, 3] and fl.tolist() == [9, 9]
    s, p, f, fl, bad = norm("s3", "p0", 4, 0)  # all scalars: one row
    assert len(s) == 1


def test_normalize_batch_marks_union_of_bad_rows() -> None:
    s, p, _, _, bad = norm(
        ["s0", "x", "s1", "s2", "s3"],
        ["p0", "p0", "zz", "p1", "p1"],
        [4, 4, 4, 9, 6],
        [0, 1, 2, 3, -1],
        "mark",
    )
    assert bad.tolist() == [False, True, True, True, True]
    assert s.tolist() == [0, -1, -1, -1, -1] and p.tolist() == [0, -1, -1, -1, -1]
    *_, bad = norm(["s0", "s1"], "nope", 4, 0, "mark")
    assert bad.tolist() == [True, True]


def test_normalize_batch_errors() -> None:
    with pytest.raises(BatchInputError, match="servers=3, pools=2"):
        norm(["s0"] * 3, ["p0"] * 2, 4, 0)
    with pytest.raises(UnknownIdError, match=r"unknown pool: 'nope' \(argument 'pools', row 0\)"):
        norm(["s0"], "nope", 4, 0)
    with pytest.raises(InvalidFamilyError):
        norm(["s0"], "p0", 5, 0)
    with pytest.raises(BatchInputError, match="errors must be"):
        norm(["s0"], "p0", 4, 0, errors="skip")
    # The first bad row is reported; within a row, servers come before pools, families, flows.
    with pytest.raises(UnknownIdError, match="row 0"):
        norm(["x"], "p0", [5], 0)
    with pytest.raises(InvalidFamilyError, match=r"\(argument 'families', row 0\)") as info:
        norm(["s0", "x"], "p0", [5, 4], 0)
    assert (info.value.row, info.value.argument) == (0, "families")  # type: ignore[attr-defined]
    # A bad scalar over zero rows is no bad row.
    assert len(norm([], "nope", 4, 0)[0]) == 0


def test_string_conversion_is_vectorised() -> None:
    """1M string ids in well under the time a per-row Python resolver would need (~1 s)."""
    rng = np.random.default_rng(0)
    ids = tuple(f"srv-{i:05d}" for i in range(20000))
    lookup = {s: i for i, s in enumerate(ids)}
    want = rng.integers(0, len(ids), 1_000_000)
    values = np.array(ids)[want]
    for source in (values, pa.array(values), values.tolist()):
        t0 = time.perf_counter()
        out = inp.to_index_array(source, ids, lookup, "server", "raise")
        elapsed = time.perf_counter() - t0
        assert np.array_equal(out, want)
        assert elapsed < 2.0, f"{type(source).__name__}: {elapsed:.2f} s for 1M ids"
