"""A test origin: the customer's server behind a firewall that admits only its dedicated IPs.

Accepts a connection only when the peer address is inside one of the allowed networks; otherwise
resets it at once. Echoes what an admitted peer sends (an HTTP request gets an HTTP answer whose
body is the request and the address it came from, so ``curl`` through the proxy shows the egress). Logs every peer, admitted or refused, as
one JSON line (flushed as written): this log is the ground truth the proxy tests check against.
Each admitted peer gets a record at once, and a second one (``"event": "tag"``) with the first line
it sends (up to 256 bytes, empty when it sent none), so a test client can name each connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import time
from collections.abc import Sequence
from typing import Any

from .config import format_hostport, parse_hostport
from .journal import Journal
from .lifetime import until_parent_exits

_TAG_MAX = 256
_HTTP_REQUEST = re.compile(rb"[A-Z]{3,10} \S+ HTTP/1\.[01]\r?\n")


class Origin:
    def __init__(
        self, listen: Sequence[str], allow: Sequence[str], log: str | None, idle: float = 30.0
    ) -> None:
        self.listen = [parse_hostport(a) for a in listen]
        self.allow = [ipaddress.ip_network(a, strict=True) for a in allow]
        self.log = Journal(log)
        self.idle = idle
        self.accepted = 0
        self.refused = 0
        self._servers: list[asyncio.Server] = []

    def allowed(self, addr: str) -> bool:
        ip = ipaddress.ip_address(addr)
        return any(ip.version == n.version and ip in n for n in self.allow)

    async def start(self) -> list[tuple[str, int]]:
        for host, port in self.listen:
            self._servers.append(
                await asyncio.start_server(self._handle, host, port, backlog=1024, limit=_TAG_MAX)
            )
        return [tuple(s.sockets[0].getsockname()[:2]) for s in self._servers]

    async def stop(self) -> None:
        for s in self._servers:
            s.close()
        self.log.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        local = writer.get_extra_info("sockname")
        if peer is None:  # reset while it waited in the accept queue: nothing to admit or echo
            self.log.write(
                {
                    "t": time.time(),
                    "peer": None,
                    "port": None,
                    "accepted": False,
                    "reason": "reset",
                    "origin": format_hostport((local[0], local[1])) if local else None,
                }
            )
            writer.transport.abort()
            return
        rec: dict[str, Any] = {
            "t": time.time(),
            "peer": peer[0],
            "port": peer[1],
            "origin": format_hostport((local[0], local[1])),
        }
        if not self.allowed(peer[0]):
            self.refused += 1
            rec["accepted"] = False
            self.log.write(rec)
            writer.transport.abort()
            return
        self.accepted += 1
        rec["accepted"] = True
        self.log.write(rec)  # at once: the log is complete whatever the peer does next
        rec = {"t": time.time(), "peer": peer[0], "port": peer[1], "origin": rec["origin"], "event": "tag"}
        try:
            try:
                first = await asyncio.wait_for(reader.readuntil(b"\n"), self.idle)
            except asyncio.IncompleteReadError as exc:
                first = exc.partial
            except asyncio.LimitOverrunError:
                first = await reader.read(_TAG_MAX)
            rec["tag"] = first.decode("utf-8", "replace").strip()
            self.log.write(rec)
            rec = {}
            if _HTTP_REQUEST.match(first):
                await self._http(reader, writer, first, peer)
                return
            writer.write(first)
            while True:
                data = await asyncio.wait_for(reader.read(1 << 16), self.idle)
                if not data:
                    break
                writer.write(data)
                await asyncio.wait_for(writer.drain(), self.idle)
            writer.close()
        except (OSError, asyncio.TimeoutError):
            writer.transport.abort()
        finally:
            if rec:
                rec.setdefault("tag", None)
                self.log.write(rec)

    async def _http(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, first: bytes, peer: tuple[str, int]
    ) -> None:
        """An HTTP client (curl through the proxy): answer its request with a page that says who
        connected, then close."""
        head = first
        while len(head) < 8192:
            line = await asyncio.wait_for(reader.readline(), self.idle)
            head += line
            if line in (b"\r\n", b"\n", b""):
                break
        body = head + f"\nseen from {format_hostport(peer)}\n".encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await asyncio.wait_for(writer.drain(), self.idle)
        writer.close()


def run_origin(listen: Sequence[str], allow: Sequence[str], log: str | None) -> None:
    from .edge import _use_uvloop

    _use_uvloop()
    origin = Origin(listen, allow, log)

    async def main() -> None:
        addrs = await origin.start()
        print(
            "origin listening on "
            + ", ".join(format_hostport(a) for a in addrs)
            + "; allow "
            + ", ".join(str(n) for n in origin.allow),
            flush=True,
        )
        try:
            await until_parent_exits()
        finally:
            await origin.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
