"""What every fuzz target checks besides "no crash": the guarantee of docs/reliability.md.

An answer is either ``UNAVAILABLE``/``INVALID`` with no server and no IP, or a (server, IP) pair the
*facts* of the compiled topology support: the IP belongs to the asked pool and family and its holder
ranges contain the server; the DC and location are the server's. The facts are read straight from
the arrays (``ip_holder_ranges`` and friends), never from the derived tables the engine uses, so a
forged derived table cannot vouch for itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import aegisfwd as af
from aegisfwd import Tier

__all__ = ["AllowedErrors", "check_answers", "check_batch", "decide_everything"]

# Exceptions a target may see: the library's own (anything else is a finding).
AllowedErrors: tuple[type[BaseException], ...] = (af.AegisError,)


def _supported(c: af.CompiledTopology, pool: int, family: int, server: int, ip: int) -> str | None:
    """Why (server, ip) is not an answer the facts support for (pool, family); None when it is."""
    a = c.arrays
    if not (0 <= ip < c.counts["ips"]):
        return f"ip {ip} is not an IP index"
    if not (0 <= server < c.counts["servers"]):
        return f"server {server} is not a server index"
    if int(a["ip_pool"][ip]) != pool or int(a["ip_family"][ip]) != family:
        return f"ip {ip} is not in pool {pool} family {family}"
    ranges = a["ip_holder_ranges"][a["ip_holder_start"][ip] : a["ip_holder_start"][ip + 1]]
    if not any(lo <= server < hi for lo, hi in ranges.tolist()):
        return f"server {server} does not hold ip {ip}"
    return None


def check_answers(
    c: af.CompiledTopology,
    servers: np.ndarray,
    pools: np.ndarray,
    families: np.ndarray,
    result: af.BatchResult,
) -> None:
    """Assert the guarantee for every row of ``result`` (answers to the given index columns)."""
    a = c.arrays
    tier = result.tier
    for row in range(len(result)):
        t = int(tier[row])
        srv, ip = int(result.server[row]), int(result.ip[row])
        if t in (Tier.UNAVAILABLE, Tier.INVALID):
            if srv != -1 or ip != -1:
                raise AssertionError(f"row {row}: tier {Tier(t).name} with server {srv}, ip {ip}")
            continue
        if t not in (Tier.LOCAL, Tier.SAME_DC, Tier.SAME_LOCATION, Tier.REMOTE):
            raise AssertionError(f"row {row}: unknown tier {t}")
        why = _supported(c, int(pools[row]), int(families[row]), srv, ip)
        if why is not None:
            raise AssertionError(f"row {row}: tier {Tier(t).name} answers an unsupported pair: {why}")
        if int(result.dc[row]) != int(a["server_dc"][srv]) or int(result.location[row]) != int(
            a["server_location"][srv]
        ):
            raise AssertionError(f"row {row}: dc/location do not match server {srv}")
        ingress = int(servers[row])
        if t == Tier.LOCAL and srv != ingress:
            raise AssertionError(f"row {row}: LOCAL answered another server")


def decide_everything(c: af.CompiledTopology, flows: tuple[int, ...] = (0, 1, 2**64 - 1)) -> tuple[Any, ...]:
    """Index columns asking every (server, pool, family) for each flow key, capped for big files."""
    S = min(int(c.counts["servers"]), 64)
    P = min(int(c.counts["pools"]), 64)
    s, p, f, fl = np.meshgrid(
        np.arange(S, dtype=np.int32),
        np.arange(P, dtype=np.int32),
        np.array([4, 6], dtype=np.uint8),
        np.array(flows, dtype=np.uint64),
        indexing="ij",
    )
    return s.ravel(), p.ravel(), f.ravel(), fl.ravel()


def check_batch(c: af.CompiledTopology, engine: af.Engine, reference: af.Engine | None = None) -> None:
    """Ask ``engine`` everything (see decide_everything) and assert the guarantee on the answers.
    With ``reference`` (an engine on the source topology) the answers must also equal its own."""
    s, p, f, fl = decide_everything(c)
    if len(s) == 0:
        return
    result = engine.decide_batch(s, p, f, fl, errors="mark")
    check_answers(c, s, p, f, result)
    if reference is None:
        return
    expected = reference.decide_batch(s, p, f, fl, errors="mark")
    for name in ("tier", "server", "ip", "dc", "location"):
        if not np.array_equal(getattr(result, name), getattr(expected, name)):
            raise AssertionError(f"engine and reference disagree on {name}")
