"""``aegisfwd proxy demo``: the demo world under load, one fault of each kind, and a summary.

Starts an origin and ``proxy up`` (eight edge processes) on loopback, runs a client load through
seven ingress servers while a server goes down, a DC drains, an egress process is killed with
SIGKILL and a location goes down, then prints connections per tier, refusals per reason, what the
origin saw, how long each state change took to reach every process, and the decision costs.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from .harness import Deployment
from .loadgen import run_load
from .scenario import SERVERS, edge_address, free_block

KILLED = "l1d1s1"
ZONES = ["shop.example", "api.example", "cdn.example"]
FAULTS: list[tuple[float, str, str, str | None]] = [
    (0.15, "state", "l1d1s2", "down"),
    (0.35, "state", "l2d2", "draining"),
    (0.55, "kill", KILLED, None),
    (0.75, "state", "l1", "down"),
]


def run_with_faults(
    dep: Deployment, n: int, *, concurrency: int = 48
) -> tuple[list[Any], list[tuple[str, Any]]]:
    """The load (never through the process that gets killed) with the faults at fixed fractions of it."""
    edges = [edge_address(dep.block, s) for s in SERVERS if s != KILLED]
    done = [0]
    log: list[tuple[str, Any]] = []

    def driver() -> None:
        for frac, kind, target, state in FAULTS:
            while done[0] < frac * n:
                time.sleep(0.02)
            if kind == "state":
                assert state is not None
                log.append((f"{target} {state}", dep.set_state(target, state)))
            else:
                log.append((f"SIGKILL {target}", dep.kill(target)))

    t = threading.Thread(target=driver, daemon=True)
    t.start()

    def progress(k: int) -> None:
        done[0] = k

    async def load() -> list[Any]:
        return await asyncio.wait_for(
            run_load(edges, ZONES, n, concurrency=concurrency, on_progress=progress), 600
        )

    results = asyncio.run(load())
    t.join(30)
    return results, log


def run_demo(*, connections: int, engine: str, run_dir: str | None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    where = Path(run_dir) if run_dir else Path(tempfile.mkdtemp(prefix="aegisfwd-demo-"))
    dep = Deployment(where, block=free_block(), engine=engine)
    try:
        console.print(f"starting an origin and 8 edge processes ({engine} engines) in {where} ...")
        dep.start()
        t0 = time.monotonic()
        results, faults = run_with_faults(dep, connections)
        elapsed = time.monotonic() - t0
        deadline = time.monotonic() + 20
        while len(dep.status()["processes"]) < 8 and time.monotonic() < deadline:
            time.sleep(0.1)
        stats = dep.stats()
        journals = dep.journals()
        origin = dep.origin_records()
    finally:
        dep.stop()

    ingress = [j for j in journals if j["kind"] == "ingress"]
    tiers = Counter(j["tier"] for j in ingress if j.get("outcome") != "refused" and "tier" in j)
    refusals = Counter(j["reason"] for j in ingress if j.get("outcome") == "refused")
    outcomes = Counter(r.outcome for r in results)

    t = Table(title=f"{connections} client connections in {elapsed:.1f} s ({connections / elapsed:.0f}/s)")
    t.add_column("client outcome")
    t.add_column("count", justify="right")
    for k, v in outcomes.most_common():
        t.add_row(k, str(v))
    console.print(t)
    t = Table(title="connections per tier (egress made)")
    t.add_column("tier")
    t.add_column("count", justify="right")
    for k, v in tiers.most_common():
        t.add_row(k, str(v))
    console.print(t)
    t = Table(title="refusals per reason")
    t.add_column("reason")
    t.add_column("count", justify="right")
    for k, v in refusals.most_common():
        t.add_row(k, str(v))
    console.print(t)
    seen = Counter((o["origin"], o["peer"]) for o in origin if o.get("accepted"))
    t = Table(title=f"what the origin saw (refused: {sum(1 for o in origin if o.get('accepted') is False)})")
    t.add_column("origin")
    t.add_column("source address")
    t.add_column("connections", justify="right")
    for (o, p), v in sorted(seen.items()):
        t.add_row(o, p, str(v))
    console.print(t)
    t = Table(title="faults")
    t.add_column("fault")
    t.add_column("applied in every process")
    for name, res in faults:
        if isinstance(res, dict):
            t.add_row(
                name, f"{res['applied_all_us']:.0f} µs ({res['acknowledged']}/{res['processes']} processes)"
            )
        else:
            t.add_row(name, f"pid {res}; restarted by the supervisor")
    console.print(t)
    costs = [s["decision"]["p99_ns"] for s in stats if "decision" in s]
    binds = [s["bind"]["p99_ns"] for s in stats if "bind" in s]
    if costs:
        console.print(
            f"decision p99 per process: {min(costs) / 1e3:.2f}-{max(costs) / 1e3:.2f} µs; "
            f"source bind p99: {min(binds, default=0) / 1e3:.1f}-{max(binds, default=0) / 1e3:.1f} µs"
        )
    if run_dir is None:
        shutil.rmtree(where, ignore_errors=True)
