"""A ``Topology`` back into a plain document (dicts, lists, str, float, None)."""

from __future__ import annotations

from typing import Any

from .._gc import gc_paused
from ..topology import Topology

__all__ = ["topology_to_dict"]


def topology_to_dict(topo: Topology) -> dict[str, Any]:
    """A plain document (dicts, lists, str, float, None) that ``topology_from_dict`` accepts."""
    with gc_paused():
        return _topology_to_dict(topo)


def _topology_to_dict(topo: Topology) -> dict[str, Any]:
    out: dict[str, Any] = {"version": 1}
    locations = []
    for loc in topo.locations:
        d: dict[str, Any] = {"id": loc.id}
        if loc.name is not None:
            d["name"] = loc.name
        if loc.lat is not None:
            d["lat"] = loc.lat
        if loc.lon is not None:
            d["lon"] = loc.lon
        locations.append(d)
    out["locations"] = locations
    out["data_centers"] = [
        {"id": dc.id, "location": dc.location, "servers": list(dc.servers)} for dc in topo.data_centers
    ]
    if topo.server_states:
        out["server_states"] = dict(topo.server_states)
    out["pools"] = [
        {"id": p.id, "ips": [{"address": ip.address, "holders": list(ip.holders)} for ip in p.ips]}
        for p in topo.pools
    ]
    if topo.zones:
        out["zones"] = dict(topo.zones)
    if topo.distances is not None:
        out["distances"] = {
            "unit": topo.distances.unit,
            "locations": list(topo.distances.locations),
            "matrix": [list(row) for row in topo.distances.matrix],
        }
    return out
