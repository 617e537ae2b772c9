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
import json
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
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
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {
                k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)
            }
            n = int(headers.get("content-length", "0"))
            if not 0 <= n <= MAX_BODY:
                raise ValueError("body too large")
            body = await asyncio.wait_for(reader.readexactly(n), self.timeout) if n else b""
            path, _, query = target.partition("?")
            status, ctype, payload = await self.handler(method + " " + path, _query(query), body)
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


def _query(q: str) -> dict[str, str]:
    out = {}
    for part in q.split("&"):
        if part:
            k, _, v = part.partition("=")
            out[k] = v
    return out


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
