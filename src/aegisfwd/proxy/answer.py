"""The egress's one-line answer on the forwarding hop, after the PROXY header.

``OK <source address> <source port>\\n`` when it connected to the origin (the address it egressed
from), ``ERR <reason>\\n`` when it refused. The ingress reads the line with a bound (``MAX_ANSWER``)
and a timeout; this module turns it into an ``EgressAnswer`` or a ``BadAnswer`` (any line that is not
one of the two forms: the ingress refuses the client with ``bad-egress-answer``).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

MAX_ANSWER = 256  # bytes of the answer line; far above "OK <IPv6> <port>\n"
# A refusal reason is a code (journals, metric labels): bounded, of the characters codes use.
_REASON = re.compile(rb"[a-z0-9-]{1,64}")
_PORT = re.compile(rb"[0-9]{1,5}")


class BadAnswer(ValueError):
    """An answer line that is neither ``OK <address> <port>`` nor ``ERR <reason>``."""


@dataclass(frozen=True)
class EgressAnswer:
    src: str | None = None  # OK: the address the egress connected from
    port: int = 0
    reason: str | None = None  # ERR: the egress's refusal code


def ok(src: str, port: int) -> bytes:
    return f"OK {src} {port}\n".encode()


def err(reason: str) -> bytes:
    return f"ERR {reason}\n".encode()


def parse_answer(line: bytes) -> EgressAnswer:
    """Parse one answer line (with or without its ending newline)."""
    parts = line.rstrip(b"\r\n").split(b" ")
    if len(parts) == 3 and parts[0] == b"OK":
        try:
            src = ipaddress.ip_address(parts[1].decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise BadAnswer(f"OK answer with a source that is not an IP address: {line[:60]!r}") from None
        if not _PORT.fullmatch(parts[2]) or not 1 <= int(parts[2]) <= 65535:
            raise BadAnswer(f"OK answer with a port that is not in [1, 65535]: {line[:60]!r}")
        return EgressAnswer(src=str(src), port=int(parts[2]))
    if len(parts) == 2 and parts[0] == b"ERR" and _REASON.fullmatch(parts[1]):
        return EgressAnswer(reason=parts[1].decode("ascii"))
    raise BadAnswer(f"not 'OK <address> <port>' or 'ERR <reason>': {line[:60]!r}")
