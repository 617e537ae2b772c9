"""Vectorised parsing pinned against plain Python: ingress rendezvous, flow keys, IP families,
timestamps, numbers; and memory staying bounded on a log much larger than one batch."""

from __future__ import annotations

import gzip
import ipaddress
import json
import tracemalloc
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

import aegisfwd as af
from aegisfwd import _core
from aegisfwd._ingress import choose_ingress, choose_ingress_np, choose_ingress_py
from aegisfwd.evaluation import _arrow as ar

U64 = st.integers(min_value=0, max_value=2**64 - 1)


# ---------------------------------------------------------------------------------------------
# choose_ingress: compiled (every ISA of this CPU, one and several threads) == numpy == plain loop
# ---------------------------------------------------------------------------------------------
ISAS = _core.available_isas()


def _all_ways(first, end, flows, keys, states) -> list[int]:
    """The answer of every implementation, asserted equal; returns it."""
    args = (
        np.array(first, np.int32),
        np.array(end, np.int32),
        np.array(flows, np.uint64),
        np.array(keys, np.uint64),
        np.array(states, np.uint8),
    )
    want = choose_ingress_py(first, end, flows, keys, states)
    got_np = choose_ingress_np(*args)
    assert got_np.dtype == np.int32
    assert got_np.tolist() == want
    for isa in ISAS:
        for threads in (1, 3):
            got = choose_ingress(*args, threads=threads, isa=isa)
            assert got.dtype == np.int32
            assert got.tolist() == want, (isa, threads)
    assert choose_ingress(*args).tolist() == want
    return want


@given(
    keys=st.lists(U64, min_size=1, max_size=40),
    data=st.data(),
)
def test_choose_ingress_matches_python(keys, data):
    s = len(keys)
    states = data.draw(st.lists(st.sampled_from([0, 0, 0, 1, 2]), min_size=s, max_size=s))
    n = data.draw(st.integers(0, 60))
    ranges = data.draw(st.lists(st.tuples(st.integers(0, s), st.integers(0, s)), min_size=n, max_size=n))
    first = [min(a, b) for a, b in ranges]
    end = [max(a, b) for a, b in ranges]
    flows = data.draw(st.lists(U64, min_size=n, max_size=n))
    _all_ways(first, end, flows, keys, states)


def test_choose_ingress_tie_on_weight_takes_larger_key():
    # Distinct keys never tie (mix64 is a bijection); duplicate keys do: the larger key among the
    # tied wins and, between equal keys, the lower index, exactly as the Python definition.
    keys = [5, 9, 9, 3] + [9] * 13
    got = _all_ways([0] * 50 + [1] * 50, [4] * 50 + [17] * 50, list(range(100)), keys, [0] * len(keys))
    assert set(got[:50]) <= {0, 1, 3} and 2 not in got


@pytest.mark.parametrize("size", [*range(1, 21), *range(24, 44), 180, 690])
def test_choose_ingress_every_vector_tail(size):
    """Range sizes around the 4-lane (AVX2) and 8-lane (AVX-512) vector widths and their two running
    maxima (odd/even vectors), and above the length where the AVX2 kernel leaves the scalar loop
    (24 up servers): every tail length of both, with some servers down, shared and
    distinct ranges per call, and a weight-0 candidate (a key equal to the row's ingress hash) that
    must still win when it is the only one up."""
    rng = np.random.default_rng(size)
    keys = rng.integers(0, 2**64 - 1, size + 10, dtype=np.uint64, endpoint=True)
    states = (rng.random(size + 10) < 0.2).astype(np.uint8)
    n = 400
    first = np.full(n, 10, np.int32)
    end = np.full(n, 10 + size, np.int32)
    first[::4] = rng.integers(0, 10, n)[::4]
    flows = rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)
    _all_ways(first.tolist(), end.tolist(), flows.tolist(), keys.tolist(), states.tolist())
    # A candidate whose weight is 0 (its key is the row's ingress hash), alone among the up ones.
    from aegisfwd._hashing import ingress_flow_hash

    keys[10 + size - 1] = np.uint64(ingress_flow_hash(int(flows[0])))
    states[10 : 10 + size] = 1
    states[10 + size - 1] = 0
    got = _all_ways([10], [10 + size], [int(flows[0])], keys.tolist(), states.tolist())
    assert got == [10 + size - 1]


