"""The flow key of one connection (docs/evaluate.md "Flow key"), free of pyarrow.

The log evaluation (``evaluation._arrow``) hashes whole columns; a proxy deciding per connection
needs the same key for one client address and port without importing the analysis stack, so the
constants and the one-row definition live here and ``evaluation._arrow`` re-exports them.
"""

from __future__ import annotations

# mix64: the compiled SplitMix64 finalizer, equal to _hashing.mix64, ~5x faster per call.
# client_flow_key: the compiled key of one connection (aegisfwd/flow_key.hpp), equal to
# ``flow_key_py(client_ip, client_port, None)``; what a proxy calls per connection.
from ._fast import client_flow_key, mix64

__all__ = [
    "PORT_SALT",
    "RAY_SALT",
    "STRING_SEED",
    "client_flow_key",
    "flow_key_py",
    "mix64",
    "string_hash_py",
]

# Part of what makes results reproducible: changing one changes every ingress and egress choice.
STRING_SEED = 0x8EBC6AF09C88C6E3
PORT_SALT = 0xA0761D6478BD642F
RAY_SALT = 0xE7037ED1A0B428DB


def string_hash_py(b: bytes) -> int:
    """Plain-Python ``string_hash`` (the definition ``hash_strings`` is tested against)."""
    h = mix64(len(b) ^ STRING_SEED)
    for k in range(0, len(b), 8):
        h = mix64(h ^ int.from_bytes(b[k : k + 8].ljust(8, b"\0"), "little"))
    return h


def flow_key_py(client_ip: str | None, client_port: int | None, ray_id: str | None) -> int | None:
    """Plain-Python flow key of one row (``None`` when the row has none)."""
    if client_ip and client_port is not None and 0 <= client_port <= 65535:
        return mix64(string_hash_py(client_ip.encode("utf-8")) ^ mix64(client_port ^ PORT_SALT))
    if ray_id:
        return mix64(string_hash_py(ray_id.encode("utf-8")) ^ RAY_SALT)
    return None
