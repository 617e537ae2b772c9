"""``aegisfwd proxy up``: one supervisor, one or more edge processes per configured server.

The supervisor compiles the topology once (or takes the compiled file), checks the config against
it, and starts every edge process on that one compiled file (each memory-maps it). It is the
control plane: edge processes connect to its Unix socket, get the current states and epoch, and
from then on every state change arrives there with a new epoch. With ``engine: private`` each
process applies the change to its own engine; with ``engine: shared`` the supervisor applies it
once to the shared segment and the processes only update what they journal and how they treat their
own server (draining, down). A process that dies is restarted with the current states.

Everything a test needs to reconcile lands in the run directory: ``control.jsonl`` (each state
change with its epoch and apply time, each process exit), ``journals/*.jsonl`` (one line per
connection), ``logs/`` (process output), ``metrics/`` (prometheus_client multiprocess files).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._loader import load_topology
from ..compiled import CompiledTopology, load_compiled
from ..errors import UnknownIdError
from ..topology import STATE_CODES, STATE_NAMES
from .config import ProxyConfig, ProxyConfigError, check_config, format_hostport, parse_hostport
from .control import HttpServer, json_reply, mode_request, state_request
from .journal import Journal
from .lifetime import until_parent_exits
from .topology_view import TopologyView, apply_state

APPLY_TIMEOUT = 5.0


@dataclass
class WorkerLink:
    server: str
    worker: int
    pid: int
    writer: asyncio.StreamWriter
    pending: dict[int, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    listen: tuple[str, int] | None = None


def prepare_compiled(cfg: ProxyConfig, run_dir: Path) -> tuple[str, CompiledTopology]:
    """The compiled file every process maps: the configured one, or the topology compiled once."""
    if cfg.compiled is not None:
        path = cfg.path(cfg.compiled)
    else:
        assert cfg.topology is not None
        path = run_dir / "topology.aegis"
        load_topology(cfg.path(cfg.topology)).compile().save(path)
    return str(path), load_compiled(path)


class Supervisor:
    def __init__(
        self,
        cfg: ProxyConfig,
        *,
        run_dir: str | Path | None = None,
        control: str | None = None,
        quiet: bool = False,
    ) -> None:
        self.cfg = cfg
        rd = run_dir or cfg.run_dir
        self.run_dir = Path(cfg.path(str(rd)) if rd else tempfile.mkdtemp(prefix="aegisfwd-proxy-"))
        self.control_addr = parse_hostport(control or cfg.control)
        self.quiet = quiet
        self.links: dict[tuple[str, int], WorkerLink] = {}
        self.procs: dict[tuple[str, int], asyncio.subprocess.Process] = {}
        self.epoch = 0
        self._seq = 0
        self._lock = asyncio.Lock()
        self._stopping = False
        self._ready: dict[tuple[str, int], asyncio.Event] = {}
        self.provider: Any = None
        self.shm_name: str | None = None
        self.control_engine: Any = None

    # ---- start -------------------------------------------------------------------------------
    def prepare(self) -> None:
        rd = self.run_dir
        rd.mkdir(parents=True, exist_ok=True)
        for sub in ("journals", "logs", "metrics"):
            shutil.rmtree(rd / sub, ignore_errors=True)
            (rd / sub).mkdir()
        # Before anything imports prometheus_client in this process or a child.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(rd / "metrics")
        self.compiled_path, self.compiled = prepare_compiled(self.cfg, rd)
        check_config(self.cfg, self.compiled)
        self.view = TopologyView(self.compiled)
        self.states = self.view.initial_states.copy()
        from .engines import make_provider

        self.provider = make_provider(self.cfg.engine, self.compiled)
        if not self.provider.fan_out:
            self.control_engine = self.provider.control_engine()
            self.shm_name = self.provider.name
        data = self.cfg.model_dump()
        data.update(compiled=self.compiled_path, topology=None, base_dir=str(rd))
        self.worker_config = rd / "config.json"
        self.worker_config.write_text(json.dumps(data))
        self.journal = Journal(rd / "control.jsonl")
        self.journal.write(
            {
                "event": "start",
                "t": time.time(),
                "t_ns": time.monotonic_ns(),
                "epoch": 0,
                "engine": self.cfg.engine,
                "states": self.states.tolist(),
            }
        )

    async def start(self) -> tuple[str, int]:
        self.prepare()
        self.sock_path = str(self.run_dir / "ctl.sock")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.sock_path)
        self._unix = await asyncio.start_unix_server(self._worker_conn, self.sock_path, limit=1 << 20)
        for sid, sc in self.cfg.servers.items():
            for w in range(sc.workers):
                self._ready[(sid, w)] = asyncio.Event()
                await self._spawn(sid, w)
        try:
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in self._ready.values())), 120)
        except asyncio.TimeoutError:
            missing = [f"{s}/{w}" for (s, w), e in self._ready.items() if not e.is_set()]
            raise ProxyConfigError(
                f"edge processes did not start: {', '.join(missing)} (see {self.run_dir}/logs)"
            ) from None
        self.http = HttpServer(self._http)
        addr = await self.http.start(*self.control_addr)
        self.control_addr = addr
        return addr

    async def _spawn(self, sid: str, w: int) -> None:
        log = open(self.run_dir / "logs" / f"{sid}-{w}.log", "ab")  # noqa: SIM115,ASYNC230 - handed to the child
        cmd = [
            sys.executable,
            "-m",
            "aegisfwd.proxy.cli",
            "edge",
            str(self.worker_config),
            "--server",
            sid,
            "--worker",
            str(w),
            "--control-socket",
            self.sock_path,
            "--journal",
            str(self.run_dir / "journals" / f"{sid}-{w}.jsonl"),
        ]
        if self.shm_name:
            cmd += ["--shm-name", self.shm_name]
        proc = await asyncio.create_subprocess_exec(
            *cmd, stdout=log, stderr=log, stdin=asyncio.subprocess.DEVNULL
        )
        log.close()
        self.procs[(sid, w)] = proc
        asyncio.get_running_loop().create_task(self._watch(sid, w, proc))

    async def _watch(self, sid: str, w: int, proc: asyncio.subprocess.Process) -> None:
        rc = await proc.wait()
        link = self.links.get((sid, w))
        if link is not None and link.pid == proc.pid:
            del self.links[(sid, w)]
            for f in link.pending.values():
                if not f.done():
                    f.set_exception(ConnectionError("process exited"))
        from .metrics import mark_dead

        mark_dead(proc.pid)
        if self._stopping:
            return
        self.journal.write(
            {
                "event": "exit",
                "server": sid,
                "worker": w,
                "pid": proc.pid,
                "rc": rc,
                "t": time.time(),
                "t_ns": time.monotonic_ns(),
                "epoch": self.epoch,
            }
        )
        self._log(f"edge {sid}/{w} (pid {proc.pid}) exited with {rc}; restarting")
        self._ready[(sid, w)] = asyncio.Event()
        await asyncio.sleep(0.1)
        if not self._stopping:
            await self._spawn(sid, w)

    async def _worker_conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            hello = json.loads(await asyncio.wait_for(reader.readline(), 30))
            key = (str(hello["server"]), int(hello["worker"]))
        except (ValueError, KeyError, TypeError, asyncio.TimeoutError, OSError):
            writer.close()
            return
        link = WorkerLink(key[0], key[1], int(hello["pid"]), writer)
        async with self._lock:  # no state change between the snapshot and the registration
            self.links[key] = link
            fut = self._send(link, {"op": "init", "epoch": self.epoch, "states": self.states.tolist()})
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                msg = json.loads(line)
                f = link.pending.pop(msg.get("seq"), None)
                if f is not None and not f.done():
                    f.set_result(msg)
                if f is fut:
                    link.listen = tuple(msg["listen"])
                    self._ready[key].set()
        except (OSError, ValueError):
            pass
        finally:
            for f in link.pending.values():
                if not f.done():
                    f.set_exception(ConnectionError("edge process went away"))

    def _send(self, link: WorkerLink, msg: dict[str, Any]) -> asyncio.Future[dict[str, Any]]:
        self._seq += 1
        msg["seq"] = self._seq
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        link.pending[self._seq] = fut
        link.writer.write((json.dumps(msg) + "\n").encode())
        return fut

    async def _broadcast(self, msg: dict[str, Any]) -> list[dict[str, Any] | BaseException]:
        links = list(self.links.values())
        futs = [self._send(link, dict(msg)) for link in links]
        if not futs:
            return []
        done = await asyncio.wait_for(asyncio.gather(*futs, return_exceptions=True), APPLY_TIMEOUT)
        return list(done)

    # ---- control operations ------------------------------------------------------------------
    async def set_state(self, target: str, state: str) -> dict[str, Any]:
        if state not in STATE_CODES:
            raise ValueError(f"invalid state {state!r}: expected up, draining or down")
        self.view.target_range(target)  # UnknownIdError names the target
        async with self._lock:
            self.epoch += 1
            epoch = self.epoch
            t0 = time.monotonic_ns()
            if self.control_engine is not None:
                self.control_engine.set_state(target, state)  # every worker sees it at its next decision
            t_set = time.monotonic_ns()
            apply_state(self.states, self.view, target, state)
            replies = await self._broadcast({"op": "state", "epoch": epoch, "target": target, "state": state})
        ok = [r for r in replies if isinstance(r, dict)]
        applied = [int(r["t_applied"]) for r in ok]
        out = {
            "epoch": epoch,
            "target": target,
            "state": state,
            "engine": self.cfg.engine,
            "processes": len(replies),
            "acknowledged": len(ok),
            "applied_all_us": (max(applied) - t0) / 1e3 if applied else None,
            "shared_set_us": (t_set - t0) / 1e3 if self.control_engine is not None else None,
        }
        self.journal.write(
            {
                "event": "state",
                "t": time.time(),
                "t_ns": t0,
                "t_set_ns": t_set,
                "t_applied_ns": max(applied) if applied else None,
                **out,
            }
        )
        return out

    async def stats(self, reset: bool) -> list[dict[str, Any]]:
        return [r for r in await self._broadcast({"op": "stats", "reset": reset}) if isinstance(r, dict)]

    def status(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "engine": self.cfg.engine,
            "run_dir": str(self.run_dir),
            "control": format_hostport(self.control_addr),
            "processes": [
                {
                    "server": k[0],
                    "worker": k[1],
                    "pid": v.pid,
                    "listen": format_hostport(v.listen) if v.listen else None,
                }
                for k, v in sorted(self.links.items())
            ],
            "states": {
                sid: STATE_NAMES[int(self.states[self.view.server_index[sid]])] for sid in self.cfg.servers
            },
        }

    async def _http(self, route: str, query: dict[str, str], body: bytes) -> tuple[int, str, bytes]:
        if route == "GET /metrics":
            from .metrics import multiprocess_metrics

            return 200, "text/plain; version=0.0.4", multiprocess_metrics()
        if route == "GET /status":
            return json_reply(200, self.status())
        if route == "GET /stats":
            return json_reply(200, await self.stats(query.get("reset") == "1"))
        if route in ("POST /state", "POST /mode"):
            try:
                if route == "POST /mode":
                    fixed = mode_request(body)
                    await self._broadcast({"op": "mode", "fixed_source": fixed})
                    return json_reply(200, {"fixed_source": fixed})
                target, state = state_request(body)
                return json_reply(200, await self.set_state(target, state))
            except (ValueError, UnknownIdError) as exc:
                return json_reply(400, {"error": str(exc)})
        return json_reply(404, {"error": f"no route {route}"})

    # ---- stop --------------------------------------------------------------------------------
    async def stop(self) -> None:
        self._stopping = True
        if hasattr(self, "http"):
            self.http.close()
        for link in list(self.links.values()):
            with contextlib.suppress(Exception):
                link.writer.close()
        for proc in self.procs.values():
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
        for proc in self.procs.values():
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except asyncio.TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if self.provider is not None:
            self.provider.close()
        with contextlib.suppress(Exception):
            self.journal.close()

    def _log(self, text: str) -> None:
        if not self.quiet:
            print(text, file=sys.stderr, flush=True)


def run_up(cfg: ProxyConfig, *, run_dir: str | None, control: str | None) -> None:
    """Run until SIGINT/SIGTERM; print one ``ready`` line when every process serves."""
    from .edge import _use_uvloop

    _use_uvloop()
    sup = Supervisor(cfg, run_dir=run_dir, control=control)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        orphaned = loop.create_task(until_parent_exits())
        orphaned.add_done_callback(lambda _: stop.set())
        starting = loop.create_task(sup.start())
        stopping = loop.create_task(stop.wait())
        try:
            await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if starting.done():
                addr = starting.result()
                print(
                    f"ready control={format_hostport(addr)} run_dir={sup.run_dir} processes={len(sup.links)} "
                    f"engine={cfg.engine}",
                    flush=True,
                )
                await stopping
            else:  # a signal during start-up: stop what has started
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await starting
        finally:
            orphaned.cancel()
            await sup.stop()

    asyncio.run(main())
