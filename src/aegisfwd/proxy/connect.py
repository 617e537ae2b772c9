"""Parsing the client's ``CONNECT zone:port HTTP/1.1`` request head, and the edge's replies.

The head is read with a bound (``MAX_HEAD``) and a timeout by the caller; this module only turns
bytes into a ``ConnectRequest`` or a ``ConnectError`` whose ``reason`` is the refusal code the edge
journals and counts (one code per way a request can be wrong).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_HEAD = 8192  # bytes of request line + headers; more is refused as head-too-large
MAX_HEADERS = 64

# RFC 9110 reg-name / zone names: letters, digits, '-', '.', '_' (what a topology's zone id can be
# and what a client can put in CONNECT without quoting); IPv6 literals are not zones.
_HOST = re.compile(rb"[A-Za-z0-9._-]{1,253}")
_VERSION = re.compile(rb"HTTP/1\.[01]")
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")


class ConnectError(ValueError):
    """A request the edge refuses before deciding anything; ``status`` is the HTTP reply code."""

    def __init__(self, reason: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class ConnectRequest:
    host: str
    port: int
    request_id: str | None = None  # an X-Request-Id header, journaled to tie logs together


def parse_connect(head: bytes) -> ConnectRequest:
    """Parse a request head (request line and headers, ending with an empty line)."""
    if not head.endswith(b"\r\n\r\n") and not head.endswith(b"\n\n"):
        raise ConnectError("bad-request", "request head does not end with an empty line")
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    request_line = lines[0]
    headers = [h for h in lines[1:] if h]
    if len(headers) > MAX_HEADERS:
        raise ConnectError("bad-request", f"more than {MAX_HEADERS} header lines", 431)
    request_id = None
    for h in headers:
        if b":" not in h or h[:1] in (b" ", b"\t"):
            raise ConnectError("bad-request", "malformed header line")
        name, _, value = h.partition(b":")
        if name.strip().lower() == b"x-request-id":
            v = value.strip()
            if not _REQUEST_ID.fullmatch(v):
                raise ConnectError("bad-request", "X-Request-Id must be 1-64 characters of [A-Za-z0-9._-]")
            request_id = v.decode("ascii")
    parts = request_line.split(b" ")
    if len(parts) != 3:
        raise ConnectError("bad-request", "request line is not 'METHOD target HTTP/1.x'")
    method, target, version = parts
    if not _VERSION.fullmatch(version):
        raise ConnectError("bad-request", "not an HTTP/1.0 or HTTP/1.1 request")
    if method != b"CONNECT":
        raise ConnectError("method-not-allowed", "only CONNECT is served", 405)
    host, sep, port_text = target.rpartition(b":")
    if not sep or not _HOST.fullmatch(host):
        raise ConnectError("bad-request", "CONNECT target is not 'zone:port'")
    if not port_text.isdigit() or len(port_text) > 5 or not 1 <= int(port_text) <= 65535:
        raise ConnectError("bad-request", "CONNECT port is not an integer in [1, 65535]")
    return ConnectRequest(host.decode("ascii").lower(), int(port_text), request_id)


_STATUS_TEXT = {
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"


def refusal(status: int, reason: str, detail: str = "") -> bytes:
    """The reply for a refused request: the reason code in a header and in the body."""
    body = f"{reason}: {detail}\n" if detail else f"{reason}\n"
    return (
        f"HTTP/1.1 {status} {_STATUS_TEXT.get(status, 'Error')}\r\n"
        f"X-Aegisfwd-Refusal: {reason}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}"
    ).encode("ascii", "replace")
