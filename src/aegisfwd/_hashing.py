"""The consistent-hashing scheme, version 1 (``docs/hashing.md``), in plain Python.

This module is the readable definition; the C++ core (``cpp/include/aegisfwd/hashing.hpp``)
implements the same functions and ``tests/test_hashing.py`` pins known answers for both.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable

HASH_SCHEME_VERSION = 1

MASK64 = (1 << 64) - 1
SERVER_FLOW_SALT = 0x9E3779B97F4A7C15
IP_FLOW_SALT = 0xC2B2AE3D27D4EB4F
INGRESS_FLOW_SALT = 0x165667B19E3779F9

_SERVER_KEY_PREFIX = b"aegisfwd/v1/server\x00"
_IP_KEY_PREFIX = b"aegisfwd/v1/ip\x00"

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def mix64(x: int) -> int:
    """SplitMix64 finalizer: a 64-bit bijection with full avalanche."""
    x &= MASK64
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & MASK64
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & MASK64
    x ^= x >> 31
    return x


def _blake2b_64(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


def server_key(server_id: str) -> int:
    """Stable 64-bit key of a server, derived from its id only."""
    return _blake2b_64(_SERVER_KEY_PREFIX + server_id.encode("utf-8"))


def canonical_ip_bytes(network: IPNetwork) -> bytes:
    """Canonical byte form of an Aegis IP entry: version, packed address, prefix length."""
    return bytes([network.version]) + network.network_address.packed + bytes([network.prefixlen])


def ip_key(network: IPNetwork) -> int:
    """Stable 64-bit key of an Aegis IP entry (an address is a /32 or /128 network)."""
    return _blake2b_64(_IP_KEY_PREFIX + canonical_ip_bytes(network))


def server_flow_hash(flow: int) -> int:
    return mix64((flow & MASK64) ^ SERVER_FLOW_SALT)


def ip_flow_hash(flow: int) -> int:
    return mix64((flow & MASK64) ^ IP_FLOW_SALT)


def ingress_flow_hash(flow: int) -> int:
    return mix64((flow & MASK64) ^ INGRESS_FLOW_SALT)


def weight(flow_hash: int, key: int) -> int:
    return mix64(flow_hash ^ key)


def rendezvous(flow_hash: int, candidates: Iterable[int], keys: list[int] | object) -> int:
    """Return the candidate (an index into ``keys``) with the largest ``(weight, key)``.

    ``keys[c]`` is the stable key of candidate ``c``. Returns -1 when there is no candidate.
    """
    best = -1
    best_rank = (-1, -1)
    for c in candidates:
        k = int(keys[c])  # type: ignore[index]
        rank = (weight(flow_hash, k), k)
        if rank > best_rank:
            best, best_rank = c, rank
    return best
