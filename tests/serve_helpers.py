"""A real explorer server on loopback for the tests: started in a thread, stopped by the fixture."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web

from aegisfwd.serve.app import create_app
from aegisfwd.serve.session import Session

TIMEOUT_S = 30


@contextmanager
def running(session: Session, title: str = "test") -> Iterator[str]:
    """Serve ``session`` on 127.0.0.1 (a free port) in a background thread; yields the base URL."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def start() -> None:
        runner = web.AppRunner(create_app(session, title=title))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        box["runner"] = runner
        box["port"] = runner.addresses[0][1]

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(start())
        except OSError as exc:  # pragma: no cover - cannot listen: reported to the test below
            box["error"] = exc
        ready.set()
        if "error" not in box:
            loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(TIMEOUT_S), "the server did not start"
    if "error" in box:
        raise box["error"]
    try:
        yield f"http://127.0.0.1:{box['port']}"
    finally:
        asyncio.run_coroutine_threadsafe(box["runner"].cleanup(), loop).result(TIMEOUT_S)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(TIMEOUT_S)
        loop.close()


def call(
    base: str, method: str, path: str, body: Any = None, raw: bytes | None = None
) -> tuple[int, Any, dict[str, str]]:
    """One request; returns (status, parsed JSON or text, headers)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(
        base + path,
        data=data,
        method=method,
        headers={"Content-Type": "application/json"} if data is not None else {},
    )
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT_S) as r:
            status, text, headers = r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        status, text, headers = e.code, e.read().decode(), dict(e.headers)
    try:
        return status, json.loads(text), headers
    except json.JSONDecodeError:
        return status, text, headers
