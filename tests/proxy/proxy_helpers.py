"""Helpers of the proxy tests (a module with a unique name: ``conftest`` names clash across test
folders): eight in-process edges with an origin, and a bounded ``run``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aegisfwd as af
from aegisfwd.proxy.config import config_from_dict
from aegisfwd.proxy.edge import EdgeProcess
from aegisfwd.proxy.journal import Journal, read_journal
from aegisfwd.proxy.origin import Origin
from aegisfwd.proxy.scenario import SERVERS, demo_config, origin_allow, origins

TEST_TIMEOUT = 50.0


class Cluster:
    """The demo world's eight edge servers and the origin, in this process's event loop (fast to
    start; each edge has its own engine, as separate processes would)."""

    def __init__(self, tmp: Path, block: int, compiled: af.CompiledTopology, **cfg_kw: Any) -> None:
        self.block = block
        data = demo_config(block, topology="unused.yaml", **cfg_kw)
        data.pop("topology")
        data["compiled"] = "unused.aegis"
        self.cfg = config_from_dict(data)
        self.compiled = compiled
        self.tmp = tmp
        self.origin = Origin(list(origins(block).values()), origin_allow(block), str(tmp / "origin.jsonl"))
        self.edges = {
            sid: EdgeProcess(
                self.cfg, compiled, sid, 0, af.Engine(compiled), journal=Journal(tmp / f"{sid}.jsonl")
            )
            for sid in SERVERS
        }

    async def start(self) -> None:
        await self.origin.start()
        for e in self.edges.values():
            await e.start()

    async def stop(self) -> None:
        for e in self.edges.values():
            await e.stop()
        await self.origin.stop()

    def set_state(self, epoch: int, target: str, state: str) -> None:
        for e in self.edges.values():
            e.apply(epoch, target, state)

    def journal(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for sid in SERVERS:
            p = self.tmp / f"{sid}.jsonl"
            if p.exists():
                out += read_journal(p)
        return out

    def origin_log(self) -> list[dict[str, Any]]:
        p = self.tmp / "origin.jsonl"
        return read_journal(p) if p.exists() else []


@contextlib.asynccontextmanager
async def running(cluster: Cluster) -> AsyncIterator[Cluster]:
    await cluster.start()
    try:
        yield cluster
    finally:
        await cluster.stop()


def run(coro: Any, timeout: float = TEST_TIMEOUT) -> Any:
    """Run a coroutine with a hard bound: a test never hangs."""

    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())
