"""Human-readable trace of one decision (``engine.explain``), shared by every engine.

``explain_request(topology, states, server, pool, family, flow)`` runs the reference decision
(``_rules.decide_request``) with tracing on, under the per-server ``states`` the caller passes,
and returns ``(text, decision)``. The compiled ``Engine`` calls it with its own live states and
checks that the decision equals its own, so an explanation never disagrees with an answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _hashing as hashing
from ._inputs import resolve_family, resolve_flow, resolve_id
from ._rules import ReferenceModel, decide_request, model_of, topology_of
from ._types import Decision, Tier
from .topology import STATE_NAMES

__all__ = ["explain_request", "format_trace"]

MAX_NAMES = 12  # servers listed per line before "... and N more"
MAX_EMPTY_LOCATIONS = 8  # REMOTE: locations without any holder listed before folding the rest

_RULE_TEXT = {
    Tier.LOCAL: "LOCAL: the ingress server itself",
    Tier.SAME_DC: "SAME_DC: another server of the ingress DC",
    Tier.SAME_LOCATION: "SAME_LOCATION: a server in another DC of the ingress location",
}


def explain_request(
    topology: object,
    states: Sequence[int] | np.ndarray,
    server: object,
    pool: object,
    family: object,
    flow: object = 0,
) -> tuple[str, Decision]:
    """Explain one request under ``states`` (uint8 code per server: 0 up, 1 draining, 2 down).

    ``topology`` is a ``Topology`` (or a compiled topology carrying one); server and pool are ids
    or indices. Input errors raise exactly as ``decide`` does. Returns the text and the decision.
    """
    model = model_of(topology_of(topology))
    if len(states) != len(model.server_ids):
        raise ValueError(
            f"states has {len(states)} entries, the topology has {len(model.server_ids)} servers"
        )
    s = resolve_id(server, model.server_ids, model.server_lookup, "server")
    p = resolve_id(pool, model.pool_ids, model.pool_lookup, "pool")
    fam = resolve_family(family)
    fl = resolve_flow(flow)
    trace: list[tuple[Any, ...]] = []
    decision = decide_request(model, states, s, p, fam, fl, trace)
    return format_trace(model, states, s, p, fam, fl, trace, decision), decision


def format_trace(
    m: ReferenceModel,
    states: Sequence[int] | np.ndarray,
    server: int,
    pool: int,
    family: int,
    flow: int,
    trace: list[tuple[Any, ...]],
    decision: Decision,
) -> str:
    """Format the trace recorded by ``decide_request`` (one line per fact, rules numbered)."""
    dc = m.server_dc[server]
    loc = m.server_location[server]
    unit = m.distance_unit
    out: list[str] = []
    add = out.append

    def names(servers: Sequence[int], with_state: bool = True) -> str:
        if not servers:
            return "none"
        shown = [
            m.server_ids[x] + (f" ({STATE_NAMES[int(states[x])]})" if with_state else "")
            for x in servers[:MAX_NAMES]
        ]
        more = f", ... and {len(servers) - MAX_NAMES} more" if len(servers) > MAX_NAMES else ""
        return ", ".join(shown) + more

    def excluded(holders: Sequence[int], candidates: Sequence[int]) -> str:
        n = len(holders) - len(candidates)
        return f" -> {n} excluded, not up (draining/down take no new connections)" if n else ""

    add(
        f"request: ingress server {m.server_ids[server]} (DC {m.dc_ids[dc]}, location "
        f"{m.location_ids[loc]}), pool {m.pool_ids[pool]}, IPv{family}, flow {flow:#018x}"
    )
    ingress_state = STATE_NAMES[int(states[server])]
    if ingress_state != "up":
        add(f"ingress server is {ingress_state}: it takes no egress itself, the same rules still apply")
    tried: set[Tier] = set()
    empty_shown = 0  # REMOTE: locations without holders listed so far ...
    empty_folded: list[float] = []  # ... and the distances of those folded into one line
    for event in trace:
        kind = event[0]
        if kind == "applicable":
            ips = event[1]
            if ips:
                add(
                    f"applicable IPs (pool {m.pool_ids[pool]}, IPv{family}): "
                    + ", ".join(m.ip_ids[i] for i in ips)
                )
            else:
                add(f"applicable IPs: none (pool {m.pool_ids[pool]} has no IPv{family} entry)")
        elif kind == "rule":
            _, tier, holders, candidates = event
            tried.add(tier)
            where = {
                Tier.LOCAL: m.server_ids[server],
                Tier.SAME_DC: f"DC {m.dc_ids[dc]}, not counting the ingress server",
                Tier.SAME_LOCATION: f"location {m.location_ids[loc]}, DCs other than {m.dc_ids[dc]}",
            }[tier]
            verdict = f"applies ({len(candidates)} candidate(s))" if candidates else "does not apply"
            add(f"{int(tier) + 1}. {_RULE_TEXT[tier]} [{where}]: {verdict}")
            add(f"     holders of an applicable IP: {names(holders)}{excluded(holders, candidates)}")
        elif kind == "remote":
            tried.add(Tier.REMOTE)
            add(
                f"4. REMOTE: the closest other location with a candidate, from {m.location_ids[loc]} "
                f"(distance in {unit}, ties: first listed in `locations`)"
            )
            unreachable = event[1]
            if unreachable:
                add(
                    "     unreachable (null in the matrix), never chosen: "
                    + ", ".join(m.location_ids[x] for x in unreachable)
                )
        elif kind == "location":
            _, other, distance, holders, candidates = event
            label = f"{m.location_ids[other]} at {distance:g} {unit}"
            if not holders:
                if empty_shown < MAX_EMPTY_LOCATIONS:
                    add(f"     {label}: skipped, no server there holds an applicable IP")
                    empty_shown += 1
                else:
                    empty_folded.append(distance)
                continue
            if empty_folded:
                add(
                    f"     ... {len(empty_folded)} more location(s) up to {max(empty_folded):g} {unit}: no holder"
                )
                empty_folded = []
            if candidates:
                add(f"     {label}: chosen, {len(candidates)} candidate(s){excluded(holders, candidates)}")
            else:
                add(f"     {label}: skipped, every holder is out of service: {names(holders)}")
        elif kind == "unavailable":
            if empty_folded:
                add(
                    f"     ... {len(empty_folded)} more location(s) up to {max(empty_folded):g} {unit}: no holder"
                )
            if not m.nearest[loc]:
                add("     no other reachable location")
            add("5. UNAVAILABLE: no candidate anywhere; the connection must not egress (fail closed)")
        elif kind == "choose":
            _, tier, candidates, target, held, ip = event
            _explain_choice(m, flow, candidates, target, held, ip, add)
    for tier in (Tier.SAME_DC, Tier.SAME_LOCATION, Tier.REMOTE):
        if tier not in tried and decision.tier < tier:
            add(f"{int(tier) + 1}. {tier.name}: not tried, an earlier rule applied")
    add(_result_line(decision, unit))
    return "\n".join(out)


def _explain_choice(
    m: ReferenceModel, flow: int, candidates: list[int], target: int, held: list[int], ip: int, add: Any
) -> None:
    sh = hashing.server_flow_hash(flow)
    ranked = sorted(
        candidates, key=lambda c: (hashing.weight(sh, m.server_key[c]), m.server_key[c]), reverse=True
    )
    add(f"   rendezvous over {len(candidates)} candidate(s) (weight = mix64(server_flow_hash ^ server_key)):")
    for c in ranked[:5]:
        mark = "  <- egress server" if c == target else ""
        add(f"     {m.server_ids[c]}: weight {hashing.weight(sh, m.server_key[c]):#018x}{mark}")
    if len(ranked) > 5:
        add(f"     ... {len(ranked) - 5} more with lower weights")
    ih = hashing.ip_flow_hash(flow)
    add(
        f"   source IP: rendezvous among the applicable IPs {m.server_ids[target]} holds: "
        + ", ".join(
            f"{m.ip_ids[i]} (weight {hashing.weight(ih, m.ip_key[i]):#018x})"
            + (" <- chosen" if i == ip else "")
            for i in held
        )
    )


def _result_line(d: Decision, unit: str) -> str:
    if d.tier == Tier.UNAVAILABLE:
        return "result: UNAVAILABLE (no egress; distance NaN)"
    distance = "0" if d.distance == 0 else f"{d.distance:g} {unit}"
    if math.isnan(d.distance):  # pragma: no cover - only UNAVAILABLE has NaN
        distance = "NaN"
    return (
        f"result: {d.tier.name}: egress server {d.server} (DC {d.dc}, location {d.location}), "
        f"source IP {d.ip}, distance {distance}"
    )