def _unmix64(y: int) -> int:
    """The inverse of mix64 (a bijection): undo each xorshift and multiply by the inverse constant."""

    def unxorshift(v: int, s: int) -> int:
        x = v
        for _ in range(64 // s + 1):
            x = v ^ (x >> s)
        return x

    m = 2**64
    x = unxorshift(y, 31)
    x = x * pow(0x94D049BB133111EB, -1, m) % m
    x = unxorshift(x, 27)
    x = x * pow(0xBF58476D1CE4E5B9, -1, m) % m
    return unxorshift(x, 30)


@pytest.mark.parametrize("count", range(1, 10))
def test_choose_ingress_top_bit_weights_and_lane_counts(count):
    """Chosen weights, lane counts 1..9: the winner's weight has its top bit set and the others are
    just below 2**63 (a signed 64-bit compare, as AVX2's, would pick one of those), the winner tied
    with a later candidate (the lower index wins), the winner at every position; the next range's
    keys, right after this list, and the lanes past it (keys 0) all weigh more than any candidate,
    so a lane past the list that takes part wins and shows."""
    from aegisfwd._hashing import ingress_flow_hash, mix64

    # A flow whose weight for key 0 (the value a masked lane loads) is above every candidate's.
    flow = next(f for f in range(1 << 20) if mix64(ingress_flow_hash(f)) >> 60 == 0xF)
    h = ingress_flow_hash(flow)
    assert _unmix64(mix64(12345)) == 12345

    def key_of(w: int) -> int:
        return _unmix64(w) ^ h

    top = 0xF000_0000_0000_0000 - 1  # heavier than any candidate below, lighter than key 0's lane
    for at in range(count):
        weights = [0x7FFF_FFFF_FFFF_FFFF - q for q in range(count)]
        weights[at] = 0x8000_0000_0000_0000 + 7
        if at + 2 < count:
            weights[at + 2] = weights[at]  # a tie: the lower index wins
        beyond = [top - q for q in range(8)]  # the next range's servers
        keys = [key_of(w) for w in weights + beyond]
        states = [0] * len(keys)
        # The row of interest, then a row over the next range so that its keys follow this list in
        # the kernel's candidate arrays.
        got = _all_ways([0, count], [count, count + 8], [flow, flow], keys, states)
        assert got[0] == at, (count, at, got)
        assert got[1] == count
        # Only the low-weight candidates are up around a lone top-bit one.
        weights = [q for q in range(count)]
        weights[at] = 0xFFFF_FFFF_FFFF_FFFF if count > 1 else 0
        keys = [key_of(w) for w in weights + beyond]
        got = _all_ways([0, count], [count, count + 8], [flow, flow], keys, states)
        assert got[0] == (at if count > 1 else 0), (count, at, got)


def test_choose_ingress_large_group_chunks():
    rng = np.random.default_rng(1)
    keys = rng.integers(0, 2**64 - 1, 700, dtype=np.uint64)
    states = (rng.random(700) < 0.2).astype(np.uint8)
    n = 600
    first = np.full(n, 10, np.int32)
    end = np.full(n, 690, np.int32)
    flows = rng.integers(0, 2**64 - 1, n, dtype=np.uint64)
    _all_ways(first.tolist(), end.tolist(), flows.tolist(), keys.tolist(), states.tolist())


def test_choose_ingress_many_rows_threads_agree():
    """A batch large enough to be split over threads equals the single-thread and numpy answers."""
    rng = np.random.default_rng(7)
    keys = rng.integers(0, 2**64 - 1, 2000, dtype=np.uint64)
    states = (rng.random(2000) < 0.1).astype(np.uint8)
    n = 100_000
    first = (rng.integers(0, 10, n) * 190).astype(np.int32)
    end = (first + rng.integers(0, 190, n)).astype(np.int32)
    flows = rng.integers(0, 2**64 - 1, n, dtype=np.uint64)
    want = choose_ingress_np(first, end, flows, keys, states)
    for isa in ISAS:
        for threads in (1, 2, 4):
            np.testing.assert_array_equal(
                choose_ingress(first, end, flows, keys, states, threads=threads, isa=isa), want
            )


def test_choose_ingress_rejects_bad_ranges():
    keys, states = np.zeros(3, np.uint64), np.zeros(3, np.uint8)
    for impl in (choose_ingress, choose_ingress_np):
        with pytest.raises(ValueError, match=r"server range .*outside \[0, "):
            impl(np.array([0], np.int32), np.array([5], np.int32), np.array([1], np.uint64), keys, states)
        with pytest.raises(ValueError, match=r"server range .*outside \[0, "):
            impl(np.array([-1], np.int32), np.array([2], np.int32), np.array([1], np.uint64), keys, states)
    # An empty range (end <= first) is no error, wherever it points: the row has no server.
    got = choose_ingress(
        np.array([7, 2], np.int32), np.array([7, -5], np.int32), np.array([1, 2], np.uint64), keys, states
    )
    assert got.tolist() == [-1, -1]


def test_choose_ingress_core_rejects_bad_input():
    """The compiled function checks dtypes, lengths and ranges itself: a ValueError, never a crash."""
    f, e, h = np.zeros(2, np.int32), np.full(2, 3, np.int32), np.arange(2, dtype=np.uint64)
    k, s = np.arange(3, dtype=np.uint64), np.zeros(3, np.uint8)
    with pytest.raises(ValueError, match="dtype int32"):
        _core.logeval.choose_ingress(f.astype(np.int64), e, h, k, s)
    with pytest.raises(ValueError, match="dtype uint64"):
        _core.logeval.choose_ingress(f, e, h.astype(np.int64), k, s)
    with pytest.raises(ValueError, match="numpy array"):
        _core.logeval.choose_ingress([0, 0], e, h, k, s)
    with pytest.raises(ValueError, match="one length"):
        _core.logeval.choose_ingress(f, e[:1], h, k, s)
    with pytest.raises(ValueError, match="one entry per server key"):
        _core.logeval.choose_ingress(f, e, h, k, s[:2])
    with pytest.raises(ValueError, match="outside"):
        _core.logeval.choose_ingress(f, np.full(2, 4, np.int32), h, k, s)
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.logeval.choose_ingress(np.zeros(4, np.int32)[::2], e, h, k, s)
    with pytest.raises(ValueError, match="isa"):
        _core.logeval.choose_ingress(f, e, h, k, s, 1, "sse9")
    assert _core.logeval.choose_ingress(f[:0], e[:0], h[:0], k, s).tolist() == []
    with pytest.raises(ValueError, match="outside"):
        _core.logeval.choose_ingress(f, e, h, k[:0], s[:0], 1)  # no servers at all: every live range is out
    assert _core.logeval.choose_ingress(e, f, h, k[:0], s[:0], 1).tolist() == [-1, -1]  # empty ranges


# ---------------------------------------------------------------------------------------------
# Flow keys
# ---------------------------------------------------------------------------------------------
def _hash_all_ways(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Compiled and numpy ``hash_strings`` of ``arr``, asserted equal; returns the compiled answer."""
    h, ok = ar.hash_strings(arr, len(arr))
    h_np, ok_np = ar.hash_strings_np(arr, len(arr))
    assert h.dtype == np.uint64 and ok.dtype == bool
    np.testing.assert_array_equal(h, h_np)
    np.testing.assert_array_equal(ok, ok_np)
    return h, ok


@given(st.lists(st.one_of(st.none(), st.text(max_size=70)), max_size=30), st.integers(0, 3))
def test_hash_strings_matches_python(values, cut):
    for arr in (
        pa.array(values, pa.string()),
        pa.array(values, pa.large_string()),
        pa.array(["pad"] * cut + values, pa.string()).slice(cut),
        pa.array(values, pa.string()).dictionary_encode(),
        pa.array(values, pa.string_view()),
    ):
        h, ok = _hash_all_ways(arr)
        for v, hv, okv in zip(values, h.tolist(), ok.tolist(), strict=True):
            assert okv == bool(v)
            if v:
                assert hv == ar.string_hash_py(v.encode("utf-8"))


def test_hash_strings_long_values_and_slices():
    values = ["x" * 1000, "short", "", None, "é" * 300]
    arr = pa.array(["pad"] + values, pa.large_string()).slice(1)
    h, ok = _hash_all_ways(arr)
    assert ok.tolist() == [True, True, False, False, True]
    assert h[0] == ar.string_hash_py(values[0].encode())
    assert h[4] == ar.string_hash_py(values[4].encode())


def test_hash_strings_unaligned_offsets():
    """Arrow buffers that arrive through IPC or pickles may be unaligned: hashed all the same."""
    values = ["203.0.113.9", None, "", "2001:db8::1"]
    arr = pa.array(values, pa.string())
    validity, offsets, data = arr.buffers()
    shifted = pa.py_buffer(b"\0" + offsets.to_pybytes())[1:]
    assert shifted.address % 4 != 0
    odd = pa.Array.from_buffers(
        pa.string(), len(values), [validity, shifted, data], null_count=arr.null_count
    )
    h, ok = _hash_all_ways(odd)
    np.testing.assert_array_equal(h, ar.hash_strings(arr, len(arr))[0])
    assert ok.tolist() == [True, False, False, True]


def test_hash_strings_other_types_hash_their_text():
    """Numbers hash as their decimal text, binary as its UTF-8 reading (with replacement), exactly
    as the numpy twin does; a dictionary with null values and null indices too."""
    _hash_all_ways(pa.array([1, None, 22, -5], pa.int64()))
    _hash_all_ways(pa.array([b"\xff\xfeab", None, b"", b"plain"], pa.binary()))
    d = pa.DictionaryArray.from_arrays(pa.array([0, None, 1, 2, 0], pa.int32()), pa.array(["a", None, ""]))
    h, ok = _hash_all_ways(d)
    assert ok.tolist() == [True, False, False, False, True]
    assert h[0] == ar.string_hash_py(b"a")


def test_string_hashes_core_rejects_bad_input():
    """The compiled function checks offsets against the data before reading: ValueError, no crash."""
    data = np.frombuffer(b"abcdef", np.uint8)
    h, ok = _core.logeval.string_hashes(np.array([0, 3, 3, 6], np.int32), data)
    assert h.tolist() == [ar.string_hash_py(b"abc"), ar.string_hash_py(b""), ar.string_hash_py(b"def")]
    assert ok.tolist() == [True, False, True]
    h, ok = _core.logeval.string_hashes(np.array([0, 3, 6], np.int64), data, np.array([False, True]))
    assert ok.tolist() == [False, True] and h[0] == ar.string_hash_py(b"")
    with pytest.raises(ValueError, match="past the end"):
        _core.logeval.string_hashes(np.array([0, 7], np.int32), data)
    with pytest.raises(ValueError, match="non-decreasing"):
        _core.logeval.string_hashes(np.array([0, 4, 2], np.int32), data)
    with pytest.raises(ValueError, match=">= 0"):
        _core.logeval.string_hashes(np.array([-1, 2], np.int64), data)
    with pytest.raises(ValueError, match="at least one"):
        _core.logeval.string_hashes(np.zeros(0, np.int32), data)
    with pytest.raises(ValueError, match="one entry per value"):
        _core.logeval.string_hashes(np.array([0, 3, 6], np.int32), data, np.ones(3, bool))
    with pytest.raises(ValueError, match="bool or uint8"):
        _core.logeval.string_hashes(np.array([0, 3, 6], np.int32), data, np.ones(2, np.int32))
    with pytest.raises(ValueError, match="dtype uint8"):
        _core.logeval.string_hashes(np.array([0, 3, 6], np.int32), data.astype(np.int8))
    with pytest.raises(ValueError, match="dtype int32"):
        _core.logeval.string_hashes(np.array([0, 3, 6], np.uint16), data)


@given(
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.just(""), st.ip_addresses().map(str)),
            st.one_of(st.none(), st.integers(-5, 70000)),
            st.one_of(st.none(), st.just(""), st.text(alphabet="0123456789abcdef-", min_size=1, max_size=20)),
        ),
        max_size=25,
    )
)
def test_flow_keys_match_python(rows):
    ips = pa.array([r[0] for r in rows], pa.string())
    ports = pa.array([r[1] for r in rows], pa.int64())
    rays = pa.array([r[2] for r in rows], pa.string())
    flows, ok = ar.flow_keys(ips, ports, rays, len(rows))
    for (ip, port, ray), f, o in zip(rows, flows.tolist(), ok.tolist(), strict=True):
        want = ar.flow_key_py(ip, port, ray)
        assert o == (want is not None)
        if want is not None:
            assert f == want


@given(
    st.one_of(st.just(""), st.ip_addresses().map(str), st.text(max_size=40)),
    st.integers(-(2**80), 2**80) | st.integers(-5, 70000),
)
def test_compiled_client_flow_key_matches_python(ip: str, port: int) -> None:
    """The proxy's per-connection key (C++, aegisfwd/flow_key.hpp) is the log evaluation's key."""
    from aegisfwd._flowkey import client_flow_key

    try:
        want = ar.flow_key_py(ip, port, None)
    except UnicodeEncodeError:  # a lone surrogate: neither form can encode it
        with pytest.raises(UnicodeEncodeError):
            client_flow_key(ip, port)
        return
    assert client_flow_key(ip, port) == want


def test_compiled_client_flow_key_refuses_a_port_that_is_not_an_int() -> None:
    from aegisfwd._flowkey import client_flow_key

    with pytest.raises(TypeError, match="client_port must be an int, got str"):
        client_flow_key("192.0.2.1", "443")
    with pytest.raises(TypeError):  # the definition refuses it too
        ar.flow_key_py("192.0.2.1", "443", None)  # type: ignore[arg-type]


def test_flow_key_ports_as_strings_equal_ints():
    a, _ = ar.flow_keys(pa.array(["192.0.2.1"]), pa.array(["443"]), None, 1)
    b, _ = ar.flow_keys(pa.array(["192.0.2.1"]), pa.array([443]), None, 1)
    c, _ = ar.flow_keys(pa.array(["192.0.2.1"]), pa.array([443.0]), None, 1)
    assert a[0] == b[0] == c[0] == ar.flow_key_py("192.0.2.1", 443, None)


def test_flow_key_pinned_values():
    """Known answers, and the derivation of docs/evaluate.md transcribed independently: changing
    the derivation changes every evaluation, so it must not change unnoticed."""
    from aegisfwd._hashing import mix64

    def string_hash(b: bytes) -> int:
        h = mix64(len(b) ^ 0x8EBC6AF09C88C6E3)
        padded = b + b"\0" * (-len(b) % 8)
        for k in range(0, len(padded), 8):
            h = mix64(h ^ int.from_bytes(padded[k : k + 8], "little"))
        return h

    client = mix64(string_hash(b"198.51.100.1") ^ mix64(40001 ^ 0xA0761D6478BD642F))
    ray = mix64(string_hash(b"7b1c2d3e4f5a6b7c") ^ 0xE7037ED1A0B428DB)
    assert ar.flow_key_py("198.51.100.1", 40001, None) == client == 0x259002DC45C00B3D
    assert ar.flow_key_py(None, None, "7b1c2d3e4f5a6b7c") == ray == 0x60DB419F3C08990F
    assert ar.string_hash_py(b"") == string_hash(b"") == 0x3ADC22F1B1C30C39
    # client fields win over RayID; a port outside [0, 65535] makes the client fields unusable
    assert ar.flow_key_py("198.51.100.1", 40001, "7b1c2d3e4f5a6b7c") == client
    assert ar.flow_key_py("198.51.100.1", 70000, "7b1c2d3e4f5a6b7c") == ray
    from aegisfwd._flowkey import client_flow_key

    assert client_flow_key("198.51.100.1", 40001) == client


# ---------------------------------------------------------------------------------------------
# IP families
# ---------------------------------------------------------------------------------------------
def _py_family(v: str | None) -> int:
    if v is None:
        return 0
    v = v.strip()
    if "%" in v or "/" in v:
        return 0
    try:
        return ipaddress.ip_address(v).version
    except ValueError:
        return 0


@given(
    st.lists(
        st.one_of(
            st.none(),
            st.ip_addresses().map(str),
            st.ip_addresses().map(lambda a: a.exploded),
            st.text(alphabet="0123456789abcdef:.", max_size=45),
            st.text(max_size=10),
        )
    )
)
def test_ip_family_matches_ipaddress(values):
    got = ar.ip_family_of_strings(pa.array(values, pa.string())).tolist()
    assert got == [_py_family(v) for v in values]


@pytest.mark.parametrize(
    ("value", "family"),
    [
        ("192.0.2.1", 4),
        ("::1", 6),
        ("2001:db8::1", 6),
        ("::ffff:192.0.2.1", 6),
        ("1:2:3:4:5:6:7::", 6),
        ("", 0),
        ("   ", 0),
        ("garbage", 0),
        ("01.2.3.4", 0),
        ("256.0.0.1", 0),
        ("1.2.3", 0),
        ("1::2::3", 0),
        ("fe80::1%eth0", 0),
        ("192.0.2.0/24", 0),
        ("[2001:db8::1]", 0),
        (" 192.0.2.1 ", 4),
    ],
)
def test_ip_family_examples(value, family):
    assert ar.ip_family_of_strings(pa.array([value])).tolist() == [family]


@given(
    st.lists(
        st.one_of(st.none(), st.sampled_from(["192.0.2.1", " 192.0.2.1", "::1", "x", "", "2001:db8::1 "])),
        max_size=30,
    )
)
def test_ip_family_of_dictionary_columns(values):
    """A dictionary column (Parquet read_dictionary; entries may repeat, be null or be untrimmed)
    gives the same family per row and the same origin text per row as the plain column."""
    plain = pa.array(values, pa.string())
    dictionary = pa.array(["2001:db8::1 ", None, "x", "192.0.2.1", " 192.0.2.1", "::1", "", "192.0.2.1"])
    pos = {v: i for i, v in enumerate(dictionary.to_pylist()) if v is not None}
    enc = pa.DictionaryArray.from_arrays(
        pa.array([None if v is None else pos[v] for v in values], pa.int32()), dictionary
    )
    for _ in range(2):  # the second time from the cache of the last dictionary
        fam, d, idx = ar.ip_family(enc, len(values))
        fam_p, d_p, idx_p = ar.ip_family(plain, len(values))
        assert fam.tolist() == fam_p.tolist() == [_py_family(v) for v in values]
        text = [None if i < 0 else d[i].as_py() for i in idx.tolist()]
        assert text == [None if i < 0 else d_p[i].as_py() for i in idx_p.tolist()]


# ---------------------------------------------------------------------------------------------
# Timestamps, durations, numbers
# ---------------------------------------------------------------------------------------------
NS = 1_700_000_000_123_456_789


@pytest.mark.parametrize(
    ("value", "want"),
    [
        (NS, NS),  # unixnano, beyond float64 precision
        (str(NS), NS),
        (1_700_000_000, 1_700_000_000 * 10**9),  # unix seconds
        ("1700000000", 1_700_000_000 * 10**9),
        (1_700_000_000_123, 1_700_000_000_123 * 10**6),  # ms
        ("1700000000123", 1_700_000_000_123 * 10**6),
        (1_700_000_000_123_456, 1_700_000_000_123_456 * 10**3),  # µs
        ("1700000000.25", 1_700_000_000_250_000_000),
        ("2023-11-14T22:13:20.123456789Z", NS),
        ("2023-11-14T23:13:20.123456789+01:00", NS),
        ("2023-11-14 22:13:20", 1_700_000_000 * 10**9),
        ("2023-11-14T22:13:20Z", 1_700_000_000 * 10**9),
    ],
)
def test_timestamps(value, want):
    arr = pa.array([value])
    got, ok = ar.to_epoch_ns(arr, 1)
    assert ok.tolist() == [True]
    assert int(got[0]) == want


def test_timestamps_mixed_column_and_garbage():
    values = [str(NS), "2023-11-14 22:13:20", "garbage", "", None, "2023-13-40T00:00:00Z", "-5", "1.5e9"]
    got, ok = ar.to_epoch_ns(pa.array(values), len(values))
    assert ok.tolist() == [True, True, False, False, False, False, False, True]
    assert int(got[0]) == NS and int(got[7]) == 1_500_000_000 * 10**9


def test_timestamp_arrow_type():
    arr = pa.array([datetime(2023, 11, 14, 22, 13, 20, tzinfo=timezone.utc)], pa.timestamp("us", tz="UTC"))
    got, ok = ar.to_epoch_ns(arr, 1)
    assert ok[0] and int(got[0]) == 1_700_000_000 * 10**9


def test_durations_prefer_ms_then_ns():
    ms = pa.array(["10", None, "7", "x", "2.5"])
    ns = pa.array([99, 3_000_000, None, 5, None])
    got, ok = ar.to_duration_ns(ms, ns, 5)
    assert ok.tolist() == [True, True, True, True, True]
    assert got.tolist() == [10_000_000, 3_000_000, 7_000_000, 5, 2_500_000]


def test_durations_beyond_int64_nanoseconds_are_invalid_not_wrapped():
    ms = pa.array(["9300000000000", "9100000000000", "1e300", None])
    ns = pa.array([None, None, None, 2**63 - 1], pa.uint64())
    got, ok = ar.to_duration_ns(ms, ns, 4)
    assert ok.tolist() == [False, True, False, True]
    assert got.tolist()[1] == 9_100_000_000_000 * 10**6 and got.tolist()[3] == 2**63 - 1


def test_numbers_from_any_type():
    ints, _, _, valid = ar.to_number(pa.array(["12", " 13 ", "1e3", "x", None, "", "-4"]))
    assert valid.tolist() == [True, True, True, False, False, False, True]
    assert ints[[0, 1, 2, 6]].tolist() == [12, 13, 1000, -4]
    assert to_list(ar.to_port(pa.array(["80", "443", "70000", "-1", None, "x"]), 6)) == (
        [80, 443, 0, 0, 0, 0],
        [True, True, False, False, False, False],
    )


def to_list(t):
    return t[0].tolist(), t[1].tolist()


def test_nested_values_become_text():
    arr = pa.array([{"a": 1}, None])
    s = ar.to_string(arr)
    assert s.to_pylist() == ['{"a":1}', None]


# ---------------------------------------------------------------------------------------------
# Bounded memory
# ---------------------------------------------------------------------------------------------
def _big_ndjson_gz(path, rows: int) -> None:
    colos = ["LHR", "AMS", "JFK", "LHR01"]
    zones = ["local.example", "remote.example", "dc.example", "none.example"]
    with gzip.open(path, "wt") as f:
        for i in range(rows):
            f.write(
                json.dumps(
                    {
                        "RayID": f"{i:016x}",
                        "EdgeColoCode": colos[i % 4],
                        "ZoneName": zones[(i // 4) % 4],
                        "OriginIP": f"203.0.113.{i % 200}",
                        "ClientIP": f"198.51.{i % 250}.{i % 199}",
                        "ClientSrcPort": 1024 + i % 60000,
                        "EdgeStartTimestamp": 1_700_000_000_000_000_000 + i * 1_000_000,
                        "OriginResponseDurationMs": i % 50,
                        "RequestHeaders": {"x-pad": "y" * 40},
                    }
                )
                + "\n"
            )


def test_memory_is_bounded_by_the_batch_not_the_log(tmp_path):
    """A log of 60k rows evaluated in 2k-row batches (256 KiB NDJSON blocks) peaks far below what
    holding the log would take, and the same run with 4x the rows peaks about the same."""
    from aegisfwd.evaluation import _read, _run

    topo = af.load_topology(__file__.rsplit("/", 1)[0] + "/fixtures/logs/topology.yaml")
    small, big = tmp_path / "small.json.gz", tmp_path / "big.json.gz"
    _big_ndjson_gz(small, 15_000)
    _big_ndjson_gz(big, 60_000)
    model = _run.model_for(topo)
    old = _read.NDJSON_BLOCK_BYTES
    peaks = {}
    try:
        _read.NDJSON_BLOCK_BYTES = 256 << 10
        for name, path in (("small", small), ("big", big)):
            tracemalloc.start()
            ev = af.evaluate(
                path, model, batch_rows=2000, keep_rows=0, progress=False, output=tmp_path / f"{name}.parquet"
            )
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            peaks[name] = peak
            assert ev.summary.rows_in == ev.summary.rows_decided + ev.summary.rows_rejected
    finally:
        _read.NDJSON_BLOCK_BYTES = old
    raw_big = 60_000 * 330  # bytes of uncompressed NDJSON in the big log
    assert peaks["big"] < raw_big / 2, peaks
    assert peaks["big"] < 1.6 * peaks["small"] + (2 << 20), peaks


@given(
    st.lists(
        st.one_of(st.none(), st.text(alphabet="0123456789abcdef.:-", max_size=60)), min_size=1, max_size=40
    )
)
def test_hash_strings_ascii_fast_path_matches_python(values):
    """ASCII columns take the NUL-padded matrix path; it must equal the byte-wise definition."""
    h, ok = ar.hash_strings(pa.array(values, pa.string()), len(values))
    for v, hv, okv in zip(values, h.tolist(), ok.tolist(), strict=True):
        assert okv == bool(v)
        if v:
            assert hv == ar.string_hash_py(v.encode("ascii"))


# ---------------------------------------------------------------------------------------------
# Lookups of colo, zone, server and pool values: vectorised (Arrow hash lookup through the column's
# dictionary, cached per dictionary) == value by value
# ---------------------------------------------------------------------------------------------
def _lookup_py(v, table, fallback):
    """The documented rule, one value at a time: exact, stripped, then the case rule; blank = missing."""
    from aegisfwd.evaluation._prepare import MISSING, UNKNOWN

    if v is None or not v.strip():
        return MISSING
    got = table.get(v)
    if got is None:
        got = table.get(v.strip())
    if got is None and fallback is not None:
        got = fallback(v.strip())
    return UNKNOWN if got is None else got


_IDS = ["LHR", "lhr01", "AMS", "ams", "example.com", "Shop.Example", " ", "x y"]
_TABLE = {k: i for i, k in enumerate(_IDS)}
_VALUE = st.one_of(
    st.none(),
    st.sampled_from(
        _IDS + ["", "  ", "\t", "nope", "LHR ", " lhr01", "Lhr", "AMS", "EXAMPLE.COM.", "shop.example."]
    ),
    st.text(alphabet="aAlLhHrR .\t", max_size=6),
)


@given(st.lists(_VALUE, max_size=40), st.booleans())
def test_lookup_equals_value_by_value(values, as_dictionary):
    from aegisfwd.evaluation._prepare import Lookup

    upper = {}
    for k, i in _TABLE.items():
        upper[k.upper()] = i if k.upper() not in upper else None
    upper = {k: v for k, v in upper.items() if v is not None}

    def fallback(v):
        return upper.get(v.upper())

    lk = Lookup(_TABLE, fallback)
    arr = pa.array(values, pa.string())
    if as_dictionary:  # duplicate and null dictionary entries included, as Parquet may hand them over
        dictionary = pa.array(list(dict.fromkeys(values)) + ["LHR", None], pa.string())
        pos = {v: i for i, v in enumerate(dictionary.to_pylist()) if v is not None}
        arr = pa.DictionaryArray.from_arrays(
            pa.array([None if v is None else pos[v] for v in values], pa.int32()), dictionary
        )
    want = [_lookup_py(v, _TABLE, fallback) for v in values]
    assert lk(arr, len(values)).tolist() == want
    assert lk(arr, len(values)).tolist() == want  # again, from the per-dictionary cache
    assert lk(arr.slice(1), len(values) - 1 if values else 0).tolist() == want[1:]


def test_lookup_absent_column_and_empty_table():
    from aegisfwd.evaluation._prepare import MISSING, UNKNOWN, Lookup

    assert Lookup(_TABLE)(None, 3).tolist() == [MISSING] * 3
    assert Lookup({})(pa.array(["a", None, " "]), 3).tolist() == [UNKNOWN, MISSING, MISSING]


def test_model_colo_and_zone_rules():
    """The model's colo codes give the ranges of the documented rule (exact id, then unique
    upper-case match) and zone codes the pools (exact, then lower-case without a trailing dot)."""
    from aegisfwd.evaluation._prepare import MISSING, UNKNOWN
    from aegisfwd.evaluation._run import model_for

    m = model_for(af.Engine(af.load_topology(Path(__file__).parent / "fixtures" / "logs" / "topology.yaml")))
    colos = (
        list(m.colo_lookup)
        + [c.lower() for c in m.colo_lookup]
        + [f" {c} " for c in m.colo_lookup]
        + ["", None, "zzz"]
    )
    codes = m.colo_codes(pa.array(colos), len(colos)).tolist()
    for v, c in zip(colos, codes, strict=True):
        want = _lookup_py(v, m.colo_lookup, lambda x: m.colo_upper.get(x.upper()))
        if isinstance(want, tuple):
            assert (int(m.colo_first[c]), int(m.colo_end[c]), int(m.colo_location[c])) == want
        else:
            assert c == want and c in (MISSING, UNKNOWN)
    zones = list(m.zone_lookup) + [z.upper() + "." for z in m.zone_lookup] + ["nope.example", "  "]
    lower = {}
    for z, p in m.zone_lookup.items():
        lower.setdefault(z.lower(), p)
    got = m.zone_codes(pa.array(zones).dictionary_encode(), len(zones)).tolist()
    assert got == [_lookup_py(z, m.zone_lookup, lambda x: lower.get(x.lower().rstrip("."))) for z in zones]


# ---------------------------------------------------------------------------------------------
# Dictionary compaction of output columns
# ---------------------------------------------------------------------------------------------
@given(
    st.integers(0, 40).flatmap(lambda k: st.tuples(st.just(k), st.lists(st.integers(-1, k - 1), max_size=60)))
)
def test_compact_indices_matches_numpy(case):
    size, indices = case
    idx = np.array(indices, np.int32)
    new, kept = _core.logeval.compact_indices(idx, size)
    want_kept = np.unique(idx[idx >= 0])
    assert kept.dtype == np.int32 and new.dtype == np.int32
    assert kept.tolist() == want_kept.tolist()
    assert [-1 if i < 0 else int(kept[j]) for i, j in zip(indices, new.tolist(), strict=True)] == indices


def test_compact_indices_rejects_bad_input():
    with pytest.raises(ValueError, match="outside"):
        _core.logeval.compact_indices(np.array([0, 3], np.int32), 3)
    with pytest.raises(ValueError, match="outside"):
        _core.logeval.compact_indices(np.array([-2], np.int32), 3)
    with pytest.raises(ValueError, match=">= 0"):
        _core.logeval.compact_indices(np.array([], np.int32), -1)
    with pytest.raises(ValueError, match="dtype int32"):
        _core.logeval.compact_indices(np.array([0], np.int64), 3)


def test_compact_dictionary_column(monkeypatch):
    from aegisfwd.evaluation import _output

    d = pa.array(["a", "b", "c", "d"])
    col = _output.compact_dictionary(np.array([3, -1, 1, 3], np.int64), d)
    assert col.dictionary.to_pylist() == ["a", "b", "c", "d"]  # small dictionaries stay whole
    assert col.to_pylist() == ["d", None, "b", "d"]
    monkeypatch.setattr(_output, "COMPACT_MIN_ENTRIES", 2)
    col = _output.compact_dictionary(np.array([3, -1, 1, 3], np.int64), d)
    assert col.type == pa.dictionary(pa.int32(), pa.string())
    assert col.dictionary.to_pylist() == ["b", "d"]
    assert col.to_pylist() == ["d", None, "b", "d"]


# ---------------------------------------------------------------------------------------------
# PairIndex: dense ids of (uint64, uint64) pairs in order of first appearance
# ---------------------------------------------------------------------------------------------
@given(
    st.lists(
        st.lists(st.tuples(st.integers(0, 5), st.sampled_from([0, 1, 2**64 - 1])), max_size=40), max_size=5
    )
)
def test_pair_index_matches_dict(batches):
    index = _core.logeval.PairIndex()
    seen: dict[tuple[int, int], int] = {}
    for batch in batches:
        a = np.array([x for x, _ in batch], np.uint64)
        b = np.array([y for _, y in batch], np.uint64)
        ids, fresh = index.index(a, b)
        want_fresh = []
        for i, pair in enumerate(batch):
            if pair not in seen:
                seen[pair] = len(seen)
                want_fresh.append(i)
        assert ids.tolist() == [seen[p] for p in batch]
        assert fresh.tolist() == want_fresh
        assert len(index) == len(seen)


def test_pair_index_grows_and_rejects_bad_input():
    index = _core.logeval.PairIndex()
    a = np.arange(100_000, dtype=np.uint64)
    ids, fresh = index.index(a, a * np.uint64(3))
    assert ids.tolist() == list(range(100_000)) and fresh.shape[0] == 100_000
    ids, fresh = index.index(a[::-1].copy(), a[::-1] * np.uint64(3))
    assert ids.tolist() == list(range(99_999, -1, -1)) and fresh.shape[0] == 0
    with pytest.raises(ValueError, match="one length"):
        index.index(a[:3], a[:2])
    with pytest.raises(ValueError, match="dtype uint64"):
        index.index(a.astype(np.int64), a)


def test_parquet_arrow_memory_is_bounded_by_the_batch_not_the_file(tmp_path, monkeypatch):
    """Arrow memory in use while a Parquet log is evaluated (sampled at every batch) does not grow
    with the number of row groups read: 4x the row groups peak about the same (pyarrow's default
    pre_buffer kept every row group read so far until the end)."""
    import importlib

    import pyarrow.parquet as pq

    from aegisfwd.evaluation import _run
    from aegisfwd.evaluation.demo import make_table

    world = importlib.import_module("aegisfwd.datasets").world(0)
    engine = af.Engine(world)
    table = make_table(20_000, 4, topology=world).drop_columns(["EdgeStartTimestamp"])
    paths = {}
    for name, groups in (("small", 3), ("big", 12)):
        paths[name] = tmp_path / f"{name}.parquet"
        with pq.ParquetWriter(paths[name], table.schema) as w:
            for _ in range(groups):
                w.write_table(table)
    peaks: dict[str, int] = {}
    process = _run.Runner.process

    def sampled(self, chunk):
        peaks[current] = max(peaks.get(current, 0), pa.total_allocated_bytes())
        return process(self, chunk)

    monkeypatch.setattr(_run.Runner, "process", sampled)
    for current in ("small", "big"):
        ev = af.evaluate(
            paths[current],
            engine,
            batch_rows=5_000,
            progress=False,
            output=tmp_path / f"{current}-out.parquet",
        )
        assert ev.summary.rows_decided == 20_000 * (3 if current == "small" else 12)
    assert peaks["big"] < 1.15 * peaks["small"] + (2 << 20), peaks  # with pre_buffer: 15 -> 23 MiB
