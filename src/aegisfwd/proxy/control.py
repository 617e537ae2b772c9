"""The control endpoint (HTTP on loopback) and its client (``aegisfwd proxy ctl``).

Routes (served by ``proxy up``):

* ``POST /state`` ``{"target": ID, "state": "up|draining|down"}``: one change on every process;
  answers the epoch and how long until every process applied it.
* ``GET /status``: processes, epoch, the configured servers' states.
* ``GET /stats[?reset=1]``: each process's decision+bind cost percentiles (exact, from its samples).
* ``POST /mode`` ``{"fixed_source": ADDR|null}``: benchmark switch (connect from one fixed address,
  no decision) on every process.
* ``GET /metrics``: Prometheus exposition merged over all processes.

A small hand-written HTTP/1.1 server: one request per connection, head and body bounded, a timeout
on every read -- the endpoint only ever serves a CLI and a Prometheus scraper on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import re
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..errors import AegisError

MAX_BODY = 1 << 16
Handler = Callable[[str, dict[str, str], bytes], Awaitable[tuple[int, str, bytes]]]


class ControlError(AegisError):
    """The control endpoint could not be reached or refused the request."""


class HttpServer:
    def __init__(self, handler: Handler, timeout: float = 5.0) -> None:
        self.handler = handler
        self.timeout = timeout
        self.server: asyncio.AbstractServer | None = None

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self.server = await asyncio.start_server(self._serve, host, port, limit=8192)
        a = self.server.sockets[0].getsockname()
        return a[0], a[1]

    def close(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.timeout)
            req = parse_head(head)
            n = req.content_length
            body = await asyncio.wait_for(reader.readexactly(n), self.timeout) if n else b""
            status, ctype, payload = await self.handler(req.route, req.query, body)
        except (
            ValueError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            asyncio.TimeoutError,
            OSError,
        ):
            status, ctype, payload = 400, "application/json", b'{"error": "bad request"}'
        except Exception as exc:  # noqa: BLE001 - a handler bug answers 500, the endpoint keeps serving
            status, ctype, payload = 500, "application/json", json.dumps({"error": str(exc)}).encode()
        with contextlib.suppress(Exception):
            writer.write(
                f"HTTP/1.1 {status} {'OK' if status < 400 else 'Error'}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                + payload
            )
            await asyncio.wait_for(writer.drain(), self.timeout)
        writer.close()


@dataclass(frozen=True)
class ControlRequest:
    route: str  # "METHOD /path"
    query: dict[str, str]
    content_length: int


_METHOD = re.compile(r"[A-Z]{1,16}")
_TARGET = re.compile(r"/[\x21-\x7e]{0,1023}")
_LENGTH = re.compile(r"[0-9]{1,9}")


def parse_head(head: bytes) -> ControlRequest:
    """A request head (request line and headers, ending with an empty line); ``ValueError`` (a 400)
    for anything else. Strict where ``int()`` and ``str.split`` would be lenient: a Content-Length is
    digits only (not ``+1``, ``1_0`` or ``٣``), the request line has exactly three parts."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not _METHOD.fullmatch(parts[0]) or not _TARGET.fullmatch(parts[1]):
        raise ValueError("request line is not 'METHOD /path HTTP/1.x'")
    if parts[2] not in ("HTTP/1.0", "HTTP/1.1"):
        raise ValueError("not an HTTP/1.0 or HTTP/1.1 request")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
    length = headers.get("content-length", "0")
    if not _LENGTH.fullmatch(length) or int(length) > MAX_BODY:
        raise ValueError(f"Content-Length must be an integer in [0, {MAX_BODY}]")
    path, _, query = parts[1].partition("?")
    return ControlRequest(f"{parts[0]} {path}", _query(query), int(length))


def _query(q: str) -> dict[str, str]:
    out = {}
    for part in q.split("&"):
        if part:
            k, _, v = part.partition("=")
            out[k] = v
    return out


def json_object(body: bytes) -> dict[str, Any]:
    """A request body that must be a JSON object (an empty body is ``{}``); ``ValueError`` else."""
    try:
        req = json.loads(body or b"{}")
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise ValueError("body is not JSON") from None
    if not isinstance(req, dict):
        raise ValueError("body must be a JSON object")  # noqa: TRY004 - answered as a 400
    return req


def state_request(body: bytes) -> tuple[str, str]:
    """``POST /state``: ``(target, state)``, both text (the supervisor checks that the state is a
    state and the target an id, naming what is wrong)."""
    req = json_object(body)
    target, state = req.get("target"), req.get("state")
    if not isinstance(target, str) or not isinstance(state, str):
        raise ValueError('body must be {"target": ID, "state": "up|draining|down"}')  # noqa: TRY004 - a 400
    return target, state


def mode_request(body: bytes) -> str | None:
    """``POST /mode``: the fixed source address (an IP address, canonical text), or ``None`` to
    decide again. Checked here, once: every edge process binds to it for every connection."""
    fixed = json_object(body).get("fixed_source")
    if fixed is None:
        return None
    message = 'body must be {"fixed_source": IP address or null}'
    if not isinstance(fixed, str):
        raise ValueError(message)  # noqa: TRY004 - answered as a 400
    try:
        return str(ipaddress.ip_address(fixed))
    except ValueError:
        raise ValueError(message) from None


def json_reply(status: int, obj: Any) -> tuple[int, str, bytes]:
    return status, "application/json", json.dumps(obj).encode()


# ---- client -------------------------------------------------------------------------------------
def request(control: str, method: str, path: str, body: Any = None, timeout: float = 10.0) -> Any:
    """Call the control endpoint ``control`` (``HOST:PORT``); the decoded JSON answer (or text for
    ``/metrics``). Raises ``ControlError`` with the endpoint's own error message."""
    data = None if body is None else json.dumps(body).encode()
    url = f"http://{control}{path}"
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            ctype = resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        try:
            msg = json.loads(exc.read()).get("error", str(exc))
        except ValueError:
            msg = str(exc)
        raise ControlError(f"control endpoint {control}: {msg}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ControlError(f"control endpoint {control} unreachable: {reason}") from None
    return json.loads(raw) if ctype.startswith("application/json") else raw.decode()
