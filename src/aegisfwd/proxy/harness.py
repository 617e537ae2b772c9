"""Start and stop a whole loopback deployment: an origin and ``proxy up``, as separate processes.

Used by ``aegisfwd proxy demo``, the tests and the benchmarks. Every wait has a timeout, and
``stop`` terminates (then kills) what it started, so nothing outlives the caller.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from .control import request
from .journal import read_journal
from .lifetime import ENV_PARENT
from .scenario import demo_config, demo_topology, origin_allow, origins


class Deployment:
    def __init__(
        self,
        run_dir: str | Path,
        *,
        block: int,
        engine: str = "private",
        workers: dict[str, int] | None = None,
        source_port_range: tuple[int, int] | None = None,
        idle: float = 30.0,
    ) -> None:
        self.dir = Path(run_dir)
        self.block = block
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "topology.yaml").write_text(yaml.safe_dump(demo_topology(), sort_keys=False))
        self.config = demo_config(
            block,
            topology=str(self.dir / "topology.yaml"),
            engine=engine,
            workers=workers,
            source_port_range=source_port_range,
            idle=idle,
        )
        self.config_path = self.dir / "proxy.yaml"
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        self.control = self.config["control"]
        self.origin_log = self.dir / "origin.jsonl"
        self.up_dir = self.dir / "up"
        self.procs: list[subprocess.Popen[bytes]] = []

    def _spawn(self, args: list[str], log: str) -> subprocess.Popen[bytes]:
        out = open(self.dir / log, "ab")  # noqa: SIM115 - handed to the child
        env = dict(os.environ)
        env[ENV_PARENT] = str(os.getpid())  # they exit by themselves should this process be killed
        p = subprocess.Popen(
            [sys.executable, "-m", "aegisfwd.proxy.cli", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        out.close()
        self.procs.append(p)
        return p

    def start(self, timeout: float = 90.0) -> None:
        listen: list[str] = []
        for o in origins(self.block).values():
            listen += ["--listen", o]
        allow: list[str] = []
        for a in origin_allow(self.block):
            allow += ["--allow", a]
        self.origin = self._spawn(["origin", *listen, *allow, "--log", str(self.origin_log)], "origin.out")
        self.up = self._spawn(["up", str(self.config_path), "--run-dir", str(self.up_dir)], "up.out")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = (self.dir / "up.out").read_text(errors="replace") if (self.dir / "up.out").exists() else ""
            if "ready control=" in text and "origin listening" in (self.dir / "origin.out").read_text(
                errors="replace"
            ):
                return
            for p in (self.origin, self.up):
                if p.poll() is not None:
                    raise RuntimeError(
                        f"a process exited early:\n{text}\n"
                        + (self.dir / "origin.out").read_text(errors="replace")
                    )
            time.sleep(0.1)
        raise TimeoutError(f"deployment not ready after {timeout} s:\n{text}")

    # ---- control ---------------------------------------------------------------------------------
    def set_state(self, target: str, state: str) -> dict[str, Any]:
        return dict(request(self.control, "POST", "/state", {"target": target, "state": state}))

    def status(self) -> dict[str, Any]:
        return dict(request(self.control, "GET", "/status"))

    def stats(self, reset: bool = False) -> list[dict[str, Any]]:
        return list(request(self.control, "GET", "/stats" + ("?reset=1" if reset else "")))

    def metrics(self) -> str:
        return str(request(self.control, "GET", "/metrics"))

    def kill(self, server: str, worker: int = 0) -> int:
        """SIGKILL one edge process; its pid."""
        for p in self.status()["processes"]:
            if p["server"] == server and p["worker"] == worker:
                os.kill(p["pid"], signal.SIGKILL)
                return int(p["pid"])
        raise KeyError(f"no process {server}/{worker}")

    # ---- what happened ---------------------------------------------------------------------------
    def journals(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for f in sorted((self.up_dir / "journals").glob("*.jsonl")):
            out += read_journal(f)
        return out

    def control_log(self) -> list[dict[str, Any]]:
        return read_journal(self.up_dir / "control.jsonl")

    def origin_records(self) -> list[dict[str, Any]]:
        return read_journal(self.origin_log) if self.origin_log.exists() else []

    def stop(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
        # An edge process left behind by a killed supervisor ends when its control link closes.

    def __enter__(self) -> Deployment:  # noqa: PYI034
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, default=str)
