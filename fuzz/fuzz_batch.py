"""Fuzz target: decide_batch with hostile arguments of every kind the API accepts.

Each of the four arguments is built from the input bytes as one of: a scalar (int of any size, str,
bytes, float, None, numpy scalar), a list of mixed values, a numpy array of any dtype (ints of every
width, floats, bools, unicode, objects, 2-D), an Arrow array or chunked array (string, large_string,
string_view, dictionary, integers with nulls, binary), a pandas Series (object, category, nullable
ints), or a generator; with errors "raise" / "mark" / junk and a threads value from absurd to sane.

Invariants: the call returns or raises an ``AegisError`` (anything else is a finding); the compiled
and reference engines agree on which (the same exception class, or equal columns); every answer
holds the guarantee of _invariants.py.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pandas as pd
import pyarrow as pa
from _harness import Provider, main
from _invariants import check_answers

import aegisfwd as af

_topo = af.load_topology(Path(__file__).resolve().parent / "data" / "spec-example.yaml")
COMPILED = af.Engine(_topo)
REFERENCE = af.Engine(_topo, backend="reference")
CT = _topo.compile()
IDS = list(CT.servers) + list(CT.pools) + ["", "nope", "acme\0", "LHR01"]


def scalar(p: Provider) -> Any:
    kind = p.int_in(0, 9)
    if kind == 0:
        return p.int_in(-(2**70), 2**70)
    if kind == 1:
        return p.pick(IDS)
    if kind == 2:
        return p.text(12)
    if kind == 3:
        return None
    if kind == 4:
        return p.pick([4, 6, 0, -4, 2**64, 2**64 - 1, -1])
    if kind == 5:
        return float(p.int_in(-5, 10)) / p.pick([1, 2, 0.5])
    if kind == 6:
        return p.pick([np.int8, np.uint8, np.int64, np.uint64, np.int32])(p.int_in(0, 120))
    if kind == 7:
        return p.bytes(4)
    if kind == 8:
        return p.pick([True, False])
    return p.int_in(0, 8)


def column(p: Provider, n: int) -> Any:
    """A builder (called once per engine, so generators are fresh) of one batch argument."""
    kind = p.int_in(0, 11)
    values = [scalar(p) for _ in range(n)]
    ints = [p.int_in(-3, 9) for _ in range(n)]
    if kind == 0:
        v = scalar(p)
        return lambda: v
    if kind == 1:
        return lambda: list(values)
    if kind == 2:
        dtype = p.pick(["i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f8", "?", "U8", "O"])
        try:
            arr = np.array(values if dtype in ("U8", "O") else ints).astype(dtype)
        except (ValueError, TypeError, OverflowError):
            arr = np.array(ints)
        if p.int_in(0, 7) == 0:
            arr = arr.reshape(1, -1) if arr.size else arr
        return lambda: arr
    if kind == 3:
        t = p.pick([pa.string(), pa.large_string(), pa.string_view(), pa.binary()])
        strs = [p.pick(IDS) if p.int_in(0, 4) else None for _ in range(n)]
        try:
            arr = pa.array(strs, type=t)
        except (pa.ArrowException, TypeError):
            arr = pa.array(strs)
        if p.int_in(0, 1):
            arr = arr.dictionary_encode() if not pa.types.is_string_view(arr.type) else arr
        return lambda: arr
    if kind == 4:
        t = p.pick([pa.int8(), pa.uint8(), pa.int32(), pa.int64(), pa.uint64(), pa.float64()])
        try:
            arr = pa.array(
                [x if x >= 0 or not pa.types.is_unsigned_integer(t) else None for x in ints], type=t
            )
        except (pa.ArrowException, TypeError, OverflowError):
            arr = pa.array(ints)
        return lambda: arr
    if kind == 5:
        cut = p.int_in(0, n)
        chunks = pa.chunked_array([pa.array(ints[:cut], pa.int64()), pa.array(ints[cut:], pa.int64())])
        return lambda: chunks
    if kind == 6:
        s = pd.Series([p.pick(IDS) for _ in range(n)], dtype=p.pick(["object", "category", "string"]))
        return lambda: s
    if kind == 7:
        try:
            s = pd.Series(ints, dtype=p.pick(["Int64", "int64", "UInt8", "float64"]))
        except (TypeError, ValueError, OverflowError):
            s = pd.Series(ints)
        return lambda: s
    if kind == 8:
        return lambda: (x for x in values)
    if kind == 9:
        return lambda: [[1, 2]] * n
    if kind == 10:
        return lambda: np.array(ints, dtype=np.int64)[::-1] if n else np.array([], dtype=np.int64)
    return lambda: {"a": 1}


def outcome(engine: af.Engine, args: list[Any], errors: Any, threads: Any) -> Any:
    try:
        if threads is None:
            return engine.decide_batch(*(a() for a in args), errors=errors)
        return engine.decide_batch(*(a() for a in args), errors=errors, threads=threads)
    except af.AegisError as exc:
        return type(exc)


def test_one_input(data: bytes) -> None:
    p = Provider(data)
    n = p.int_in(0, 6)
    args = [column(p, n) for _ in range(4)]
    errors = p.pick(["raise", "mark", "mark", "ignore"])
    threads = p.pick([None, 1, 2, 0, -1, 2**63, 2**32, 1.5, True, np.uint64(3)])
    got = outcome(COMPILED, args, errors, threads)
    want = outcome(REFERENCE, args, errors, threads)
    if isinstance(got, type) or isinstance(want, type):
        if got is not want:
            raise AssertionError(f"engines disagree: compiled {got!r}, reference {want!r}")
        return
    for name in ("tier", "server", "dc", "location", "ip"):
        if not np.array_equal(getattr(got, name), getattr(want, name)):
            raise AssertionError(f"engines disagree on {name}")
    # The guarantee, on the rows the engine answered: (pool, family) from the normalised input.
    s, pl, f, _, _ = COMPILED._normalize(*(a() for a in args), "mark")
    check_answers(CT, s, pl, f, got)


if __name__ == "__main__":
    main(test_one_input)
