"""Batch inputs that once escaped the library's errors: Arrow string_view columns, absurd thread
counts, iterables without a length. Each must be answered, or refused with an ``AegisError``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import aegisfwd as af
from aegisfwd.engine import MAX_THREADS

SPEC = Path(__file__).parent / "fixtures" / "topologies" / "spec-example.yaml"


@pytest.fixture(scope="module", params=["compiled", "reference"])
def engine(request: pytest.FixtureRequest) -> af.Engine:
    return af.Engine(af.load_topology(SPEC), backend=request.param)


SERVERS = ["lhr01-s001", "ams01-s002", "nowhere"]


def expected(engine: af.Engine) -> af.BatchResult:
    return engine.decide_batch(SERVERS, "acme", 4, [1, 2, 3], errors="mark")


@pytest.mark.parametrize(
    "column",
    [
        pa.array(SERVERS, type=pa.string_view()),
        pa.chunked_array(
            [pa.array(SERVERS[:1], type=pa.string_view()), pa.array(SERVERS[1:], type=pa.string_view())]
        ),
        pa.DictionaryArray.from_arrays(
            pa.array([0, 1, 2], pa.int32()), pa.array(SERVERS, type=pa.string_view())
        ),
    ],
    ids=["string_view", "chunked string_view", "dictionary of string_view"],
)
def test_arrow_string_view_ids_answer_like_string(engine: af.Engine, column: object) -> None:
    got = engine.decide_batch(column, "acme", 4, [1, 2, 3], errors="mark")
    assert got.equals(expected(engine))
    with pytest.raises(af.UnknownIdError, match="nowhere"):
        engine.decide_batch(column, "acme", 4, [1, 2, 3])


def test_string_view_pools(engine: af.Engine) -> None:
    pools = pa.array(["acme"] * 3, type=pa.string_view())
    assert engine.decide_batch(SERVERS, pools, 4, [1, 2, 3], errors="mark").equals(expected(engine))


def test_arrow_columns_arrow_cannot_convert_are_batch_input_errors(engine: af.Engine) -> None:
    with pytest.raises(af.BatchInputError, match="servers"):
        engine.decide_batch(pa.array([b"lhr01-s001"], type=pa.binary_view()), "acme", 4, [1])


@pytest.mark.parametrize(
    "iterable", [lambda: iter(SERVERS), lambda: (s for s in SERVERS), lambda: map(str, SERVERS)]
)
def test_any_iterable_is_accepted_as_the_docstring_says(engine: af.Engine, iterable: object) -> None:
    got = engine.decide_batch(iterable(), "acme", iter([4, 4, 4]), (f for f in [1, 2, 3]), errors="mark")  # type: ignore[operator]
    assert got.equals(expected(engine))


def test_a_non_iterable_is_a_batch_input_error(engine: af.Engine) -> None:
    with pytest.raises(af.BatchInputError, match="servers must be a sequence, an iterable or a scalar"):
        engine.decide_batch(object(), "acme", 4, [1])


@pytest.mark.parametrize("threads", [2**63, 2**32, 2**31, MAX_THREADS + 1, 0, -1, np.int64(-5), 1.0, True])
def test_threads_out_of_range_is_a_batch_input_error(threads: object) -> None:
    engine = af.Engine(af.load_topology(SPEC))
    with pytest.raises(af.BatchInputError, match=r"threads must be an integer in \[1, 1024\]"):
        engine.decide_batch(SERVERS, "acme", 4, [1, 2, 3], errors="mark", threads=threads)  # type: ignore[arg-type]
    ok = engine.decide_batch(SERVERS, "acme", 4, [1, 2, 3], errors="mark", threads=MAX_THREADS)
    assert ok.equals(expected(engine))
