"""Fuzz target: compiled topology files, with both CRCs recomputed after mutation.

Without recomputing the CRCs the fuzzer would only ever test the CRC check; with them, every
mutated byte reaches the header parser and the C++ validator. Invariants: the bytes either load or
raise ``CompiledFileError``; a file that loads builds an engine (the loader and the engine run the
same validator, so neither may accept what the other refuses), has unique ids of every kind, and
every answer is UNAVAILABLE/INVALID or a (server, IP) pair its facts support (_invariants.py).
"""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import main
from _invariants import check_batch

import aegisfwd as af

PREFIX = struct.Struct("<8sIIQII")  # magic, version, header length, total length, header CRC, payload CRC


def with_crcs(data: bytes) -> bytes:
    """``data`` with its header and payload CRCs made to match (when the lengths allow it)."""
    if len(data) < PREFIX.size:
        return data
    magic, version, hlen, total, _, _ = PREFIX.unpack_from(data)
    header = data[PREFIX.size : PREFIX.size + hlen]
    start = (PREFIX.size + hlen + 63) // 64 * 64
    payload = data[start:total] if total <= len(data) else data[start:]
    return (
        PREFIX.pack(magic, version, hlen, total, zlib.crc32(header), zlib.crc32(payload))
        + data[PREFIX.size :]
    )


def test_one_input(data: bytes) -> None:
    data = with_crcs(data)
    try:
        c = af.CompiledTopology.from_bytes(data)
    except af.CompiledFileError:
        return
    try:
        engine = af.Engine(c)
    except af.CompiledFileError as exc:
        if "is not valid UTF-8" in str(exc):
            return  # ids are decoded lazily (docs/compiled-format.md): refused when first needed
        raise AssertionError(f"load_compiled accepted a file the engine refuses: {exc}") from None
    for kind in ("servers", "dcs", "locations", "pools", "ips", "zones"):
        try:
            ids = getattr(c, kind)
        except af.CompiledFileError:
            return  # a string table that is not UTF-8: refused when first decoded
        if len(set(ids)) != len(ids):
            raise AssertionError(f"a loaded file has duplicate {kind} ids")
    check_batch(c, engine)


if __name__ == "__main__":
    main(test_one_input)
