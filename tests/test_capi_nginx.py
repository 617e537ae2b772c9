"""A real proxy embeds libaegisfwd: Debian's nginx with lua-nginx-module runs examples/nginx/ on loopback.

nginx decides every request through the C ABI (LuaJIT FFI) and binds the origin connection to the
decided dedicated address (``proxy_bind $aegis_src``). The origin, the project's own
(``aegisfwd.proxy.origin``, as in the proxy tests), accepts only the dedicated stand-in addresses
(127.0.10.0/24 here) and journals, per accepted connection, the source address it saw and the flow
the request's path names; every one must be the address ``af.Engine`` decides for that flow,
and a pool that is UNAVAILABLE must be refused by nginx (503) without any connection to the origin.

nginx and its Lua module come from Debian (``.ci/run`` installs nginx and libnginx-mod-http-lua);
where they are missing the test skips and says so. Loopback only, bounded requests and time.
"""

from __future__ import annotations

import asyncio
import http.client
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typing_extensions import Self

import aegisfwd as af
from aegisfwd import capi
from aegisfwd.proxy.journal import read_journal

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "nginx"
LUA_MODULE = Path("/usr/lib/nginx/modules/ngx_http_lua_module.so")
REQUESTS = 3000
SELF = "lhr01-s001"  # the server this nginx plays

TOPOLOGY = """
locations:
  - {id: LHR, name: London, lat: 51.47, lon: -0.45}
  - {id: AMS, name: Amsterdam, lat: 52.31, lon: 4.76}
  - {id: FRA, name: Frankfurt, lat: 50.03, lon: 8.57}
data_centers:
  - {id: LHR01, location: LHR, servers: [lhr01-s001, lhr01-s002]}
  - {id: LHR02, location: LHR, servers: [lhr02-s001]}
  - {id: AMS01, location: AMS, servers: [ams01-s001, ams01-s002]}
  - {id: FRA01, location: FRA, servers: [fra01-s001]}
server_states: {fra01-s001: down}
pools:
  - id: local
    ips:
      - {address: 127.0.10.1, holders: [lhr01-s001]}
      - {address: 127.0.10.2, holders: [lhr01-s001, AMS]}
  - id: same-dc
    ips:
      - {address: 127.0.10.3, holders: [lhr01-s002]}
  - id: same-location
    ips:
      - {address: 127.0.10.4, holders: [LHR02]}
  - id: remote
    ips:
      - {address: 127.0.10.5, holders: [AMS01]}
      - {address: 127.0.10.6, holders: [ams01-s002]}
      - {address: 127.0.10.7, holders: [AMS, FRA]}
  - id: mixed
    ips:
      - {address: 127.0.10.8, holders: [lhr01-s002, FRA]}
      - {address: 127.0.10.9, holders: [LHR02]}
  - id: dark
    ips:
      - {address: 127.0.10.20, holders: [FRA01]}
zones: {local.example: local, remote.example: remote, dark.example: dark}
"""
ALLOWED = {f"127.0.10.{k}" for k in range(1, 20)}  # the dedicated stand-ins (.20 is never up)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OriginThread:
    """The project's test origin (``aegisfwd.proxy.origin.Origin``, the one the proxy tests use: it
    admits only allowlisted peers and journals every peer it saw) on its own event loop in a thread.
    Requests name their flow in the path (``GET /flow/N``), which the origin journals as the
    connection's tag."""

    def __init__(self, journal: Path) -> None:
        from aegisfwd.proxy.origin import Origin

        self.journal = journal
        self.origin = Origin(["127.0.0.1:0"], [f"{a}/32" for a in sorted(ALLOWED)], str(journal))
        self.port = 0
        self._seen = 0  # journal records before this index belong to earlier batches
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        assert self._ready.wait(10), "origin did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self.port = self._loop.run_until_complete(self.origin.start())[0][1]
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self.origin.stop())
        self._loop.close()  # its self-pipe sockets too: strict pytest turns the leak into an error

    def start_batch(self) -> None:
        self._seen = len(read_journal(self.journal))

    def accepted(self) -> list[tuple[str, int | None]]:
        """(peer address, flow named by the request path) of each connection admitted this batch."""
        out = []
        for rec in read_journal(self.journal)[self._seen :]:
            if rec.get("event") == "tag":
                match = re.match(r"GET /flow/(\d+) ", rec.get("tag") or "")
                out.append((rec["peer"], int(match.group(1)) if match else None))
        return out

    def refused(self) -> list[str]:
        return [r["peer"] for r in read_journal(self.journal)[self._seen :] if r.get("accepted") is False]


