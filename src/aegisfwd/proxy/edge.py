"""One edge process of one edge server: the client listener and the forwarding listener.

Client side (``CONNECT zone:port``): read the head (bounded, with a timeout), refuse what is wrong
with one reason code, take the flow key from the client's address and port
(``aegisfwd._flowkey.client_flow_key``, the key the log evaluation uses), decide once, then

* LOCAL: connect to the origin from the stand-in of the chosen dedicated IP
  (``IP_BIND_ADDRESS_NO_PORT``);
* SAME_DC / SAME_LOCATION / REMOTE: connect to the egress server's forwarding listener, send a
  PROXY v2 header with the client's address and TLVs (pool, origin, egress IP, ingress, flow), and
  wait for its one-line answer (``OK <src> <port>`` or ``ERR <reason>``);
* UNAVAILABLE: ``503`` with the reason; nothing is connected.

Forwarding side: parse the PROXY header (bounded, timeout), then re-check everything against this
process's engine and state before egressing -- this server is up, holds the IP, the IP is the
pool's, the origin is one configured for the pool, and the engine, asked the same question, answers
this server and this IP -- refusing otherwise. An edge never egresses from an address its server
does not hold.

The ingress server's own state: ``draining`` refuses new clients (established ones continue);
``down`` also closes every connection this process relays, as ingress or egress.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import json
import os
import socket
import struct
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._flowkey import client_flow_key
from ..compiled import CompiledTopology
from ..topology import STATE_NAMES
from . import answer, proxyv2
from . import metrics as m
from .config import ProxyConfig, format_hostport, parse_hostport, stand_in_table
from .connect import ESTABLISHED, MAX_HEAD, ConnectError, parse_connect, refusal
from .journal import Journal
from .source import connect_failure_reason, plain_socket, source_socket
from .topology_view import TopologyView, apply_state

TIER_NAMES = ("LOCAL", "SAME_DC", "SAME_LOCATION", "REMOTE", "UNAVAILABLE")
LOCAL, UNAVAILABLE = 0, 4
_RING = 1 << 20  # decision costs kept for exact percentiles (the histogram has buckets)


@dataclass(frozen=True)
class Zone:
    name: str
    pool: int
    family: int
    origin: tuple[str, int]
    ports: frozenset[int]


class Refused(Exception):
    def __init__(self, status: int, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.status, self.reason, self.detail = status, reason, detail


class EdgeProcess:
    def __init__(
        self,
        cfg: ProxyConfig,
        compiled: CompiledTopology,
        server_id: str,
        worker: int,
        engine: Any,
        *,
        journal: Journal | None = None,
        fan_out: bool = True,
    ) -> None:
        self.cfg = cfg
        self.view = TopologyView(compiled)
        self.server_id = server_id
        self.server = self.view.server_index[server_id]
        self.worker = worker
        self.engine = engine
        self.decide = engine.decide_indices
        self.fan_out = fan_out
        self.journal = journal or Journal(None)
        self.states = self.view.initial_states.copy()
        self.epoch = 0
        self.stand_in = stand_in_table(cfg, compiled)
        self.zones = {
            name: Zone(name, self.view.zone_pool[name], zc.family, zc.origin_addr, frozenset(zc.ports))
            for name, zc in cfg.zones.items()
        }
        self.pool_origins: dict[int, set[str]] = {}
        for z in self.zones.values():
            self.pool_origins.setdefault(z.pool, set()).add(format_hostport(z.origin))
        self.forward_addr = {
            self.view.server_index[sid]: parse_hostport(sc.forward) for sid, sc in cfg.servers.items()
        }
        sc = cfg.servers[server_id]
        self.listen_addr = parse_hostport(sc.listen)
        self.forward_listen = parse_hostport(sc.forward)
        r = cfg.source_port_range
        self.port_range = (r[0], r[1]) if r else None
        self.t = cfg.timeouts
        self.fixed_source: str | None = None
        self.costs = array.array("q")
        self.bind_costs = array.array("q")
        self.relays: set[asyncio.Task[Any]] = set()
        self._n = 0
        self._servers: list[asyncio.Server] = []
        self._label = {"server": server_id}
        self.m_refusals: dict[str, Any] = {}  # reason -> bound counter child
        self.m_tiers = [m.CONNECTIONS.labels(server=server_id, tier=t) for t in TIER_NAMES]
        self.m_epoch = m.STATE_EPOCH.labels(server=server_id)

    # ---- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        self._servers.append(
            await asyncio.start_server(
                self._client,
                self.listen_addr[0],
                self.listen_addr[1],
                reuse_port=True,
                limit=MAX_HEAD,
                backlog=1024,
            )
        )
        self._servers.append(
            await asyncio.start_server(
                self._forwarded,
                self.forward_listen[0],
                self.forward_listen[1],
                reuse_port=True,
                limit=proxyv2.MAX_LENGTH,
                backlog=1024,
            )
        )

    @property
    def addresses(self) -> tuple[tuple[str, int], tuple[str, int]]:
        a = self._servers[0].sockets[0].getsockname()
        b = self._servers[1].sockets[0].getsockname()
        return (a[0], a[1]), (b[0], b[1])

    async def stop(self) -> None:
        for s in self._servers:
            s.close()
        for t in list(self.relays):
            t.cancel()
        for s in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(s.wait_closed(), 2)
        self.journal.close()

    # ---- state -------------------------------------------------------------------------------
    def apply(self, epoch: int, target: str, state: str) -> None:
        """A state change from the control plane (the engine too when each process owns one)."""
        if self.fan_out:
            self.engine.set_state(target, state)
        apply_state(self.states, self.view, target, state)
        self.epoch = epoch
        self.m_epoch.set(epoch)
        if self.states[self.server] == 2:
            for t in list(self.relays):  # down: established connections through this server end
                t.cancel()

    def load_states(self, epoch: int, states: list[int]) -> None:
        codes = np.asarray(states, dtype=np.uint8)
        if self.fan_out:
            self.engine.set_states(codes)
        self.states[:] = codes
        self.epoch = epoch
        self.m_epoch.set(epoch)

    def _refuse_count(self, reason: str) -> None:
        c = self.m_refusals.get(reason)
        if c is None:
            c = self.m_refusals[reason] = m.REFUSALS.labels(server=self.server_id, reason=reason)
        c.inc()

    # ---- client side -------------------------------------------------------------------------
    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._n += 1
        cid = f"{self.server_id}/{self.worker}/{os.getpid()}/{self._n}"
        peer = writer.get_extra_info("peername") or ("", 0)
        rec: dict[str, Any] = {
            "kind": "ingress",
            "id": cid,
            "server": self.server_id,
            "t": time.time(),
            "client": peer[0],
            "cport": peer[1],
        }
        await self._run_connection(
            self._serve_client(reader, writer, rec),
            writer,
            rec,
            lambda r: refusal(r.status, r.reason, r.detail) if r.status else None,
            client_side=True,
        )

    async def _run_connection(
        self,
        serve: Coroutine[Any, Any, None],
        writer: asyncio.StreamWriter,
        rec: dict[str, Any],
        reply: Callable[[Refused], bytes | None],
        *,
        client_side: bool,
    ) -> None:
        """One connection's life on either listener: run ``serve``; a refusal is counted and answered
        with ``reply`` (nothing when it gives ``None``); any other error is an ``internal-error``,
        never the process's end; the socket is closed (completed) or reset, and the record journaled."""
        try:
            await serve
        except Refused as r:
            rec.update(outcome="refused", reason=r.reason)
            if client_side:  # the client's refusal carries an HTTP status; the forwarding hop's does not
                rec["status"] = r.status
            self._refuse_count(r.reason)
            data = reply(r)
            if data is not None:
                with contextlib.suppress(Exception):
                    writer.write(data)
                    await asyncio.wait_for(writer.drain(), self.t.handshake)
        except asyncio.CancelledError:
            rec.setdefault("outcome", "closed-down")
        except Exception as exc:  # noqa: BLE001 - one connection never takes the process down
            rec.update(outcome="error", reason=f"internal-error: {type(exc).__name__}: {exc}")
            self._refuse_count("internal-error")
        finally:
            writer.transport.abort() if rec.get("outcome") != "completed" else writer.close()
            self.journal.write(rec)

    async def _read_head(self, reader: asyncio.StreamReader) -> bytes:
        try:
            return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.t.handshake)
        except asyncio.IncompleteReadError:
            raise Refused(0, "client-disconnected", "closed before the request head ended") from None
        except asyncio.LimitOverrunError:
            raise Refused(431, "head-too-large", f"request head over {MAX_HEAD} bytes") from None
        except asyncio.TimeoutError:
            raise Refused(408, "handshake-timeout", "no complete request head in time") from None
        except (ConnectionError, OSError):
            raise Refused(0, "client-disconnected", "connection reset during the request head") from None

    async def _serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rec: dict[str, Any]
    ) -> None:
        head = await self._read_head(reader)
        try:
            req = parse_connect(head)
        except ConnectError as exc:
            raise Refused(exc.status, exc.reason, str(exc)) from None
        zone = self.zones.get(req.host)
        rec["zone"] = req.host
        if req.request_id is not None:
            rec["rid"] = req.request_id
        if zone is None:
            raise Refused(404, "unknown-zone", f"no zone {req.host!r} here")
        if req.port not in zone.ports:
            raise Refused(403, "port-not-allowed", f"port {req.port} is not served for {zone.name}")
        own = int(self.states[self.server])
        if own != 0:
            raise Refused(
                503, f"ingress-{STATE_NAMES[own]}", f"server {self.server_id} is {STATE_NAMES[own]}"
            )
        sock: socket.socket | None = None
        fixed = self.fixed_source
        # Timed: the decision (the flow key and the engine's answer), then the source socket
        # (create, options, bind) -- the two things a proxy adds per connection to egress from a
        # chosen address.
        t0 = time.perf_counter_ns()
        flow = client_flow_key(rec["client"], rec["cport"]) or 0
        if fixed is None:
            tier, egress, _dc, _loc, ip, _dist = self.decide(self.server, zone.pool, zone.family, flow)
        else:
            tier, egress, ip = LOCAL, self.server, -1
        t1 = time.perf_counter_ns()
        rec.update(pool=self.view.pools[zone.pool], family=zone.family, flow=f"{flow:016x}", epoch=self.epoch)
        try:
            if tier == LOCAL:
                stand = fixed if fixed is not None else self.stand_in[ip]
                if stand is not None:
                    sock = source_socket(stand, self.port_range)
        except OSError as exc:
            raise Refused(503, "source-bind-failed", str(exc)) from None
        t2 = time.perf_counter_ns()
        cost, bind_cost = t1 - t0, t2 - t1
        if fixed is None:  # (the fixed-source benchmark mode makes no decision to time)
            if len(self.costs) < _RING:
                self.costs.append(cost)
            m.DECISION.observe(cost * 1e-9)
        if sock is not None:
            if len(self.bind_costs) < _RING:
                self.bind_costs.append(bind_cost)
            m.BIND.observe(bind_cost * 1e-9)
        if tier > UNAVAILABLE:
            raise Refused(502, "invalid-decision", "the engine rejected the request")
        self.m_tiers[tier].inc()
        rec.update(tier=TIER_NAMES[tier], decide_ns=cost, bind_ns=bind_cost if sock is not None else None)
        if tier == UNAVAILABLE:
            raise Refused(
                503, "unavailable", f"no up server holds an IP of pool {rec['pool']} for IPv{zone.family}"
            )
        rec.update(egress=self.view.servers[egress], egress_ip=self.view.ips[ip] if ip >= 0 else None)
        origin = zone.origin
        if tier == LOCAL:
            if sock is None:
                raise Refused(503, "no-stand-in", f"dedicated IP {rec['egress_ip']} has no stand-in")
            o_reader, o_writer = await self._connect(sock, origin, "origin")
            lp = o_writer.get_extra_info("sockname")
            rec.update(src=lp[0], sport=lp[1])
        else:
            o_reader, o_writer = await self._forward(rec, zone, egress, ip, flow)
        writer.write(ESTABLISHED)
        stand_ip = rec["src"]
        gauge = m.ACTIVE.labels(egress_ip=rec["egress_ip"] or stand_ip, origin=format_hostport(origin))
        gauge.inc()
        try:
            rec["outcome"] = await self._relay(reader, writer, o_reader, o_writer)
        finally:
            gauge.dec()

    async def _connect(
        self, sock: socket.socket, addr: tuple[str, int], what: str
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.sock_connect(sock, addr), self.t.connect)
            return await asyncio.open_connection(sock=sock, limit=1 << 16)
        except (OSError, asyncio.TimeoutError) as exc:
            sock.close()
            reason = connect_failure_reason(exc, what)
            raise Refused(503 if reason == "source-ports-exhausted" else 502, reason, str(exc)) from None

    async def _forward(
        self, rec: dict[str, Any], zone: Zone, egress: int, ip: int, flow: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        target = self.forward_addr.get(egress)
        if target is None:
            raise Refused(502, "egress-not-configured", f"server {rec['egress']} runs no proxy here")
        fam = 6 if ":" in target[0] else 4
        r, w = await self._connect(plain_socket(fam), target, "egress")
        header = proxyv2.encode(
            (rec["client"], rec["cport"]),
            self.listen_addr,
            {
                proxyv2.TLV_POOL: self.view.pools[zone.pool],
                proxyv2.TLV_ORIGIN: format_hostport(zone.origin),
                proxyv2.TLV_EGRESS_IP: self.view.ips[ip],
                proxyv2.TLV_INGRESS: self.server_id,
                proxyv2.TLV_FLOW: flow,
                proxyv2.TLV_CONN_ID: rec["id"],
            },
        )
        try:
            w.write(header)
            line = await asyncio.wait_for(r.readuntil(b"\n"), self.t.handshake)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError) as exc:
            w.transport.abort()
            raise Refused(
                502, "egress-lost", f"egress {rec['egress']} gave no answer ({type(exc).__name__})"
            ) from None
        try:
            if len(line) > answer.MAX_ANSWER:
                raise answer.BadAnswer(f"answer line of {len(line)} bytes")
            ans = answer.parse_answer(line)
        except answer.BadAnswer as exc:
            w.transport.abort()
            raise Refused(502, "bad-egress-answer", f"egress {rec['egress']}: {exc}") from None
        if ans.src is not None:
            rec.update(src=ans.src, sport=ans.port)
            return r, w
        w.transport.abort()
        assert ans.reason is not None
        reason = ans.reason if ans.reason.startswith("egress-") else f"egress-{ans.reason}"
        raise Refused(503, reason, f"egress {rec['egress']} refused")

    async def _relay(
        self,
        a_r: asyncio.StreamReader,
        a_w: asyncio.StreamWriter,
        b_r: asyncio.StreamReader,
        b_w: asyncio.StreamWriter,
    ) -> str:
        """Copy both ways until both ends closed; 'completed', 'broken', 'idle-timeout' or
        'closed-down' (this server went down)."""
        idle = self.t.idle

        async def pump(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> str:
            try:
                while True:
                    data = await asyncio.wait_for(r.read(1 << 16), idle)
                    if not data:
                        if w.can_write_eof():
                            w.write_eof()
                        return "completed"
                    w.write(data)
                    await asyncio.wait_for(w.drain(), idle)
            except asyncio.TimeoutError:
                return "idle-timeout"
            except (OSError, RuntimeError):
                return "broken"

        task = asyncio.current_task()
        assert task is not None
        self.relays.add(task)
        pumps = [asyncio.ensure_future(pump(a_r, b_w)), asyncio.ensure_future(pump(b_r, a_w))]
        try:
            await asyncio.wait(pumps)
            results = [p.result() for p in pumps]
        except asyncio.CancelledError:
            if all(p.done() and p.result() == "completed" for p in pumps):
                results = ["completed", "completed"]  # both ends had finished: nothing was cut
            else:
                for p in pumps:
                    p.cancel()
                _reset(a_w)
                _reset(b_w)
                return "closed-down"
        finally:
            self.relays.discard(task)
        for out in ("broken", "idle-timeout"):
            if out in results:
                _reset(a_w)
                _reset(b_w)
                return out
        b_w.close()
        return "completed"

    # ---- forwarding side ---------------------------------------------------------------------
    async def _forwarded(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        rec: dict[str, Any] = {"kind": "egress", "server": self.server_id, "t": time.time()}
        await self._run_connection(
            self._serve_forwarded(reader, writer, rec),
            writer,
            rec,
            lambda r: answer.err(r.reason),
            client_side=False,
        )

    async def _read_proxy_header(self, reader: asyncio.StreamReader) -> proxyv2.ProxyHeader:
        try:
            fixed = await asyncio.wait_for(reader.readexactly(proxyv2.HEADER_FIXED), self.t.handshake)
            n = proxyv2.parse_fixed(fixed)
            body = await asyncio.wait_for(reader.readexactly(n), self.t.handshake)
            return proxyv2.parse(fixed, body)
        except proxyv2.ProxyHeaderError as exc:
            raise Refused(400, exc.reason, str(exc)) from None
        except asyncio.IncompleteReadError:
            raise Refused(0, "truncated-proxy-header", "connection closed inside the PROXY header") from None
        except asyncio.TimeoutError:
            raise Refused(0, "handshake-timeout", "no complete PROXY header in time") from None
        except (ConnectionError, OSError):
            raise Refused(0, "client-disconnected", "reset inside the PROXY header") from None

    async def _serve_forwarded(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rec: dict[str, Any]
    ) -> None:
        """``rec`` is journaled by the caller; once connected it holds only the end record."""
        h = await self._read_proxy_header(reader)
        pool_id = h.text(proxyv2.TLV_POOL)
        origin_text = h.text(proxyv2.TLV_ORIGIN)
        ip_text = h.text(proxyv2.TLV_EGRESS_IP)
        ingress_id = h.text(proxyv2.TLV_INGRESS)
        flow_raw = h.tlvs.get(proxyv2.TLV_FLOW)
        rec.update(
            id=h.text(proxyv2.TLV_CONN_ID),
            pool=pool_id,
            egress_ip=ip_text,
            ingress=ingress_id,
            origin=origin_text,
            client=h.src[0],
            cport=h.src[1],
            epoch=self.epoch,
        )
        if None in (pool_id, origin_text, ip_text, ingress_id, flow_raw):
            raise Refused(400, "missing-tlv", "pool, origin, egress IP, ingress and flow TLVs are required")
        assert (
            pool_id is not None and origin_text is not None and ip_text is not None and flow_raw is not None
        )
        pool = self.view.pool_index.get(pool_id)
        ip = self.view.ip_index.get(ip_text)
        ingress = self.view.server_index.get(ingress_id or "")
        if pool is None or ip is None or ingress is None:
            raise Refused(400, "unknown-tlv-id", "pool, egress IP or ingress server is not in the topology")
        if self.view.ip_pool[ip] != pool:
            raise Refused(403, "ip-not-in-pool", f"{ip_text} is not an IP of pool {pool_id}")
        own = int(self.states[self.server])
        if own != 0:
            raise Refused(503, f"egress-{STATE_NAMES[own]}", f"server {self.server_id} is {STATE_NAMES[own]}")
        if not self.view.holds(self.server, ip):
            raise Refused(403, "not-holder", f"server {self.server_id} does not hold {ip_text}")
        if origin_text not in self.pool_origins.get(pool, ()):
            raise Refused(403, "origin-not-allowed", f"{origin_text} is not an origin of pool {pool_id}")
        family = self.view.ip_family[ip]
        flow = int.from_bytes(flow_raw, "big")
        tier, egress, _dc, _loc, ip2, _dist = self.decide(ingress, pool, family, flow)
        if egress != self.server or ip2 != ip:
            raise Refused(409, "decision-mismatch", "the engine here does not choose this server and IP")
        stand = self.stand_in[ip]
        if stand is None:
            raise Refused(503, "no-stand-in", f"{ip_text} has no stand-in")
        origin = parse_hostport(origin_text)
        try:
            sock = source_socket(stand, self.port_range)
        except OSError as exc:
            raise Refused(503, "source-bind-failed", str(exc)) from None
        o_reader, o_writer = await self._connect(sock, origin, "origin")
        lp = o_writer.get_extra_info("sockname")
        rec.update(tier=TIER_NAMES[tier], src=lp[0], sport=lp[1], outcome="connected")
        # Journaled now, not at the end: what was checked before egressing must survive a SIGKILL.
        self.journal.write(rec)
        conn_id = rec["id"]
        rec.clear()
        rec.update(kind="egress-end", id=conn_id, server=self.server_id)
        writer.write(answer.ok(lp[0], lp[1]))
        gauge = m.ACTIVE.labels(egress_ip=ip_text, origin=origin_text)
        gauge.inc()
        try:
            rec["outcome"] = await self._relay(reader, writer, o_reader, o_writer)
        finally:
            gauge.dec()

    # ---- statistics --------------------------------------------------------------------------
    def stats(self, reset: bool = False) -> dict[str, Any]:
        """Exact percentiles of this process's decision and source-bind costs (ns)."""
        out: dict[str, Any] = {
            "server": self.server_id,
            "worker": self.worker,
            "pid": os.getpid(),
            "epoch": self.epoch,
        }
        for name, buf in (("decision", self.costs), ("bind", self.bind_costs)):
            c = np.frombuffer(buf, dtype=np.int64) if len(buf) else np.zeros(0, np.int64)
            out[f"{name}_n"] = int(c.size)
            if c.size:
                p = np.percentile(c, [50, 90, 99, 99.9])
                out[name] = {
                    "p50_ns": float(p[0]),
                    "p90_ns": float(p[1]),
                    "p99_ns": float(p[2]),
                    "p999_ns": float(p[3]),
                    "max_ns": int(c.max()),
                }
        if reset:
            self.costs = array.array("q")
            self.bind_costs = array.array("q")
        return out


def _reset(w: asyncio.StreamWriter) -> None:
    """Close with a RST (SO_LINGER 0), so the peer sees the tunnel cut, not a clean end of data."""
    sock = w.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    w.transport.abort()


# ---- the process: engine, control link, event loop ------------------------------------------------
async def _control_link(
    edge: EdgeProcess, path: str, hello: dict[str, Any], ready: asyncio.Event, engine_holder: dict[str, Any]
) -> None:
    """Talk to the supervisor over its Unix socket: hello, initial states, then commands. The
    process ends when the supervisor goes away."""
    reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(path, limit=1 << 24), 10)
    writer.write((json.dumps(hello) + "\n").encode())
    while True:
        line = await reader.readline()
        if not line:
            return
        msg = json.loads(line)
        op = msg.get("op")
        reply: dict[str, Any] = {"op": op, "seq": msg.get("seq")}
        if op == "init":
            edge.load_states(int(msg["epoch"]), msg["states"])
            await edge.start()
            ready.set()
            (a, b) = edge.addresses
            reply.update(listen=list(a), forward=list(b), pid=os.getpid())
        elif op == "state":
            edge.apply(int(msg["epoch"]), msg["target"], msg["state"])
            reply.update(epoch=edge.epoch, t_applied=time.monotonic_ns(), pid=os.getpid())
        elif op == "stats":
            reply.update(edge.stats(bool(msg.get("reset"))))
        elif op == "mode":
            edge.fixed_source = msg.get("fixed_source")
        elif op == "stop":
            return
        writer.write((json.dumps(reply) + "\n").encode())


def run_edge_process(
    cfg: ProxyConfig,
    compiled_path: str,
    server_id: str,
    worker: int,
    *,
    control: str | None,
    journal: str | None,
    shm_name: str | None,
) -> None:
    """Entry of an edge process (``aegisfwd proxy edge``): build the engine, then serve until the
    supervisor (when there is one) goes away, or until interrupted."""
    from ..compiled import load_compiled
    from .engines import make_provider

    _use_uvloop()
    compiled = load_compiled(compiled_path)
    provider = make_provider(cfg.engine, compiled)
    engine = provider.worker_engine(shm_name)
    edge = EdgeProcess(
        cfg, compiled, server_id, worker, engine, journal=Journal(journal), fan_out=provider.fan_out
    )

    async def main() -> None:
        if control is None:
            await edge.start()
            (a, b) = edge.addresses
            print(
                f"edge {server_id} listening on {format_hostport(a)} (clients), {format_hostport(b)} (forwarding)",
                flush=True,
            )
            await asyncio.Event().wait()
            return
        ready = asyncio.Event()
        hello = {"op": "hello", "server": server_id, "worker": worker, "pid": os.getpid()}
        try:
            await _control_link(edge, control, hello, ready, {})
        finally:
            await edge.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    close = getattr(engine, "close", None)
    if close is not None and provider.mode == "shared":
        close()


def _use_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # the proxy runs on the default loop, only slower
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
