"""A client load: many ``CONNECT`` tunnels through edge listeners, each named by a tag line.

Each connection sends ``CONNECT zone:port``, and when the edge answers 200 sends one tag line and
expects it echoed by the origin; it records the outcome (``completed``, ``refused`` with the
edge's reason header, ``broken`` when the tunnel died, ``error`` when the edge was unreachable)
with its own local address and port -- the flow key the edge must have used.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ClientResult:
    tag: str
    edge: str
    zone: str
    outcome: str = "error"
    status: int = 0
    reason: str = ""
    local: tuple[str, int] = ("", 0)
    t0: float = 0.0
    t1: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


async def one_connection(
    edge: tuple[str, int], zone: str, port: int, tag: str, *, timeout: float = 10.0, hold: float = 0.0
) -> ClientResult:
    res = ClientResult(tag, f"{edge[0]}:{edge[1]}", zone, t0=time.time())
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*edge), timeout)
        sn = writer.get_extra_info("sockname")
        res.local = (sn[0], sn[1])
        writer.write(
            f"CONNECT {zone}:{port} HTTP/1.1\r\nHost: {zone}:{port}\r\nX-Request-Id: {tag}\r\n\r\n".encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        first, *hdrs = head.decode("latin-1").split("\r\n")
        res.status = int(first.split(" ")[1])
        if res.status != 200:
            res.outcome = "refused"
            for h in hdrs:
                if h.lower().startswith("x-aegisfwd-refusal:"):
                    res.reason = h.split(":", 1)[1].strip()
            return res
        line = (tag + "\n").encode()
        writer.write(line)
        echo = await asyncio.wait_for(reader.readexactly(len(line)), timeout)
        if echo != line:
            res.outcome, res.reason = "broken", "echo-mismatch"
            return res
        if hold:
            await asyncio.sleep(hold)
        writer.write_eof()
        rest = await asyncio.wait_for(reader.read(), timeout)
        res.outcome = "completed" if rest == b"" else "broken"
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        res.outcome = "broken" if res.status == 200 else "error"
        res.reason = type(exc).__name__
    except (OSError, asyncio.TimeoutError, ValueError, IndexError) as exc:
        res.outcome = "broken" if res.status == 200 else "error"
        res.reason = type(exc).__name__
    finally:
        res.t1 = time.time()
        if writer is not None:
            writer.transport.abort()
    return res


async def run_load(
    edges: Sequence[tuple[str, int]],
    zones: Sequence[str],
    n: int,
    *,
    port: int = 443,
    concurrency: int = 64,
    prefix: str = "c",
    timeout: float = 10.0,
    on_progress: Callable[[int], None] | None = None,
) -> list[ClientResult]:
    """``n`` connections spread round-robin over ``edges`` and ``zones``, ``concurrency`` at a time."""
    results: list[ClientResult] = []
    counter = itertools.count()
    combos = [(e, z) for z in zones for e in edges]

    async def worker() -> None:
        while True:
            i = next(counter)
            if i >= n:
                return
            edge, zone = combos[i % len(combos)]
            results.append(await one_connection(edge, zone, port, f"{prefix}{i}", timeout=timeout))
            if on_progress is not None:
                on_progress(len(results))

    await asyncio.gather(*(worker() for _ in range(min(concurrency, n))))
    return results
