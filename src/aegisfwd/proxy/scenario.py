"""The demo world: 2 locations x 2 DCs x 2 servers, its zones, stand-ins and proxy config.

* pool ``shop`` (zone ``shop.example``): one IPv4 address held by one DC (``l1d1``) only;
* pool ``api`` (zone ``api.example``): one IPv4 address held by one server (``l2d1s1``), so the
  other server of its DC forwards SAME_DC;
* pool ``cdn`` (zone ``cdn.example``): an IPv6 range held everywhere (origin on ``::1``).

Every address lives in one ``127.B.0.0/16`` block chosen per run (``block``), so several runs (or
other programs) on one machine do not collide: listeners ``127.B.1.i``/``127.B.2.i``, stand-ins
``127.B.200.x``, origins ``127.B.100.1`` and ``[::1]``.
"""

from __future__ import annotations

import random
import socket
from typing import Any

SERVERS = [f"l{loc}d{dc}s{s}" for loc in (1, 2) for dc in (1, 2) for s in (1, 2)]
DEDICATED = {"shop": "192.0.2.10", "api": "192.0.2.20", "cdn": "2001:db8:a::/48"}


def demo_topology() -> dict[str, Any]:
    return {
        "version": 1,
        "locations": [
            {"id": "l1", "name": "London", "lat": 51.5, "lon": -0.1},
            {"id": "l2", "name": "Frankfurt", "lat": 50.1, "lon": 8.7},
        ],
        "data_centers": [
            {"id": f"l{loc}d{dc}", "location": f"l{loc}", "servers": [f"l{loc}d{dc}s1", f"l{loc}d{dc}s2"]}
            for loc in (1, 2)
            for dc in (1, 2)
        ],
        "pools": [
            {"id": "shop", "ips": [{"address": DEDICATED["shop"], "holders": ["l1d1"]}]},
            {"id": "api", "ips": [{"address": DEDICATED["api"], "holders": ["l2d1s1"]}]},
            {"id": "cdn", "ips": [{"address": DEDICATED["cdn"], "holders": ["l1", "l2"]}]},
        ],
        "zones": {"shop.example": "shop", "api.example": "api", "cdn.example": "cdn"},
    }


def free_block() -> int:
    """A 127.B.0.0/16 block whose listener ports look free (random, checked by binding)."""
    for _ in range(50):
        b = random.randint(20, 250)
        try:
            with socket.socket() as s:
                s.bind((f"127.{b}.1.1", 18080))
            with socket.socket(socket.AF_INET6) as s6:
                s6.bind(("::1", 18000 + b))
        except OSError:
            continue
        return b
    raise RuntimeError("no free 127.B.0.0/16 block found")


def stand_ins(block: int) -> dict[str, str]:
    return {
        DEDICATED["shop"]: f"127.{block}.200.10",
        DEDICATED["api"]: f"127.{block}.200.20",
        DEDICATED["cdn"]: "::1",
    }


def origins(block: int) -> dict[str, str]:
    return {
        "shop.example": f"127.{block}.100.1:19001",
        "api.example": f"127.{block}.100.1:19002",
        "cdn.example": f"[::1]:{18000 + block}",
    }


def demo_config(
    block: int,
    *,
    topology: str,
    engine: str = "private",
    workers: dict[str, int] | None = None,
    source_port_range: tuple[int, int] | None = None,
    idle: float = 30.0,
) -> dict[str, Any]:
    workers = workers or {}
    cfg: dict[str, Any] = {
        "topology": topology,
        "engine": engine,
        "control": f"127.{block}.0.1:18900",
        "servers": {
            sid: {
                "listen": f"127.{block}.1.{i + 1}:18080",
                "forward": f"127.{block}.2.{i + 1}:18081",
                "workers": workers.get(sid, 1),
            }
            for i, sid in enumerate(SERVERS)
        },
        "zones": {z: {"origin": o, "ports": [443]} for z, o in origins(block).items()},
        "stand_ins": stand_ins(block),
        "timeouts": {"handshake": 5.0, "connect": 3.0, "idle": idle},
    }
    if source_port_range is not None:
        cfg["source_port_range"] = list(source_port_range)
    return cfg


def origin_allow(block: int) -> list[str]:
    """The firewall: exactly the stand-ins of the dedicated IPs."""
    return [a + ("/128" if ":" in a else "/32") for a in sorted(set(stand_ins(block).values()))]


def edge_address(block: int, server: str) -> tuple[str, int]:
    return (f"127.{block}.1.{SERVERS.index(server) + 1}", 18080)
