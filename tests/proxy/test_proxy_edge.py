"""The edge on real loopback sockets, held to af.Engine and to what the origin saw.

Eight edge servers and the origin run in the test's event loop (each edge with its own engine).
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from proxy_helpers import Cluster, run, running

import aegisfwd as af
from aegisfwd._flowkey import flow_key_py
from aegisfwd.proxy import proxyv2
from aegisfwd.proxy.loadgen import one_connection, run_load
from aegisfwd.proxy.scenario import DEDICATED, SERVERS, edge_address, origins, stand_ins
from aegisfwd.proxy.source import port_range_supported

ZONES = ["shop.example", "api.example", "cdn.example"]
ZONE_POOL = {"shop.example": "shop", "api.example": "api", "cdn.example": "cdn"}


def expected(engine: af.Engine, server: str, zone: str, client: tuple[str, int]) -> Any:
    family = 6 if zone == "cdn.example" else 4
    return engine.decide(server, ZONE_POOL[zone], family, flow_key_py(client[0], client[1], None))


def test_every_tier_matches_the_engine_and_the_origin_log(tmp_path: Path, block: int, demo_compiled) -> None:
    cluster = Cluster(tmp_path, block, demo_compiled)
    edges = [edge_address(block, s) for s in SERVERS]

    async def go() -> list[Any]:
        async with running(cluster):
            return await run_load(edges, ZONES, 240, concurrency=24)

    results = run(go())
    assert Counter(r.outcome for r in results) == {"completed": 240}
    engine = af.Engine(demo_compiled)
    journal = {j["rid"]: j for j in cluster.journal() if j["kind"] == "ingress"}
    egress_j = {j["id"]: j for j in cluster.journal() if j["kind"] == "egress"}
    egress_end = {j["id"]: j for j in cluster.journal() if j["kind"] == "egress-end"}
    log = cluster.origin_log()
    origin = {o["tag"]: o for o in log if o.get("event") == "tag"}
    assert len(origin) == 240 and [o["accepted"] for o in log if "accepted" in o] == [True] * 240
    stand = stand_ins(block)
    tiers: Counter[str] = Counter()
    by_edge = {"{}:{}".format(*edge_address(block, s)): s for s in SERVERS}
    for r in results:
        server = by_edge[r.edge]
        want = expected(engine, server, r.zone, r.local)
        j = journal[r.tag]
        assert (j["client"], j["cport"]) == r.local
        assert j["flow"] == f"{flow_key_py(r.local[0], r.local[1], None):016x}"
        assert (j["tier"], j["egress"], j["egress_ip"]) == (want.tier.name, want.server, want.ip)
        o = origin[r.tag]
        assert o["peer"] == stand[want.ip if want.ip in stand else DEDICATED[ZONE_POOL[r.zone]]]
        assert (o["peer"], o["port"]) == (j["src"], j["sport"])
        assert o["origin"] == origins(block)[r.zone]
        if want.tier != af.Tier.LOCAL:
            assert egress_j[j["id"]]["server"] == want.server and egress_j[j["id"]]["outcome"] == "connected"
            assert egress_end[j["id"]]["outcome"] == "completed"
        tiers[want.tier.name] += 1
    assert set(tiers) == {"LOCAL", "SAME_DC", "SAME_LOCATION", "REMOTE"}


def test_unavailable_refuses_with_503_and_connects_nothing(tmp_path: Path, block: int, demo_compiled) -> None:
    cluster = Cluster(tmp_path, block, demo_compiled)

    async def go() -> list[Any]:
        async with running(cluster):
            cluster.set_state(1, "l1d1", "down")  # the shop address is held by l1d1 only
            return [
                await one_connection(edge_address(block, s), "shop.example", 443, f"u{i}")
                for i, s in enumerate(["l1d2s1", "l2d1s1", "l2d2s2"])
            ]

    results = run(go())
    assert [(r.status, r.reason) for r in results] == [(503, "unavailable")] * 3
    assert cluster.origin_log() == []


def test_draining_ingress_refuses_new_and_keeps_established(
    tmp_path: Path, block: int, demo_compiled
) -> None:
    cluster = Cluster(tmp_path, block, demo_compiled)
    edge = edge_address(block, "l1d1s1")

    async def go() -> tuple[Any, Any]:
        async with running(cluster):
            r, w = await asyncio.open_connection(*edge)
            w.write(b"CONNECT shop.example:443 HTTP/1.1\r\n\r\n")
            assert (await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)).startswith(b"HTTP/1.1 200")
            cluster.set_state(1, "l1d1s1", "draining")
            refused = await one_connection(edge, "shop.example", 443, "late")
            w.write(b"still-here\n")  # the established tunnel still works
            echo = await asyncio.wait_for(r.readuntil(b"\n"), 5)
            cluster.set_state(2, "l1d1s1", "down")  # down cuts it: a reset, not a clean end
            try:
                closed: Any = await asyncio.wait_for(r.read(), 5)
            except ConnectionResetError:
                closed = "reset"
            w.close()
            return refused, (echo, closed)

    refused, (echo, closed) = run(go())
    assert (refused.status, refused.reason) == (503, "ingress-draining")
    assert echo == b"still-here\n" and closed == "reset"
    outcomes = [j["outcome"] for j in cluster.journal() if j["kind"] == "ingress"]
    assert sorted(outcomes) == ["closed-down", "refused"]


# ---- bad input ---------------------------------------------------------------------------------
async def _exchange(addr: tuple[str, int], data: bytes, *, close: bool = False) -> bytes:
    r, w = await asyncio.open_connection(*addr)
    w.write(data)
    w.write_eof()  # what was sent is all there is: a short header is truncated, not slow
    if close:
        w.close()
        return b""
    try:
        return await asyncio.wait_for(r.read(), 10)
    finally:
        w.close()


@pytest.mark.parametrize(
    ("data", "status", "reason"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 405, "method-not-allowed"),
        (b"CONNECT shop.example HTTP/1.1\r\n\r\n", 400, "bad-request"),
        (b"CONNECT shop.example:99999 HTTP/1.1\r\n\r\n", 400, "bad-request"),
        (b"CONNECT shop.example:443 HTTP/2\r\n\r\n", 400, "bad-request"),
        (b"CONNECT \xff\xfe:443 HTTP/1.1\r\n\r\n", 400, "bad-request"),
        (b"CONNECT shop.example:443 HTTP/1.1\r\nno colon here\r\n\r\n", 400, "bad-request"),
        (b"CONNECT nowhere.example:443 HTTP/1.1\r\n\r\n", 404, "unknown-zone"),
        (b"CONNECT shop.example:8443 HTTP/1.1\r\n\r\n", 403, "port-not-allowed"),
        (
            b"CONNECT shop.example:443 HTTP/1.1\r\n" + b"X: " + b"a" * 9000 + b"\r\n\r\n",
            431,
            "head-too-large",
        ),
    ],
)
def test_malformed_requests_are_refused_with_a_reason(
    tmp_path: Path, block: int, demo_compiled, data: bytes, status: int, reason: str
) -> None:
    cluster = Cluster(tmp_path, block, demo_compiled)
    edge = edge_address(block, "l1d1s1")

    async def go() -> tuple[bytes, Any]:
        async with running(cluster):
            reply = await _exchange(edge, data)
            after = await one_connection(edge, "shop.example", 443, "after")  # the edge still serves
            return reply, after

    reply, after = run(go())
    assert reply.startswith(f"HTTP/1.1 {status} ".encode()), reply[:80]
    assert f"X-Aegisfwd-Refusal: {reason}\r\n".encode() in reply
    assert after.outcome == "completed"
    assert [j["reason"] for j in cluster.journal() if j.get("outcome") == "refused"] == [reason]


def test_client_disconnecting_mid_handshake_is_journaled(tmp_path: Path, block: int, demo_compiled) -> None:
    cluster = Cluster(tmp_path, block, demo_compiled)
    edge = edge_address(block, "l1d2s1")

    async def go() -> Any:
        async with running(cluster):
            await _exchange(edge, b"CONNECT shop.exa", close=True)
            # a RST in the middle of the head
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.connect(edge)
            s.send(b"CONNECT shop")
            s.close()
            await asyncio.sleep(0.3)
            return await one_connection(edge, "shop.example", 443, "after")

    after = run(go())
    assert after.outcome == "completed"
    reasons = [j["reason"] for j in cluster.journal() if j.get("outcome") == "refused"]
    assert reasons == ["client-disconnected", "client-disconnected"]


def _forged(block: int, server: str, **tlv_over: Any) -> bytes:
    tlvs: dict[int, Any] = {
        proxyv2.TLV_POOL: "shop",
        proxyv2.TLV_ORIGIN: origins(block)["shop.example"],
        proxyv2.TLV_EGRESS_IP: DEDICATED["shop"],
        proxyv2.TLV_INGRESS: "l1d2s1",
        proxyv2.TLV_FLOW: flow_key_py("127.0.0.1", 40000, None),
        proxyv2.TLV_CONN_ID: "forged",
    }
    for k, v in tlv_over.items():
        key = getattr(proxyv2, f"TLV_{k.upper()}")
        if v is None:
            tlvs.pop(key)
        else:
            tlvs[key] = v
    return proxyv2.encode(("127.0.0.1", 40000), ("127.0.0.1", 1), tlvs)


def test_forged_or_truncated_proxy_headers_are_refused(tmp_path: Path, block: int, demo_compiled) -> None:
    cluster = Cluster(tmp_path, block, demo_compiled)
    engine = af.Engine(demo_compiled)
    # which l1d1 server the engine picks for this flow from l1d2s1 (SAME_LOCATION)
    right = engine.decide("l1d2s1", "shop", 4, flow_key_py("127.0.0.1", 40000, None)).server
    wrong = "l1d1s2" if right == "l1d1s1" else "l1d1s1"
    fwd = {s: (f"127.{block}.2.{SERVERS.index(s) + 1}", 18081) for s in SERVERS}
    good = _forged(block, right)
    cases = [
        (fwd["l2d1s2"], _forged(block, "l2d1s2"), "not-holder"),  # does not hold 192.0.2.10
        (fwd[wrong], good, "decision-mismatch"),  # holds it, but the engine would not choose it
        (fwd[right], _forged(block, right, egress_ip=DEDICATED["api"]), "ip-not-in-pool"),
        (fwd[right], _forged(block, right, origin="127.0.0.1:22"), "origin-not-allowed"),
        (fwd[right], _forged(block, right, pool="nope"), "unknown-tlv-id"),
        (fwd[right], _forged(block, right, flow=None), "missing-tlv"),
        (fwd[right], good[:-5], "truncated-proxy-header"),
        (fwd[right], b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "bad-proxy-signature"),
    ]
    # a TLV whose length runs past the header: rewrite the last TLV's length field
    body_len = struct.unpack("!H", good[14:16])[0]
    bad = bytearray(good)
    bad[-(len("forged") + 2) : -len("forged")] = struct.pack("!H", 200)
    cases.append((fwd[right], bytes(bad), "truncated-tlv"))
    assert body_len < proxyv2.MAX_LENGTH

    async def go() -> list[bytes]:
        async with running(cluster):
            replies = [await _exchange(addr, data) for addr, data, _ in cases]
            replies.append(await _exchange(fwd[right], good + b"hello\n"))
            return replies

    replies = run(go())
    for (_, _, reason), reply in zip(cases, replies[:-1], strict=True):
        assert reply == f"ERR {reason}\n".encode(), (reason, reply)
    assert replies[-1].startswith(b"OK ") and replies[-1].endswith(b"hello\n")
    accepted = [o for o in cluster.origin_log() if o.get("accepted")]
    assert len(accepted) == 1 and accepted[0]["peer"] == stand_ins(block)[DEDICATED["shop"]]


@pytest.mark.skipif(not port_range_supported(), reason="IP_LOCAL_PORT_RANGE needs Linux >= 6.3")
def test_source_port_exhaustion_is_refused_and_other_ips_keep_working(
    tmp_path: Path, block: int, demo_compiled
) -> None:
    cluster = Cluster(tmp_path, block, demo_compiled, source_port_range=(41000, 41002))
    local = edge_address(block, "l1d1s1")  # shop: LOCAL from 127.B.200.10

    async def go2() -> tuple[list[Any], Any, Any]:
        async with running(cluster):
            holders = [
                asyncio.ensure_future(one_connection(local, "shop.example", 443, f"h{i}", hold=2.0))
                for i in range(3)
            ]
            await asyncio.sleep(0.8)
            over = await one_connection(local, "shop.example", 443, "over")
            other = await one_connection(edge_address(block, "l2d1s1"), "api.example", 443, "other")
            return list(await asyncio.gather(*holders)), over, other

    held, over, other = run(go2())
    assert [h.outcome for h in held] == ["completed"] * 3
    assert (over.status, over.reason) == (503, "source-ports-exhausted")
    assert other.outcome == "completed"
    ports = sorted(
        o["port"]
        for o in cluster.origin_log()
        if o.get("accepted") and o["peer"] == stand_ins(block)[DEDICATED["shop"]]
    )
    assert ports == [41000, 41001, 41002]
