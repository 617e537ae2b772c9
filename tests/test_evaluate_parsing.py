"""Vectorised parsing pinned against plain Python: ingress rendezvous, flow keys, IP families,
timestamps, numbers; and memory staying bounded on a log much larger than one batch."""

from __future__ import annotations

import gzip
import ipaddress
import json
import tracemalloc
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

import aegisfwd as af
from aegisfwd._ingress import choose_ingress, choose_ingress_py
from aegisfwd.evaluation import _arrow as ar

U64 = st.integers(min_value=0, max_value=2**64 - 1)


# ---------------------------------------------------------------------------------------------
# choose_ingress: numpy vs a plain loop
# ---------------------------------------------------------------------------------------------
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
    got = choose_ingress(
        np.array(first, np.int32), np.array(end, np.int32), np.array(flows, np.uint64),
        np.array(keys, np.uint64), np.array(states, np.uint8),
    )
    assert got.dtype == np.int32
    assert got.tolist() == choose_ingress_py(first, end, flows, keys, states)


def test_choose_ingress_tie_on_weight_takes_larger_key():
    # Distinct keys never tie (mix64 is a bijection); duplicate keys do: the larger key among the
    # tied wins and, between equal keys, the lower index, exactly as the Python definition.
    keys = np.array([5, 9, 9, 3], np.uint64)
    first = np.zeros(50, np.int32)
    end = np.full(50, 4, np.int32)
    flows = np.arange(50, dtype=np.uint64)
    states = np.zeros(4, np.uint8)
    assert choose_ingress(first, end, flows, keys, states).tolist() == choose_ingress_py(first, end, flows, keys, states)


def test_choose_ingress_large_group_chunks():
    rng = np.random.default_rng(1)
    keys = rng.integers(0, 2**64 - 1, 700, dtype=np.uint64)
    states = (rng.random(700) < 0.2).astype(np.uint8)
    n = 600
    first = np.full(n, 10, np.int32)
    end = np.full(n, 690, np.int32)
    flows = rng.integers(0, 2**64 - 1, n, dtype=np.uint64)
    assert choose_ingress(first, end, flows, keys, states).tolist() == choose_ingress_py(first, end, flows, keys, states)


def test_choose_ingress_rejects_bad_ranges():
    with pytest.raises(ValueError):
        choose_ingress(np.array([0], np.int32), np.array([5], np.int32), np.array([1], np.uint64),
                       np.zeros(3, np.uint64), np.zeros(3, np.uint8))


# ---------------------------------------------------------------------------------------------
# Flow keys
# ---------------------------------------------------------------------------------------------
@given(st.lists(st.one_of(st.none(), st.text(max_size=70)), max_size=30))
def test_hash_strings_matches_python(values):
    h, ok = ar.hash_strings(pa.array(values, pa.string()), len(values))
    for v, hv, okv in zip(values, h.tolist(), ok.tolist()):
        assert okv == bool(v)
        if v:
            assert hv == ar.string_hash_py(v.encode("utf-8"))


def test_hash_strings_long_values_and_slices():
    values = ["x" * 1000, "short", "", None, "é" * 300]
    arr = pa.array(["pad"] + values, pa.large_string()).slice(1)
    h, ok = ar.hash_strings(arr, len(values))
    assert ok.tolist() == [True, True, False, False, True]
    assert h[0] == ar.string_hash_py(values[0].encode())
    assert h[4] == ar.string_hash_py(values[4].encode())


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
    for (ip, port, ray), f, o in zip(rows, flows.tolist(), ok.tolist()):
        want = ar.flow_key_py(ip, port, ray)
        assert o == (want is not None)
        if want is not None:
            assert f == want


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


@given(st.lists(st.one_of(st.none(), st.ip_addresses().map(str), st.ip_addresses().map(lambda a: a.exploded),
                          st.text(alphabet="0123456789abcdef:.", max_size=45), st.text(max_size=10))))
def test_ip_family_matches_ipaddress(values):
    got = ar.ip_family_of_strings(pa.array(values, pa.string())).tolist()
    assert got == [_py_family(v) for v in values]


@pytest.mark.parametrize(
    "value, family",
    [("192.0.2.1", 4), ("::1", 6), ("2001:db8::1", 6), ("::ffff:192.0.2.1", 6), ("1:2:3:4:5:6:7::", 6),
     ("", 0), ("   ", 0), ("garbage", 0), ("01.2.3.4", 0), ("256.0.0.1", 0), ("1.2.3", 0), ("1::2::3", 0),
     ("fe80::1%eth0", 0), ("192.0.2.0/24", 0), ("[2001:db8::1]", 0), (" 192.0.2.1 ", 4)],
)
def test_ip_family_examples(value, family):
    assert ar.ip_family_of_strings(pa.array([value])).tolist() == [family]


# ---------------------------------------------------------------------------------------------
# Timestamps, durations, numbers
# ---------------------------------------------------------------------------------------------
NS = 1_700_000_000_123_456_789


@pytest.mark.parametrize(
    "value, want",
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


def test_numbers_from_any_type():
    ints, _, _, valid = ar.to_number(pa.array(["12", " 13 ", "1e3", "x", None, "", "-4"]))
    assert valid.tolist() == [True, True, True, False, False, False, True]
    assert ints[[0, 1, 2, 6]].tolist() == [12, 13, 1000, -4]
    assert to_list(ar.to_port(pa.array(["80", "443", "70000", "-1", None, "x"]), 6)) == (
        [80, 443, 0, 0, 0, 0], [True, True, False, False, False, False])


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
            f.write(json.dumps({
                "RayID": f"{i:016x}", "EdgeColoCode": colos[i % 4], "ZoneName": zones[(i // 4) % 4],
                "OriginIP": f"203.0.113.{i % 200}", "ClientIP": f"198.51.{i % 250}.{i % 199}",
                "ClientSrcPort": 1024 + i % 60000, "EdgeStartTimestamp": 1_700_000_000_000_000_000 + i * 1_000_000,
                "OriginResponseDurationMs": i % 50,
                "RequestHeaders": {"x-pad": "y" * 40},
            }) + "\n")


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
            ev = af.evaluate(path, model, batch_rows=2000, keep_rows=0, progress=False, output=tmp_path / f"{name}.parquet")
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            peaks[name] = peak
            assert ev.summary.rows_in == ev.summary.rows_decided + ev.summary.rows_rejected
    finally:
        _read.NDJSON_BLOCK_BYTES = old
    raw_big = 60_000 * 330  # bytes of uncompressed NDJSON in the big log
    assert peaks["big"] < raw_big / 2, peaks
    assert peaks["big"] < 1.6 * peaks["small"] + (2 << 20), peaks


@given(st.lists(st.one_of(st.none(), st.text(alphabet="0123456789abcdef.:-", max_size=60)), min_size=1, max_size=40))
def test_hash_strings_ascii_fast_path_matches_python(values):
    """ASCII columns take the NUL-padded matrix path; it must equal the byte-wise definition."""
    h, ok = ar.hash_strings(pa.array(values, pa.string()), len(values))
    for v, hv, okv in zip(values, h.tolist(), ok.tolist()):
        assert okv == bool(v)
        if v:
            assert hv == ar.string_hash_py(v.encode("ascii"))
