"""PROXY protocol version 2 (HAProxy's doc/proxy-protocol.txt) with application TLVs.

The forwarding hop between edge servers starts with a v2 header: the client's address and port,
and application TLVs (types 0xE0-0xEF are reserved for applications) carrying what the ingress
decided. The receiver bounds the header (``MAX_LENGTH``), refuses other versions and commands, and
refuses TLVs that are truncated, repeated, out of the application range or not valid UTF-8, each
with its own reason code.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
_FIXED = struct.Struct("!12sBBH")
HEADER_FIXED = _FIXED.size  # 16
MAX_LENGTH = 1024  # bytes after the fixed part; far above what the hop sends

# Application TLVs of the forwarding hop.
TLV_POOL = 0xE0  # pool id (UTF-8)
TLV_ORIGIN = 0xE1  # origin "host:port" (UTF-8)
TLV_EGRESS_IP = 0xE2  # the dedicated IP the ingress chose (canonical text)
TLV_INGRESS = 0xE3  # ingress server id (UTF-8)
TLV_FLOW = 0xE4  # flow key, 8 bytes big-endian
TLV_CONN_ID = 0xE5  # the ingress's connection id (UTF-8), for journals
TLV_NOOP = 0xEE  # HAProxy: "NOOP", ignored
_TLV_TEXT = {TLV_POOL, TLV_ORIGIN, TLV_EGRESS_IP, TLV_INGRESS, TLV_CONN_ID}


class ProxyHeaderError(ValueError):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ProxyHeader:
    family: int  # 4 or 6
    src: tuple[str, int]
    dst: tuple[str, int]
    tlvs: dict[int, bytes] = field(default_factory=dict)

    def text(self, kind: int) -> str | None:
        v = self.tlvs.get(kind)
        return None if v is None else v.decode("utf-8")


def encode(src: tuple[str, int], dst: tuple[str, int], tlvs: dict[int, bytes | str | int]) -> bytes:
    """A PROXY v2 header (command PROXY, TCP over IPv4 or IPv6) with the given TLVs."""
    s, d = ipaddress.ip_address(src[0]), ipaddress.ip_address(dst[0])
    if s.version != d.version:
        # The client and the edge listener differ in family: carry both as IPv6 (mapped IPv4).
        s = s if s.version == 6 else ipaddress.IPv6Address(f"::ffff:{s}")
        d = d if d.version == 6 else ipaddress.IPv6Address(f"::ffff:{d}")
    fam = 0x11 if s.version == 4 else 0x21
    addr = s.packed + d.packed + struct.pack("!HH", src[1], dst[1])
    body = bytearray(addr)
    for kind, value in tlvs.items():
        if not 0xE0 <= kind <= 0xEF:
            raise ValueError(f"TLV type {kind:#x} is outside the application range 0xE0-0xEF")
        raw = (
            value.to_bytes(8, "big")
            if isinstance(value, int)
            else (value.encode("utf-8") if isinstance(value, str) else bytes(value))
        )
        body += struct.pack("!BH", kind, len(raw)) + raw
    if len(body) > MAX_LENGTH:
        raise ValueError(f"PROXY header body of {len(body)} bytes exceeds {MAX_LENGTH}")
    return _FIXED.pack(SIGNATURE, 0x21, fam, len(body)) + bytes(body)


def parse_fixed(fixed: bytes) -> int:
    """Check the 16-byte fixed part; return the length of what follows."""
    if len(fixed) != HEADER_FIXED:
        raise ProxyHeaderError("truncated-proxy-header", "PROXY header shorter than 16 bytes")
    sig, ver_cmd, _fam, length = _FIXED.unpack(fixed)
    if sig != SIGNATURE:
        raise ProxyHeaderError("bad-proxy-signature", "not a PROXY protocol v2 header")
    if ver_cmd >> 4 != 2:
        raise ProxyHeaderError("bad-proxy-version", f"PROXY protocol version {ver_cmd >> 4}, expected 2")
    if ver_cmd & 0xF != 1:
        raise ProxyHeaderError("bad-proxy-command", "PROXY command is not PROXY (LOCAL is not forwarded)")
    if length > MAX_LENGTH:
        raise ProxyHeaderError(
            "proxy-header-too-long", f"PROXY header body of {length} bytes exceeds {MAX_LENGTH}"
        )
    return int(length)


def parse(fixed: bytes, body: bytes) -> ProxyHeader:
    """Parse a header: its 16-byte fixed part and the ``parse_fixed(fixed)`` bytes after it."""
    length = parse_fixed(fixed)
    if len(body) != length:
        raise ProxyHeaderError(
            "truncated-proxy-header", f"PROXY header body has {len(body)} of {length} bytes"
        )
    fam = fixed[13]
    if fam == 0x11:
        n, size = 4, 12
    elif fam == 0x21:
        n, size = 16, 36
    else:
        raise ProxyHeaderError("bad-proxy-family", f"PROXY address family {fam:#x} is not TCP over IPv4/IPv6")
    if length < size:
        raise ProxyHeaderError("truncated-proxy-header", "PROXY header too short for its addresses")
    src = ipaddress.ip_address(body[:n])
    dst = ipaddress.ip_address(body[n : 2 * n])
    sport, dport = struct.unpack_from("!HH", body, 2 * n)
    tlvs: dict[int, bytes] = {}
    i = size
    while i < length:
        if length - i < 3:
            raise ProxyHeaderError("truncated-tlv", f"TLV header at byte {i} cut short")
        kind, tlen = struct.unpack_from("!BH", body, i)
        i += 3
        if tlen > length - i:
            raise ProxyHeaderError("truncated-tlv", f"TLV {kind:#x} claims {tlen} bytes, {length - i} left")
        value = body[i : i + tlen]
        i += tlen
        if kind == TLV_NOOP or not 0xE0 <= kind <= 0xEF:
            continue  # NOOP and the standard TLVs (ALPN, CRC32C, ...) carry nothing we use
        if kind in tlvs:
            raise ProxyHeaderError("duplicate-tlv", f"TLV {kind:#x} appears twice")
        if kind in _TLV_TEXT:
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                raise ProxyHeaderError("bad-tlv", f"TLV {kind:#x} is not UTF-8 text") from None
        if kind == TLV_FLOW and tlen != 8:
            raise ProxyHeaderError("bad-tlv", f"flow TLV has {tlen} bytes, expected 8")
        tlvs[kind] = value
    unmap = lambda a: str(a.ipv4_mapped) if getattr(a, "ipv4_mapped", None) else str(a)
    return ProxyHeader(4 if n == 4 else 6, (unmap(src), sport), (unmap(dst), dport), tlvs)
