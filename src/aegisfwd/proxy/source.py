"""Egress sockets bound to a chosen source address, and the reason code of a failed connect.

``IP_BIND_ADDRESS_NO_PORT`` lets many connections share one source address: ``bind()`` takes the
address only and the port is picked at ``connect()`` for the 4-tuple, so the limit is per
(source IP, destination IP:port), as the documented 40,000 per egress IP per origin is.
``IP_LOCAL_PORT_RANGE`` (Linux >= 6.3) narrows the ports one socket may take: a proxy gives each
server a slice, and a test makes exhaustion happen with a handful of connections.
"""

from __future__ import annotations

import errno
import socket
import struct

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
IP_LOCAL_PORT_RANGE = 51  # <linux/in.h>; Python 3.11's socket module does not export it


def source_socket(address: str, port_range: tuple[int, int] | None = None) -> socket.socket:
    """A non-blocking TCP socket bound to ``address`` (port chosen at connect)."""
    fam = socket.AF_INET6 if ":" in address else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    try:
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        if port_range is not None:
            # One option for both families (it lives at the IPPROTO_IP level on Linux for v4 and v6).
            s.setsockopt(
                socket.IPPROTO_IP,
                IP_LOCAL_PORT_RANGE,
                struct.pack("I", (port_range[1] << 16) | port_range[0]),
            )
        s.bind((address, 0))
    except BaseException:
        s.close()
        raise
    return s


def plain_socket(family: int) -> socket.socket:
    s = socket.socket(socket.AF_INET6 if family == 6 else socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    return s


def port_range_supported() -> bool:
    try:
        with socket.socket() as s:
            s.setsockopt(socket.IPPROTO_IP, IP_LOCAL_PORT_RANGE, struct.pack("I", (40001 << 16) | 40000))
    except OSError:
        return False
    return True


def connect_failure_reason(exc: BaseException, what: str) -> str:
    """Refusal code for a failed connect to ``what`` ("origin" or "egress")."""
    if isinstance(exc, OSError) and exc.errno == errno.EADDRNOTAVAIL:
        return "source-ports-exhausted"
    if isinstance(exc, TimeoutError):
        return f"{what}-timeout"
    return f"{what}-unreachable"
