"""Known answers of hashing scheme v1 (docs/hashing.md) and agreement of the three implementations.

The constants below were computed once from ``_hashing.py`` when scheme v1 was fixed. If one of these
tests fails, the scheme changed: every deployed compiled topology and every recorded decision would
silently move. Bump ``HASH_SCHEME_VERSION`` and say so in docs/hashing.md instead of editing them.
"""

from __future__ import annotations

import ipaddress

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import aegisfwd as af
from aegisfwd import _hashing as h

u64 = st.integers(0, 2**64 - 1)


def test_scheme_version() -> None:
    assert af.HASH_SCHEME_VERSION == h.HASH_SCHEME_VERSION == 1


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        (0, 0x0),
        (1, 0x5692161D100B05E5),
        # SplitMix64 seeded with 0 returns mix64(0x9E3779B97F4A7C15) first: the published
        # first output 0xE220A8397B1DCDAF checks the constants independently of this code.
        (0x9E3779B97F4A7C15, 0xE220A8397B1DCDAF),
        (2**64 - 1, 0xB4D055FCF2CBBD7B),
        (1234567890123456789, 0xC83574DDD6CE4A52),
    ],
)
def test_mix64_known_answers(x: int, expected: int) -> None:
    assert h.mix64(x) == expected


@pytest.mark.parametrize(
    ("server_id", "expected"),
    [
        ("lhr01-s001", 0x42E280447F4F27B4),
        ("ams01-s002", 0x76FE85FCD35E1344),
        ("a", 0xF6D49A0401212BBD),
        ("ü-server", 0x55282EBCBA2975F8),  # UTF-8 bytes of the id
    ],
)
def test_server_key_known_answers(server_id: str, expected: int) -> None:
    assert h.server_key(server_id) == expected


@pytest.mark.parametrize(
    ("entry", "canonical_hex", "expected"),
    [
        ("192.0.2.10", "04c000020a20", 0xCF4611F5DB4F1FE1),
        ("198.51.100.255", "04c63364ff20", 0x694D910077991921),
        ("2001:db8::1", "0620010db800000000000000000000000180", 0x2EBD3A02A8F9014E),
        ("2001:db8:a::/48", "0620010db8000a0000000000000000000030", 0xC584EC600CB9877E),
        ("::/0", "060000000000000000000000000000000000", 0x2EF6F8AA323F88BC),
    ],
)
def test_ip_key_known_answers(entry: str, canonical_hex: str, expected: int) -> None:
    network = ipaddress.ip_network(entry)
    assert h.canonical_ip_bytes(network).hex() == canonical_hex
    assert h.ip_key(network) == expected


def test_ip_key_depends_on_canonical_form_only() -> None:
    # Different spellings of one entry are one key; an address is not its /64.
    assert h.ip_key(ipaddress.ip_network("2001:DB8:0:0::1")) == h.ip_key(
        ipaddress.ip_network("2001:db8::1/128")
    )
    assert h.ip_key(ipaddress.ip_network("2001:db8::/64")) != h.ip_key(ipaddress.ip_network("2001:db8::"))


def test_flow_hashes_and_weight_known_answers() -> None:
    assert h.server_flow_hash(0) == 0xE220A8397B1DCDAF
    assert h.ip_flow_hash(0) == 0x68850AC74E2E5A26
    assert h.ingress_flow_hash(0) == 0xB39362CB946013E3
    assert h.weight(h.server_flow_hash(0x9E3779B97F4A7C15), h.server_key("lhr01-s001")) == 0x62F6280E80941415


def test_rendezvous_prefers_larger_weight_then_larger_key() -> None:
    flow_hash = h.server_flow_hash(7)
    keys = [h.server_key(f"s{i}") for i in range(10)]
    best = h.rendezvous(flow_hash, range(10), keys)
    assert best == max(range(10), key=lambda c: (h.weight(flow_hash, keys[c]), keys[c]))
    # Visiting order never matters.
    assert h.rendezvous(flow_hash, reversed(range(10)), keys) == best
    assert h.rendezvous(flow_hash, [], keys) == -1
    # Equal weights (equal keys here) go to the larger key: the first of two equal entries stays.
    assert h.rendezvous(flow_hash, [0, 1], [5, 5]) == 0


@given(st.lists(u64, min_size=1, max_size=50))
def test_compiled_mix64_agrees_with_python(values: list[int]) -> None:
    from aegisfwd import _core, _fast

    for x in values:
        assert _core.hashing.mix64(x) == h.mix64(x)
        assert _fast.mix64(x) == h.mix64(x)


def test_compiled_mix64_on_edge_values() -> None:
    from aegisfwd import _core, _fast

    rng = np.random.default_rng(1)
    values = [0, 1, 2**63, 2**64 - 1, *map(int, rng.integers(0, 2**64, 200, dtype=np.uint64))]
    assert [_core.hashing.mix64(x) for x in values] == [h.mix64(x) for x in values]
    assert [_fast.mix64(x) for x in values] == [h.mix64(x) for x in values]
    assert _core.hashing.HASH_SCHEME_VERSION == h.HASH_SCHEME_VERSION
