"""PROXY v2 and CONNECT parsing: round trips, every refusal code, and hostile bytes (hypothesis)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aegisfwd.proxy import proxyv2
from aegisfwd.proxy.connect import ConnectError, parse_connect


def _split(h: bytes) -> tuple[bytes, bytes]:
    return h[:16], h[16:]


@pytest.mark.parametrize(
    ("src", "dst"),
    [
        (("127.0.0.1", 40000), ("127.0.0.2", 80)),
        (("::1", 1), ("2001:db8::1", 65535)),
        (("127.0.0.1", 5), ("::1", 6)),
    ],
)
def test_round_trip(src: tuple[str, int], dst: tuple[str, int]) -> None:
    tlvs = {proxyv2.TLV_POOL: "shop", proxyv2.TLV_FLOW: 2**64 - 1, proxyv2.TLV_EGRESS_IP: "2001:db8:a::/48"}
    h = proxyv2.parse(*_split(proxyv2.encode(src, dst, tlvs)))
    assert (h.src, h.dst) == (src, dst)
    assert h.text(proxyv2.TLV_POOL) == "shop" and h.text(proxyv2.TLV_EGRESS_IP) == "2001:db8:a::/48"
    assert int.from_bytes(h.tlvs[proxyv2.TLV_FLOW], "big") == 2**64 - 1


def test_encode_refuses_non_application_tlvs() -> None:
    with pytest.raises(ValueError, match="0x1"):
        proxyv2.encode(("127.0.0.1", 1), ("127.0.0.1", 2), {0x01: "h2"})


def _with_body(body: bytes, fam: int = 0x11, ver: int = 0x21) -> bytes:
    return proxyv2.SIGNATURE + bytes([ver, fam]) + struct.pack("!H", len(body)) + body


ADDR4 = bytes(12)


def _parse_whole(data: bytes) -> proxyv2.ProxyHeader:
    """Parse a header as the edge reads it: the fixed 16 bytes, then the length they announce."""
    fixed = data[:16]
    n = proxyv2.parse_fixed(fixed)
    return proxyv2.parse(fixed, data[16 : 16 + n])


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"PROXY TCP4 1.1.1.1 2.2.2.2 1 2\r\n", "bad-proxy-signature"),
        (_with_body(ADDR4, ver=0x11), "bad-proxy-version"),
        (_with_body(ADDR4, ver=0x20), "bad-proxy-command"),
        (_with_body(ADDR4, fam=0x31), "bad-proxy-family"),
        (_with_body(ADDR4[:6]), "truncated-proxy-header"),
        (_with_body(ADDR4 + b"\xe0\x00"), "truncated-tlv"),
        (_with_body(ADDR4 + b"\xe0\x00\x09abc"), "truncated-tlv"),
        (_with_body(ADDR4 + b"\xe0\x00\x01a\xe0\x00\x01b"), "duplicate-tlv"),
        (_with_body(ADDR4 + b"\xe0\x00\x02\xff\xfe"), "bad-tlv"),
        (_with_body(ADDR4 + b"\xe4\x00\x03abc"), "bad-tlv"),
        (proxyv2.SIGNATURE + b"\x21\x11" + struct.pack("!H", 5000), "proxy-header-too-long"),
    ],
)
def test_each_malformation_has_its_reason(data: bytes, reason: str) -> None:
    with pytest.raises(proxyv2.ProxyHeaderError) as info:
        _parse_whole(data)
    assert info.value.reason == reason


def test_noop_and_standard_tlvs_are_skipped() -> None:
    h = proxyv2.parse(*_split(_with_body(ADDR4 + b"\xee\x00\x02xx\x01\x00\x02h2\xe0\x00\x01p")))
    assert h.tlvs == {proxyv2.TLV_POOL: b"p"}


@given(st.binary(max_size=200))
def test_hostile_bytes_never_crash_the_parser(junk: bytes) -> None:
    for data in (junk, proxyv2.SIGNATURE + junk, _with_body(ADDR4 + junk), _with_body(junk[:40], fam=0x21)):
        fixed = data[:16]
        try:
            n = proxyv2.parse_fixed(fixed)
            proxyv2.parse(fixed, data[16 : 16 + n])
        except proxyv2.ProxyHeaderError as exc:
            assert exc.reason  # noqa: PT017 - any input: either parses or fails with a reason


def test_connect_parses_zone_port_and_request_id() -> None:
    r = parse_connect(b"CONNECT Shop.Example:443 HTTP/1.1\r\nHost: x\r\nX-Request-Id: c-1.2\r\n\r\n")
    assert (r.host, r.port, r.request_id) == ("shop.example", 443, "c-1.2")


@given(st.binary(max_size=300))
def test_hostile_heads_are_refused_with_a_reason(junk: bytes) -> None:
    for head in (
        junk + b"\r\n\r\n",
        b"CONNECT " + junk + b" HTTP/1.1\r\n\r\n",
        b"CONNECT a:1 HTTP/1.1\r\n" + junk + b"\r\n\r\n",
    ):
        try:
            r = parse_connect(head)
        except ConnectError as exc:
            assert exc.reason in ("bad-request", "method-not-allowed") and 400 <= exc.status < 500  # noqa: PT017
        else:
            assert 1 <= r.port <= 65535 and r.host
