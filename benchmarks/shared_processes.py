"""Many processes on one topology: per-process ``af.Engine`` against ``af.SharedEngine``.

For each mode, N worker processes (fresh interpreters, ``spawn``) load the same compiled file
(memory-mapped) and get an engine: ``private`` builds an ``af.Engine`` in each; ``shared`` attaches
each to one ``SharedEngine`` the parent created. Each worker decides a batch of world requests once
(so the tables it reads are resident), then serves a loop like an idle proxy worker: wait up to
``--interval-us`` for a control message, then decide one watched request.

Measured, with every worker alive at once:

* **PSS per worker** (``/proc/PID/smaps_rollup``: each shared page counted 1/sharers) and its
  private part (Private_Clean + Private_Dirty), and a baseline worker that loads the compiled file
  but builds no engine, so the engine's own share is the difference;
* **state propagation**: ``--changes`` times, one server (the watched request's egress server) goes
  down, then up. ``shared``: the parent calls ``set_state`` once on its ``SharedEngine``; every worker
  sees it at its next decision. ``private``: the parent sends the change to every worker through a
  pipe and each applies it to its own engine. Figure: the time from the parent's call until the
  *last* worker's decision shows the new answer (CLOCK_MONOTONIC, shared by all processes), and the
  parent's own ``set_state`` call time.

With ``--speed``, also the decision speed of both engines in this process, interleaved round by
round (best of ``--rounds``), so that their ratio comes from one run on a noisy machine: a batch of
1,000,000 world requests on one thread, and 20,000 scalar ``decide`` calls.

    python benchmarks/shared_processes.py                 # world, 8 workers, 40 changes
    python benchmarks/shared_processes.py --processes 4 --changes 10 --json out.json
    python benchmarks/shared_processes.py --modes none --speed
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

import aegisfwd as af


def smaps_rollup(pid: int) -> dict[str, int]:
    """kB fields of /proc/PID/smaps_rollup."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key] = int(parts[0])
    return out


def warm_up(engine: af.Engine) -> None:
    """200,000 random requests, so the tables a decision reads are resident in this process (in
    small batches: transient buffers kept by malloc after a big batch would count as the engine's)."""
    rng = np.random.default_rng(7)
    n = 10_000
    for _ in range(20):
        engine.decide_batch(
            rng.integers(0, len(engine.servers), n).astype(np.int32),
            rng.integers(0, len(engine.pools), n).astype(np.int32),
            rng.choice(np.array([4, 6], dtype=np.uint8), n),
            rng.integers(0, 2**63, n, dtype=np.uint64),
            threads=1,
        )


def worker(mode: str, path: str, name: str | None, request: tuple[int, int, int, int], conn: Any) -> None:
    compiled = af.load_compiled(path)
    if mode == "private":
        engine: af.Engine | None = af.Engine(compiled)
    elif mode == "shared":
        engine = af.SharedEngine.attach(name or "", compiled)
    else:  # baseline: the compiled file and the interpreter, no engine
        engine = None
    if engine is not None:
        warm_up(engine)
    conn.send(("ready", os.getpid()))
    interval = conn.recv()
    # Per change of the watched answer: (start of the first decision that showed it, start of the
    # decision before it), CLOCK_MONOTONIC ns.
    seen: list[tuple[int, int]] = []
    last = engine.decide_indices(*request)[:5] if engine is not None else None
    prev_start = time.monotonic_ns()
    while True:
        time.sleep(interval)  # an idle proxy worker: the next connection comes later
        if conn.poll(0):
            msg = conn.recv()
            if msg[0] == "stop":
                break
            if msg[0] == "set" and engine is not None:  # private mode: apply the change here
                engine.set_state(msg[1], msg[2])
        if engine is not None:
            start = time.monotonic_ns()
            now = engine.decide_indices(*request)[:5]
            if now != last:
                seen.append((start, prev_start))
                last = now
            prev_start = start
    conn.send(("seen", seen))


