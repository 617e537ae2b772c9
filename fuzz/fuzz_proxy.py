"""Fuzz target: every byte the proxy (aegisfwd.proxy) reads off a socket.

The first byte picks what the rest is:

0. a PROXY protocol v2 header (``proxyv2.parse_fixed`` + ``proxyv2.parse``): a header or a
   ``ProxyHeaderError`` with one of its reason codes; a parsed header has valid addresses and ports,
   text TLVs that decode, an 8-byte flow TLV, and encodes back to a header that parses the same;
1. a client's ``CONNECT`` request head (``connect.parse_connect``): a request (lower-case zone of
   ``[a-z0-9._-]``, port in [1, 65535]) or a ``ConnectError`` whose refusal reply is ASCII HTTP;
2. the egress's one-line answer to the ingress (``answer.parse_answer``): ``OK`` with a canonical
   address and a port in range that formats back to itself, ``ERR`` with a bounded code, or
   ``BadAnswer``;
3. a control-endpoint request (``control.parse_head``, then the body through ``state_request`` and
   ``mode_request``): parsed or ``ValueError``, a body length within ``MAX_BODY``, a fixed source that
   is an IP address;
4. the bytes an edge's *forwarding* listener receives (``EdgeProcess._forwarded``, in process, on the
   demo world; the next two bytes pick the receiving server and its own state);
5. the bytes an edge's *client* listener receives (``EdgeProcess._client``; the next two bytes pick
   the ingress server and its state, and the client's port).

In 4 and 5 nothing touches the network: creating, binding and connecting sockets is replaced by a
recorder that refuses with ``fuzz-no-network``. Invariants: a connection ends ``refused`` with a
bounded code or at that recorder, never ``internal-error``; what is written back parses (``ERR
<code>`` / an HTTP refusal naming the code); and an egress is only ever attempted from an address the
facts support: the receiving server holds the IP (``ip_holder_ranges``), the IP is in the pool and
family, the engine asked the same question answers this server and IP, the origin is the pool's, and
the server is up.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import main
from _invariants import _supported

import aegisfwd as af
from aegisfwd.proxy import answer, control, proxyv2
from aegisfwd.proxy import edge as edge_mod
from aegisfwd.proxy.config import config_from_dict, format_hostport
from aegisfwd.proxy.connect import _STATUS_TEXT, ConnectError, parse_connect, refusal
from aegisfwd.proxy.scenario import SERVERS, demo_config, demo_topology

PROXY_REASONS = {
    "truncated-proxy-header",
    "bad-proxy-signature",
    "bad-proxy-version",
    "bad-proxy-command",
    "proxy-header-too-long",
    "bad-proxy-family",
    "truncated-tlv",
    "duplicate-tlv",
    "bad-tlv",
}
CODE = re.compile(r"[a-z0-9-]{1,64}")
HOST = re.compile(r"[a-z0-9._-]{1,253}")
NO_NETWORK = "fuzz-no-network"
STATES = ("up", "draining", "down")

# ---- the demo world, one edge per server, built once ------------------------------------------
BLOCK = 77  # the demo's loopback block; nothing is bound or connected here (see _NoNetwork)
CT = af.Topology.from_dict(demo_topology()).compile()
_cfg_data = demo_config(BLOCK, topology="unused.yaml")
_cfg_data.pop("topology")
_cfg_data["compiled"] = "unused.aegis"
CFG = config_from_dict(_cfg_data)
ENGINE = af.Engine(CT)


class _Journal:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def write(self, rec: dict[str, Any]) -> None:
        self.records.append(dict(rec))

    def close(self) -> None:
        pass


class _NoNetwork:
    """Stands in for the socket layer of edge.py: records what would be bound and connected."""

    def __init__(self) -> None:
        self.attempts: list[tuple[str, Any, Any]] = []  # (what, stand-in or family, address)
        self.bound: Any = None

    def source_socket(self, stand: str, port_range: Any) -> str:
        self.bound = ("source", stand)
        return stand

    def plain_socket(self, family: int) -> str:
        self.bound = ("plain", family)
        return f"plain{family}"

    async def connect(self, sock: Any, addr: tuple[str, int], what: str) -> Any:
        self.attempts.append((what, sock, addr))
        raise edge_mod.Refused(0, NO_NETWORK)


NET = _NoNetwork()
edge_mod.source_socket = NET.source_socket  # type: ignore[assignment]
edge_mod.plain_socket = NET.plain_socket  # type: ignore[assignment]
EDGES: dict[str, Any] = {}
for _sid in SERVERS:
    _e = edge_mod.EdgeProcess(CFG, CT, _sid, 0, ENGINE, journal=_Journal(), fan_out=False)
    _e._connect = NET.connect  # type: ignore[method-assign]
    EDGES[_sid] = _e


class _Transport:
    def abort(self) -> None:
        pass


class _Writer:
    def __init__(self, peer: tuple[str, int]) -> None:
        self.data = bytearray()
        self.peer = peer
        self.transport = _Transport()

    def write(self, b: bytes) -> None:
        self.data += b

    async def drain(self) -> None:
        pass

    def close(self) -> None:
        pass

    def get_extra_info(self, name: str) -> Any:
        return {"peername": self.peer, "sockname": ("127.77.1.1", 18080)}.get(name)


def _reader(data: bytes, limit: int, loop: asyncio.AbstractEventLoop) -> asyncio.StreamReader:
    r = asyncio.StreamReader(limit=limit, loop=loop)
    r.feed_data(data)
    r.feed_eof()
    return r


# ---- 0-3: the parsers ----------------------------------------------------------------------------
def _proxy_header(data: bytes) -> None:
    fixed = data[: proxyv2.HEADER_FIXED]
    try:
        n = proxyv2.parse_fixed(fixed)
        h = proxyv2.parse(fixed, data[proxyv2.HEADER_FIXED : proxyv2.HEADER_FIXED + n])
    except proxyv2.ProxyHeaderError as exc:
        if exc.reason not in PROXY_REASONS:
            raise AssertionError(f"unknown PROXY refusal code {exc.reason!r}") from None
        return
    if h.family not in (4, 6):
        raise AssertionError(f"family {h.family}")
    for host, port in (h.src, h.dst):
        ipaddress.ip_address(host)
        if not 0 <= port <= 65535:
            raise AssertionError(f"port {port}")
    for kind in h.tlvs:
        if not 0xE0 <= kind <= 0xEF or kind == proxyv2.TLV_NOOP:
            raise AssertionError(f"TLV {kind:#x} kept")
        if kind in proxyv2._TLV_TEXT:
            h.text(kind)  # every kept text TLV decodes (the flow TLV and unassigned ones are bytes)
    flow = h.tlvs.get(proxyv2.TLV_FLOW)
    if flow is not None and len(flow) != 8:
        raise AssertionError("flow TLV not 8 bytes")
    again = proxyv2.encode(h.src, h.dst, dict(h.tlvs))
    h2 = proxyv2.parse(again[: proxyv2.HEADER_FIXED], again[proxyv2.HEADER_FIXED :])
    if (h2.src, h2.dst, h2.tlvs) != (h.src, h.dst, h.tlvs):
        raise AssertionError(f"round trip changed the header: {h} -> {h2}")


def _connect_head(data: bytes) -> None:
    try:
        req = parse_connect(data)
    except ConnectError as exc:
        if exc.reason not in ("bad-request", "method-not-allowed") or exc.status not in _STATUS_TEXT:
            raise AssertionError(f"refusal {exc.status} {exc.reason!r}") from None
        reply = refusal(exc.status, exc.reason, str(exc))
        reply.decode("ascii")
        if not reply.startswith(f"HTTP/1.1 {exc.status} ".encode()):
            raise AssertionError(f"refusal reply {reply[:40]!r}") from None
        return
    if not HOST.fullmatch(req.host) or req.host != req.host.lower() or not 1 <= req.port <= 65535:
        raise AssertionError(f"accepted {req}")
    if req.request_id is not None and not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", req.request_id):
        raise AssertionError(f"request id {req.request_id!r}")


def _egress_answer(data: bytes) -> None:
    try:
        a = answer.parse_answer(data)
    except answer.BadAnswer:
        return
    if a.src is not None:
        if str(ipaddress.ip_address(a.src)) != a.src or not 1 <= a.port <= 65535 or a.reason is not None:
            raise AssertionError(f"OK answer {a}")
        if answer.parse_answer(answer.ok(a.src, a.port)) != a:
            raise AssertionError("OK answer does not format back to itself")
    elif a.reason is None or not CODE.fullmatch(a.reason):
        raise AssertionError(f"ERR answer {a}")


def _control_request(data: bytes) -> None:
    head, sep, body = data.partition(b"\r\n\r\n")
    try:
        req = control.parse_head(head + sep)
    except ValueError:
        pass
    else:
        if not 0 <= req.content_length <= control.MAX_BODY or not re.fullmatch(r"[A-Z]+ /\S*", req.route):
            raise AssertionError(f"parsed {req}")
    for parse in (control.state_request, control.mode_request):
        try:
            got = parse(body)
        except ValueError:
            continue
        if parse is control.mode_request and got is not None:
            if str(ipaddress.ip_address(got)) != got:  # type: ignore[arg-type]
                raise AssertionError(f"fixed source {got!r}")
        elif parse is control.state_request and not all(isinstance(x, str) for x in got):  # type: ignore[union-attr]
            raise AssertionError(f"state request {got!r}")


# ---- 4-5: an edge, in process --------------------------------------------------------------------
def _run_edge(
    edge: Any, own_state: str, serve: Any, data: bytes, limit: int, peer: tuple[str, int]
) -> tuple[list[dict[str, Any]], bytes]:
    """Serve ``data`` as one connection on a fresh event loop (closed after: a replay in the test
    suite leaves no loop, and no socket of its own, behind)."""
    edge.journal.records.clear()
    NET.attempts.clear()
    NET.bound = None
    edge.apply(0, edge.server_id, own_state)
    loop = asyncio.new_event_loop()
    writer = _Writer(peer)
    try:
        loop.run_until_complete(asyncio.wait_for(serve(_reader(data, limit, loop), writer), 10))
    finally:
        loop.close()
        edge.apply(0, edge.server_id, "up")
    return edge.journal.records, bytes(writer.data)


def _check_outcome(rec: dict[str, Any]) -> None:
    outcome, reason = rec.get("outcome"), rec.get("reason")
    if outcome == "error" or (reason is not None and not CODE.fullmatch(str(reason))):
        raise AssertionError(f"connection ended {outcome!r}: {reason!r}")
    if outcome != "refused":
        raise AssertionError(f"connection ended {outcome!r} without the network")


def _forwarded(data: bytes) -> None:
    if len(data) < 2:
        return
    edge = EDGES[SERVERS[data[0] % len(SERVERS)]]
    state = STATES[data[1] % 3]
    recs, written = _run_edge(
        edge, state, edge._forwarded, data[2:], proxyv2.MAX_LENGTH, ("127.77.1.9", 40000)
    )
    if len(recs) != 1:
        raise AssertionError(f"{len(recs)} journal records")
    rec = recs[0]
    _check_outcome(rec)
    if rec["reason"] != NO_NETWORK:
        if written and answer.parse_answer(written).reason != rec["reason"]:
            raise AssertionError(f"answer {written!r} for {rec['reason']}")
        if NET.attempts:
            raise AssertionError("connected and refused")
        return
    # It got as far as connecting to the origin: everything the facts require must hold.
    ((what, stand, origin),) = NET.attempts
    server, pool = edge.server, CT.pool_index[rec["pool"]]
    ip = CT.ips.index(rec["egress_ip"])
    family = int(CT.arrays["ip_family"][ip])
    why = _supported(CT, pool, family, server, ip)
    if why is not None or what != "origin" or state != "up":
        raise AssertionError(f"egress attempted from {rec['egress_ip']} on {edge.server_id} ({state}): {why}")
    h = proxyv2.parse(data[2:18], data[18 : 18 + proxyv2.parse_fixed(data[2:18])])
    flow = int.from_bytes(h.tlvs[proxyv2.TLV_FLOW], "big")
    ingress = CT.server_index[rec["ingress"]]
    d = ENGINE.decide_indices(ingress, pool, family, flow)
    if (d[1], d[4]) != (server, ip):
        raise AssertionError(f"the engine answers server {d[1]} IP {d[4]}, egress was {server} {ip}")
    if stand != edge.stand_in[ip] or format_hostport(origin) not in edge.pool_origins[pool]:
        raise AssertionError(f"stand-in {stand} / origin {origin} for {rec['egress_ip']}")


def _client(data: bytes) -> None:
    if len(data) < 3:
        return
    edge = EDGES[SERVERS[data[0] % len(SERVERS)]]
    state = STATES[data[1] % 3]
    recs, reply = _run_edge(
        edge, state, edge._client, data[3:], edge_mod.MAX_HEAD, ("198.51.100.7", 40000 + data[2])
    )
    if len(recs) != 1:
        raise AssertionError(f"{len(recs)} journal records")
    rec = recs[0]
    _check_outcome(rec)
    status = rec.get("status")
    named = f"X-Aegisfwd-Refusal: {rec['reason']}\r\n".encode()
    if status and (not reply.startswith(f"HTTP/1.1 {status} ".encode()) or named not in reply):
        raise AssertionError(f"refusal reply {reply[:80]!r} for {status} {rec['reason']}")
    if rec["reason"] != NO_NETWORK:
        return
    ((what, _sock, _addr),) = NET.attempts
    pool, ip = CT.pool_index[rec["pool"]], CT.ips.index(rec["egress_ip"])
    egress = CT.server_index[rec["egress"]]
    why = _supported(CT, pool, int(rec["family"]), egress, ip)
    if why is not None or state != "up" or what != ("origin" if rec["tier"] == "LOCAL" else "egress"):
        raise AssertionError(f"{rec['tier']} via {rec['egress']} {rec['egress_ip']} ({state}): {why}")


MODES = (_proxy_header, _connect_head, _egress_answer, _control_request, _forwarded, _client)


def test_one_input(data: bytes) -> None:
    if not data:
        return
    MODES[data[0] % len(MODES)](data[1:])


if __name__ == "__main__":
    main(test_one_input)
