"""What a decision costs a proxy: `proxy up` on loopback, measured from the proxy itself.

* connections/s through ONE edge process (server l1d1s1, zone shop.example: every connection is a
  LOCAL egress bound to the stand-in of 192.0.2.10), with the engine deciding per connection versus
  the same process connecting from one fixed source address without a decision (``POST /mode``),
  rounds interleaved A/B/A/B in one run, ratio of the medians;
* the decision and the source bind per connection: exact percentiles of every sample the edge
  process took (``GET /stats``), and the p99 bucket of the Prometheus histogram;
* a state change applied in every process: ``POST /state`` at idle, from the control endpoint
  receiving it to the last of the 8 processes acknowledging it (monotonic clock, one machine).

    python benchmarks/proxy_bench.py                      # ~1 min on 2 busy cores
    python benchmarks/proxy_bench.py --connections 400 --rounds 1 --changes 5 --json   # smoke
    python benchmarks/proxy_bench.py --pin                # the measured edge process alone on CPU 0

``--pin`` (Linux, 2+ CPUs): the measured edge process runs on CPU 0 and everything else (the load
generator, the origin, the supervisor, the other edge processes) on the other CPUs, as a production
proxy has its cores to itself; unpinned, the 32 clients and the origin share the edge's core and
their wake-ups and loopback interrupts land inside its timed windows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aegisfwd.proxy.control import request
from aegisfwd.proxy.harness import Deployment
from aegisfwd.proxy.loadgen import run_load
from aegisfwd.proxy.metrics import parse_exposition
from aegisfwd.proxy.scenario import DEDICATED, edge_address, free_block, stand_ins

SERVER = "l1d1s1"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def histogram_p99(text: str, name: str, server_filter: str | None = None) -> float | None:
    """The upper bound of the bucket holding the 99th percentile (seconds)."""
    samples = parse_exposition(text)
    buckets: dict[float, float] = {}
    for (n, labels), v in samples.items():
        if n == f"{name}_bucket":
            le = float(dict(labels)["le"])
            buckets[le] = buckets.get(le, 0.0) + v
    if not buckets:
        return None
    total = max(buckets.values())
    for le in sorted(buckets):
        if buckets[le] >= 0.99 * total:
            return le
    return None


def isolated(n: int = 20000) -> dict[str, float]:
    """The same per-connection calls in a tight loop, outside the proxy (ns per call, medians of 5):
    what they cost with warm caches and no event loop around them."""
    import socket

    import aegisfwd as af
    from aegisfwd._flowkey import client_flow_key, flow_key_py
    from aegisfwd.proxy.scenario import demo_topology
    from aegisfwd.proxy.source import source_socket

    engine = af.Engine(af.Topology.from_dict(demo_topology()))
    s, p = engine.compiled.server_index[SERVER], engine.compiled.pool_index["shop"]

    def timed(fn: Any, k: int) -> float:
        runs = []
        for _ in range(5):
            t = time.perf_counter_ns()
            fn(k)
            runs.append((time.perf_counter_ns() - t) / k)
        return statistics.median(runs)

    def decide(k: int) -> None:
        d = engine.decide_indices
        for i in range(k):
            d(s, p, 4, i * 0x9E3779B97F4A7C15 & 0xFFFFFFFFFFFFFFFF)

    def flow_python(k: int) -> None:
        for i in range(k):
            flow_key_py("127.0.0.1", i & 0xFFFF, None)

    def flow(k: int) -> None:
        for i in range(k):
            client_flow_key("127.0.0.1", i & 0xFFFF)

    def bound(k: int) -> None:
        for _ in range(k):
            source_socket("127.0.0.1").close()

    def plain(k: int) -> None:
        for _ in range(k):
            socket.socket().close()

    return {
        "cold": cold(engine, s, p),
        "decide_indices_ns": timed(decide, n),
        "flow_key_ns": timed(flow, n),
        "flow_key_python_ns": timed(flow_python, n // 4),
        "socket_bound_ns": timed(bound, n // 20),
        "socket_plain_ns": timed(plain, n // 20),
        "isa": engine.isa,
    }


def cold(
    engine: Any, s: int, p: int, n: int = 2000, evict_bytes: int = 8 << 20
) -> dict[str, dict[str, float]]:
    """The same calls with cold caches, as a proxy makes them between other connections' work: before
    each sample a walk over ``evict_bytes`` (twice this machine's L2) evicts caches and TLBs. The
    empty window (two clock reads) and a builtin call of four ints are the yardsticks: what any
    Python-level call costs cold, whatever it does. Percentiles in ns."""
    import numpy as np

    from aegisfwd._flowkey import client_flow_key

    d = engine.decide_indices
    buf = np.zeros(evict_bytes // 8, np.int64)
    clock = time.perf_counter_ns

    def sample(kind: str) -> dict[str, float]:
        out = np.empty(n, np.int64)
        for i in range(n):
            buf.fill(i)
            if kind == "empty_window":
                t0 = clock()
                t1 = clock()
            elif kind == "builtin_max_4_ints":
                t0 = clock()
                max(s, p, 4, i)
                t1 = clock()
            elif kind == "flow_key":
                t0 = clock()
                client_flow_key("127.0.0.1", i & 0xFFFF)
                t1 = clock()
            else:
                t0 = clock()
                d(s, p, 4, i)
                t1 = clock()
            out[i] = t1 - t0
        q = np.percentile(out, [50, 90, 99])
        return {"p50": float(q[0]), "p90": float(q[1]), "p99": float(q[2])}

    return {k: sample(k) for k in ("empty_window", "builtin_max_4_ints", "flow_key", "decide_indices")}


def pin(dep: Deployment) -> dict[str, Any]:
    """The measured edge process on CPU 0, every other process of the run on the remaining CPUs."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise SystemExit("--pin needs at least 2 CPUs")
    edge_cpu, rest = {cpus[0]}, set(cpus[1:])
    procs = dep.status()["processes"]
    edge_pid = next(p["pid"] for p in procs if p["server"] == SERVER)
    others = [p["pid"] for p in procs if p["pid"] != edge_pid] + [p.pid for p in dep.procs] + [os.getpid()]
    os.sched_setaffinity(edge_pid, edge_cpu)
    for pid in others:
        os.sched_setaffinity(pid, rest)
    return {"edge_cpu": sorted(edge_cpu), "others_cpus": sorted(rest)}


def run(
    connections: int, rounds: int, changes: int, concurrency: int, engine: str, pinned: bool = False
) -> dict[str, Any]:
    placement: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="aegisfwd-proxy-bench-") as tmp:
        dep = Deployment(tmp, block=free_block(), engine=engine)
        try:
            dep.start()
            if pinned:
                placement = pin(dep)
            edge = edge_address(dep.block, SERVER)
            fixed = stand_ins(dep.block)[DEDICATED["shop"]]
            rates: dict[str, list[float]] = {"decision": [], "fixed": []}

            async def load(tag: str) -> float:
                t0 = time.perf_counter()
                res = await asyncio.wait_for(
                    run_load([edge], ["shop.example"], connections, concurrency=concurrency, prefix=tag), 600
                )
                dt = time.perf_counter() - t0
                bad = [r for r in res if r.outcome != "completed"]
                if bad:
                    raise RuntimeError(f"{len(bad)} connections did not complete: {bad[:2]}")
                return connections / dt

            asyncio.run(load("warm"))
            dep.stats(reset=True)
            for i in range(rounds):
                for mode in ("decision", "fixed") if i % 2 == 0 else ("fixed", "decision"):
                    request(
                        dep.control, "POST", "/mode", {"fixed_source": fixed if mode == "fixed" else None}
                    )
                    rates[mode].append(asyncio.run(load(f"{mode}{i}-")))
            request(dep.control, "POST", "/mode", {"fixed_source": None})
            stats = next(s for s in dep.stats() if s["server"] == SERVER)
            metrics = dep.metrics()
            applied: list[float] = []
            for k in range(changes):
                r = dep.set_state("l2d2s2", "down" if k % 2 == 0 else "up")
                assert r["acknowledged"] == r["processes"] == 8, r
                applied.append(float(r["applied_all_us"]))
                time.sleep(0.05)
        finally:
            dep.stop()
    dec, fix = statistics.median(rates["decision"]), statistics.median(rates["fixed"])
    return {
        "isolated": isolated(),
        "cpu": cpu_model(),
        "engine": engine,
        "pinned": placement,
        "connections_per_round": connections,
        "rounds": rounds,
        "concurrency": concurrency,
        "conn_per_s_decision": rates["decision"],
        "conn_per_s_fixed": rates["fixed"],
        "ratio_decision_over_fixed": dec / fix,
        "decision_ns": stats.get("decision"),
        "bind_ns": stats.get("bind"),
        "decision_samples": stats.get("decision_n"),
        "bind_samples": stats.get("bind_n"),
        "decision_hist_p99_s": histogram_p99(metrics, "aegisfwd_proxy_decision_seconds"),
        "bind_hist_p99_s": histogram_p99(metrics, "aegisfwd_proxy_source_bind_seconds"),
        "state_applied_all_us": {
            "n": len(applied),
            "median": statistics.median(applied) if applied else None,
            "max": max(applied) if applied else None,
            "all": applied,
        },
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connections", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--changes", type=int, default=20)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--engine", choices=["private", "shared"], default="private")
    ap.add_argument("--pin", action="store_true", help="the measured edge process alone on CPU 0")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    out = run(a.connections, a.rounds, a.changes, a.concurrency, a.engine, a.pin)
    if a.json:
        print(json.dumps(out, indent=1))
        return 0
    print(f"CPU: {out['cpu']}; engine: {out['engine']}; pinned: {out['pinned']}")
    print(
        f"conn/s decision {out['conn_per_s_decision']}  fixed {out['conn_per_s_fixed']}  "
        f"ratio {out['ratio_decision_over_fixed']:.3f}"
    )
    print(f"decision ns {out['decision_ns']}\nbind ns {out['bind_ns']}")
    print(
        f"histogram p99 buckets: decision <= {out['decision_hist_p99_s']} s, bind <= {out['bind_hist_p99_s']} s"
    )
    print(f"state change applied in all 8 processes (us): {out['state_applied_all_us']}")
    print(f"isolated calls: {out['isolated']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