@pytest.fixture(scope="module")
def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found is None or not LUA_MODULE.exists():
        pytest.skip(
            "nginx with lua-nginx-module is not installed (Debian: apt-get install nginx "
            "libnginx-mod-http-lua; .ci/run does this): the real-proxy test cannot run"
        )
    return found


@pytest.fixture(scope="module")
def setup(
    tmp_path_factory: pytest.TempPathFactory, nginx_binary: str
) -> Iterator[tuple[af.Engine, OriginThread, int, int, Path]]:
    prefix = tmp_path_factory.mktemp("nginx")
    topo_path = prefix / "topology.yaml"
    topo_path.write_text(TOPOLOGY)
    compiled = prefix / "edge.aegc"
    af.load_topology(topo_path).compile().save(compiled)
    engine = af.Engine(af.load_compiled(compiled))
    port, admin_port = _free_port(), _free_port()
    with OriginThread(prefix / "origin.jsonl") as origin:
        values = {
            "USER_DIRECTIVE": "user root;" if os.geteuid() == 0 else "",
            "WORKERS": "2",
            "PREFIX": str(prefix),
            "MODULE_DIR": str(EXAMPLE),
            "AEGISFWD_LIBRARY": str(capi.library_path()),
            "AEGISFWD_FILE": str(compiled),
            "AEGISFWD_SERVER": SELF,
            "LISTEN": f"127.0.0.1:{port}",
            "ADMIN_LISTEN": f"127.0.0.1:{admin_port}",
            "ORIGIN": f"127.0.0.1:{origin.port}",
        }
        # ${NAME} placeholders only: nginx's own $variables stay as they are.
        conf = re.sub(r"\$\{([A-Z_]+)\}", lambda m: values[m.group(1)], (EXAMPLE / "nginx.conf").read_text())
        (prefix / "nginx.conf").write_text(conf)
        proc = subprocess.Popen(
            [nginx_binary, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 15
            while True:
                if proc.poll() is not None:
                    log = (prefix / "error.log").read_text() if (prefix / "error.log").exists() else ""
                    pytest.fail(f"nginx exited: {proc.stderr.read().decode() if proc.stderr else ''}\n{log}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        pytest.fail("nginx did not start listening within 15 s")
                    time.sleep(0.05)
            yield engine, origin, port, admin_port, prefix
        finally:
            proc.send_signal(signal.SIGQUIT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            if proc.stderr is not None:
                proc.stderr.close()


def _get(conn: http.client.HTTPConnection, headers: dict[str, str], path: str = "/") -> tuple[int, str, str]:
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    body = resp.read().decode(errors="replace")
    return resp.status, resp.getheader("X-Aegis-Tier", ""), body


def _send(
    engine: af.Engine, origin: OriginThread, port: int, n: int, seed: int, fresh: bool
) -> dict[str, int]:
    """``n`` requests over every pool (by pool id or zone); each answer and each origin connection
    checked against ``engine``. ``fresh``: a new client connection per request (reaches every worker)."""
    rng = random.Random(seed)
    pools = list(engine.pools)
    zones = {"local": "local.example", "remote": "remote.example", "dark": "dark.example"}
    expected_sources: dict[int, str] = {}
    tiers: dict[str, int] = {}
    origin.start_batch()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for k in range(n):
            pool = pools[k % len(pools)]
            flow = rng.getrandbits(64)
            headers = {"X-Aegis-Flow": str(flow)}
            if pool in zones and k % 2:
                headers["Host"] = zones[pool]  # the zone names the pool
            else:
                headers["X-Aegis-Pool"] = pool
            if fresh:
                headers["Connection"] = "close"
            want = engine.decide(SELF, pool, 4, flow)
            status, tier, body = _get(conn, headers, f"/flow/{flow}")
            if fresh:
                conn.close()
            assert tier == want.tier.name, (pool, flow, tier, want)
            if want.ip is None:
                assert status == 503, (pool, flow, status, body)  # refused, never connected
            else:
                assert status == 200, (pool, flow, status, body)
                assert f"seen from {want.ip}:" in body, body  # the origin saw the decided source
                expected_sources[flow] = want.ip
            tiers[tier] = tiers.get(tier, 0) + 1
    finally:
        conn.close()
    deadline = time.monotonic() + 5  # the origin's last handler may still be recording
    while len(origin.accepted()) < len(expected_sources) and time.monotonic() < deadline:
        time.sleep(0.01)
    # Every connection the origin accepted came from the decided address of its flow, and there is
    # exactly one per request that was not UNAVAILABLE: UNAVAILABLE made nginx refuse, not connect.
    accepted = origin.accepted()
    assert len(accepted) == len(expected_sources)
    assert all(flow is not None and expected_sources[flow] == peer for peer, flow in accepted)
    assert origin.refused() == []
    return tiers


def test_nginx_egresses_from_the_decided_address(setup):
    engine, origin, port, _, prefix = setup
    tiers = _send(engine, origin, port, REQUESTS, seed=20261205, fresh=False)
    assert {"LOCAL", "SAME_DC", "SAME_LOCATION", "REMOTE", "UNAVAILABLE"} <= set(tiers), tiers
    log = (prefix / "error.log").read_text()
    assert "[error]" not in log and "[alert]" not in log, log[-2000:]


def test_without_a_flow_header_the_key_is_the_client_address_and_port(setup):
    """No X-Aegis-Flow: nginx keys the decision by the client's address and source port exactly as
    `aegisfwd evaluate` keys a log row (flow_key_py), so each answer is af.Engine's for that key."""
    from aegisfwd._flowkey import flow_key_py

    engine, _, port, _, _ = setup
    seen = set()
    for k in range(60):
        pool = engine.pools[k % len(engine.pools)]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.connect()
            client = conn.sock.getsockname()
            status, tier, body = _get(conn, {"X-Aegis-Pool": pool, "Connection": "close"})
        finally:
            conn.close()
        want = engine.decide(SELF, pool, 4, flow_key_py(client[0], client[1], None))
        assert tier == want.tier.name, (pool, client, tier, want)
        if want.ip is None:
            assert status == 503, (pool, client, status)
        else:
            assert status == 200 and f"seen from {want.ip}:" in body, (pool, client, status, body)
        seen.add(tier)
    assert len(seen) >= 3, seen  # the keys spread over the tiers the pools give


def _post_state(admin_port: int, target: str, state: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=10)
    try:
        conn.request("POST", f"/aegisfwd/state?target={target}&state={state}")
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def test_nginx_applies_state_changes_in_every_worker(setup):
    """A state change posted to one worker reaches all of them and changes decisions as af.Engine's
    set_state does: AMS down makes the 'remote' pool UNAVAILABLE (its other holder, FRA, is down)."""
    engine, origin, port, admin_port, _ = setup
    try:
        assert _post_state(admin_port, "AMS", "down") == (200, "ok\n")
        engine.set_state("AMS", "down")
        time.sleep(0.3)  # the other worker's timer applies the shared states (every 50 ms)
        tiers = _send(engine, origin, port, 300, seed=1, fresh=True)
        assert engine.decide(SELF, "remote", 4, 1).tier.name == "UNAVAILABLE"
        assert "REMOTE" not in tiers
        assert _post_state(admin_port, "lhr01-s002", "draining") == (200, "ok\n")
        engine.set_state("lhr01-s002", "draining")
        time.sleep(0.3)
        _send(engine, origin, port, 300, seed=2, fresh=True)
    finally:
        assert _post_state(admin_port, "AMS", "up") == (200, "ok\n")
        assert _post_state(admin_port, "lhr01-s002", "up") == (200, "ok\n")
        engine.set_state("AMS", "up")
        engine.set_state("lhr01-s002", "up")
        time.sleep(0.3)
    tiers = _send(engine, origin, port, 300, seed=3, fresh=True)
    assert "REMOTE" in tiers
    assert _post_state(admin_port, "nowhere", "down")[0] == 400
    assert _post_state(admin_port, "AMS", "sideways")[0] == 400


def test_nginx_refuses_unknown_pools(setup):
    _, _, port, _, _ = setup
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        status, tier, _ = _get(conn, {"X-Aegis-Pool": "no-such-pool", "X-Aegis-Flow": "7"})
    finally:
        conn.close()
    assert (status, tier) == (421, "INVALID")


def test_origin_refuses_a_connection_from_a_non_dedicated_address(setup):
    """The origin really enforces its allowlist: a plain connection from 127.0.0.1 gets nothing."""
    _, origin, _, _, _ = setup
    with socket.create_connection(("127.0.0.1", origin.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            answer = s.recv(100)
        except ConnectionResetError:  # closed with our request unread: a reset, no answer either
            answer = b""
        assert answer == b""
    assert "127.0.0.1" in origin.refused()


def test_lua_module_declares_the_headers_abi_version():
    header = (capi.include_dir() / "aegisfwd.h").read_text()
    lua = (EXAMPLE / "aegisfwd.lua").read_text()
    abi = re.search(r"#define AEGISFWD_ABI_VERSION (\d+)", header).group(1)
    assert re.search(r"ABI_VERSION = (\d+)", lua).group(1) == abi