def run_mode(mode: str, path: str, processes: int, changes: int, interval_s: float) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    compiled = af.load_compiled(path)
    owner = af.SharedEngine.create(compiled) if mode == "shared" else None
    probe = owner if owner is not None else af.Engine(compiled)
    # A request whose egress server we will flip; it moves when that server goes down.
    request = next(
        (s, p, 4, 99)
        for s in range(0, len(probe.servers), 997)
        for p in range(0, len(probe.pools), 13)
        if probe.decide_indices(s, p, 4, 99)[1] >= 0
    )
    target = int(probe.decide_indices(*request)[1])
    procs, conns = [], []
    try:
        for _ in range(processes):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=worker, args=(mode, path, owner.name if owner else None, request, child))
            p.start()
            procs.append(p)
            conns.append(parent)
        pids = [c.recv()[1] for c in conns]  # every worker ready: all alive at once
        time.sleep(0.5)
        mem = [smaps_rollup(pid) for pid in pids]
        for c in conns:
            c.send(interval_s)
        starts, returns = [], []
        for k in range(changes):
            state = "down" if k % 2 == 0 else "up"
            time.sleep(0.02)  # let every worker settle in its loop
            t0 = time.monotonic_ns()
            if owner is not None:
                owner.set_state(target, state)
            elif mode == "private":
                for c in conns:
                    c.send(("set", target, state))
            returns.append(time.monotonic_ns())
            starts.append(t0)
        time.sleep(0.05)
        for c in conns:
            c.send(("stop",))
        seen = [c.recv()[1] for c in conns]
        for p in procs:
            p.join(30)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
        if owner is not None:
            owner.close()
            owner.unlink()
    result: dict[str, Any] = {
        "mode": mode,
        "processes": processes,
        "pss_kb": [m.get("Pss", 0) for m in mem],
        "private_kb": [m.get("Private_Clean", 0) + m.get("Private_Dirty", 0) for m in mem],
        "rss_kb": [m.get("Rss", 0) for m in mem],
    }
    if mode != "baseline":
        complete = [s for s in seen if len(s) == changes]
        lat = (
            [max(s[k][0] for s in complete) - starts[k] for k in range(changes)]
            if len(complete) == processes
            else []
        )
        # A decision that started after the parent's call returned and still gave the old answer.
        stale = sum(1 for s in complete for k in range(changes) if s[k][1] > returns[k])
        result.update(
            changes=changes,
            workers_seeing_every_change=len(complete),
            all_seen_us=[x / 1000 for x in lat],
            call_us=[(r - t) / 1000 for r, t in zip(returns, starts, strict=True)],
            stale_after_return=stale,
        )
    return result


def speed(path: str, rounds: int) -> dict[str, Any]:
    compiled = af.load_compiled(path)
    topo = af.datasets.world(seed=0)
    req = af.datasets.requests(topo, 1_000_000, seed=1)
    args = (req.server, req.pool, req.family, req.flow)
    rows = list(zip(*(a[:20_000].tolist() for a in args), strict=True))
    private = af.Engine(compiled)
    best: dict[str, float] = {}
    with af.SharedEngine.create(compiled) as owner:
        worker = af.SharedEngine.attach(owner.name, compiled)
        assert worker.decide_batch(*args).equals(private.decide_batch(*args))
        for _ in range(rounds):
            for kind, engine in (("private", private), ("shared", worker)):
                t = time.perf_counter()
                engine.decide_batch(*args, threads=1)
                best[f"{kind}.batch"] = min(best.get(f"{kind}.batch", 1e9), time.perf_counter() - t)
                decide = engine.decide
                t = time.perf_counter()
                for a, b, c, d in rows:
                    decide(a, b, c, d)
                best[f"{kind}.scalar"] = min(best.get(f"{kind}.scalar", 1e9), time.perf_counter() - t)
        worker.close()
    out: dict[str, Any] = {"mode": "speed", "rounds": rounds}
    for what, n in (("batch", len(args[0])), ("scalar", len(rows))):
        p, q = best[f"private.{what}"], best[f"shared.{what}"]
        out[what] = {"private_ns": p / n * 1e9, "shared_ns": q / n * 1e9, "shared_over_private": q / p}
    return out


def summary(r: dict[str, Any]) -> str:
    if r["mode"] == "speed":
        return "\n".join(
            f"   speed: {what:6} private {r[what]['private_ns']:6.1f} ns, shared {r[what]['shared_ns']:6.1f} ns "
            f"per decision: shared/private {r[what]['shared_over_private']:.3f} (best of {r['rounds']})"
            for what in ("batch", "scalar")
        )
    pss = r["pss_kb"]
    line = (
        f"{r['mode']:>8}: PSS per worker {statistics.median(pss) / 1024:7.1f} MiB (min {min(pss) / 1024:.1f}, "
        f"max {max(pss) / 1024:.1f}), private {statistics.median(r['private_kb']) / 1024:6.1f} MiB, "
        f"sum of PSS {sum(pss) / 1024:7.1f} MiB"
    )
    if "all_seen_us" in r:
        lat = r["all_seen_us"]
        if lat:
            line += (
                f"\n          change seen by all {r['processes']}: median {statistics.median(lat):8.0f} us, "
                f"max {max(lat):8.0f} us; parent's call median {statistics.median(r['call_us']):6.0f} us, "
                f"max {max(r['call_us']):6.0f} us"
            )
            if r["mode"] == "shared":  # (private: the call only sends the change; workers apply it later)
                line += f"; decisions started after the call returned that saw the old state: {r['stale_after_return']}"
        else:
            line += f"\n          only {r['workers_seeing_every_change']} workers saw every change"
    return line


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--processes", type=int, default=8)
    ap.add_argument("--changes", type=int, default=40)
    ap.add_argument("--interval-us", type=float, default=200.0, help="worker wait between decisions")
    ap.add_argument("--modes", default="baseline,private,shared")
    ap.add_argument("--speed", action="store_true", help="also time decisions of both engines, interleaved")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "world.aegis")
        af.datasets.world(seed=0).compile().save(path)
        results = []
        for mode in args.modes.split(","):
            if mode == "none":
                continue
            r = run_mode(mode, path, args.processes, args.changes, args.interval_us / 1e6)
            print(summary(r), flush=True)
            results.append(r)
        if args.speed:
            r = speed(path, args.rounds)
            print(summary(r), flush=True)
            results.append(r)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
