"""A real explorer server on loopback for the tests and benchmarks: in a thread of this process
(``running``), or as the ``aegisfwd serve`` command in a process of its own (``serve_cli``)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
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


CLI = [sys.executable, "-c", "import sys; from aegisfwd.cli import main; sys.exit(main())"]


def serve_cli(*args: str, timeout: float = 120) -> tuple[subprocess.Popen[str], str]:
    """Start ``aegisfwd serve --port 0 ARGS`` (loopback); returns the process and its base URL once
    it printed "serving on", or fails with its stderr."""
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", "0", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("serving on "):
            return proc, line.split()[2].rstrip("/")
        if not line and proc.poll() is not None:
            break
    proc.kill()
    proc.wait(10)
    message = proc.stderr.read() if proc.stderr else ""
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()
    raise AssertionError(f"serve did not start: {message}")


def stop_serve_cli(proc: subprocess.Popen[str]) -> None:
    """Stop a ``serve_cli`` process as Ctrl-C would, and close its pipes."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:  # pragma: no cover
        proc.kill()
        raise
    finally:
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
