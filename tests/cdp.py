"""A small Chrome DevTools Protocol client: drive Debian's headless chromium from a test.

chromium is started with ``--remote-debugging-port=0`` and a private profile directory; the port it
picked is read from ``DevToolsActivePort`` in that directory, the page's websocket from ``/json/list``.
Clicks are real input events (``Input.dispatchMouseEvent`` at an element's centre), so the page's own
handlers run exactly as for a user. Everything is on loopback and bounded in time.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp

# Debian package "chromium" (apt-get install -y chromium) provides /usr/bin/chromium.
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TIMEOUT_S = 60.0


class Browser:
    """A page of a headless chromium (see ``browser``)."""

    def __init__(self, url: str, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.url, self.ws = url, ws
        self.next_id = 0

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        assert self.ws is not None
        self.next_id += 1
        mine = self.next_id
        await self.ws.send_json({"id": mine, "method": method, "params": params})
        while True:
            msg = await asyncio.wait_for(self.ws.receive(), TIMEOUT_S)
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"DevTools connection closed ({msg.type})")
            data = json.loads(msg.data)
            if data.get("id") == mine:
                if "error" in data:
                    raise RuntimeError(f"{method}: {data['error']}")
                return dict(data.get("result", {}))

    async def js(self, expression: str) -> Any:
        r = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in r:
            raise RuntimeError(f"{expression}: {r['exceptionDetails']}")
        return r["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = TIMEOUT_S) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = await self.js(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout} s for {expression}")
            await asyncio.sleep(0.05)

    async def open(self, url: str | None = None) -> None:
        await self.send("Page.navigate", url=url or self.url)
        await self.wait_for("document.body && document.body.dataset.ready === '1'")

    async def click(self, selector: str) -> None:
        """A real mouse click at the centre of the element; fails if another element covers it."""
        sel = json.dumps(selector)
        box = await self.js(f"""(() => {{ const e = document.querySelector({sel}); if (!e) return null;
            const r = e.getBoundingClientRect(); const x = r.left + r.width / 2, y = r.top + r.height / 2;
            const top = document.elementFromPoint(x, y);
            return {{x, y, hit: top === e || e.contains(top)}}; }})()""")
        if box is None:
            raise AssertionError(f"no element {selector}")
        if not box["hit"]:
            raise AssertionError(f"{selector} is covered by another element")
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            await self.send(
                "Input.dispatchMouseEvent",
                type=kind,
                x=box["x"],
                y=box["y"],
                button="left",
                clickCount=0 if kind == "mouseMoved" else 1,
            )

    async def screenshot(self, path: Path) -> None:
        r = await self.send("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(r["data"]))


@asynccontextmanager
async def browser(url: str, profile: Path, *, width: int = 1400, height: int = 860) -> AsyncIterator[Browser]:
    """``async with browser(url, profile_dir) as page:`` -- a headless chromium, stopped on exit."""
    assert CHROMIUM is not None
    proc = await asyncio.create_subprocess_exec(
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-extensions",
        "--disable-background-networking",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
        f"--window-size={width},{height}",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S))
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + TIMEOUT_S
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or proc.returncode is not None:
                raise RuntimeError("chromium did not open its DevTools port")
            await asyncio.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        async with http.get(f"http://127.0.0.1:{port}/json/list") as r:
            targets = json.loads(await r.text())
        target = next(t for t in targets if t.get("type") == "page")
        ws = await http.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=64 << 20)
        try:
            page = Browser(url, ws)
            await page.send("Page.enable")
            await page.send("Runtime.enable")
            yield page
        finally:
            await ws.close()
    finally:
        await http.close()
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except asyncio.TimeoutError:  # pragma: no cover
                proc.kill()
                await proc.wait()
