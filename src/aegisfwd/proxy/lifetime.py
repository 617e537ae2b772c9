"""Processes started by a harness end with it.

A harness (the tests, the demo, the benchmarks) sets ``AEGISFWD_PROXY_PARENT`` to its pid when it
starts an origin or ``proxy up``; those then exit on their own if that process disappears (killed
with SIGKILL, so no finaliser ran), instead of lingering on the machine. Edge processes already end
when their supervisor's control link closes.
"""

from __future__ import annotations

import asyncio
import os

ENV_PARENT = "AEGISFWD_PROXY_PARENT"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def until_parent_exits(poll: float = 0.5) -> None:
    """Return when the harness process named in the environment is gone (never, without one)."""
    raw = os.environ.get(ENV_PARENT)
    if not raw or not raw.isdigit():
        await asyncio.Event().wait()
        return
    pid = int(raw)
    while _alive(pid) and os.getppid() != 1:
        await asyncio.sleep(poll)
