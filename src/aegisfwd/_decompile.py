"""A ``Topology`` rebuilt from compiled tables alone, for what needs the model (``explain``) when only
a compiled file is at hand (``aegisfwd decide -t topo.aegis --explain``).

The compiled tables keep every fact a decision depends on: ids in index order, which DC and
location each server is in, each IP's address (canonical text, prefix included) and holder server
ranges, the zones, the initial server states and the location distance matrix (already rounded
as the engines use it). What they drop does not change a decision: location names, coordinates
(the distances stand for them, as a ``distances`` matrix in the unit compiled) and how holders were
written (a range that is exactly a DC or a location is written as that id, else its servers are
listed). The rebuilt topology therefore decides exactly as the original did; ``Engine.explain``
checks every traced answer against the compiled engine's anyway.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .topology import STATE_NAMES, Topology


def topology_document(compiled: Any) -> dict[str, Any]:
    """The topology document (``Topology.from_dict`` input) that the compiled tables describe."""
    a = compiled.arrays
    locations, dcs, servers = list(compiled.locations), list(compiled.dcs), list(compiled.servers)
    pools, ips, zones = list(compiled.pools), list(compiled.ips), list(compiled.zones)
    server_dc = np.asarray(a["server_dc"])
    dc_location = np.asarray(a["dc_location"])

    members: list[list[str]] = [[] for _ in dcs]
    for s, d in enumerate(server_dc.tolist()):
        members[d].append(servers[s])
    # servers are numbered DC by DC, DCs location by location: each DC and location is a range
    dc_at: dict[int, tuple[int, str]] = {}  # first server -> (end, DC id)
    loc_at: dict[int, tuple[int, str]] = {}  # first server -> (end, location id)
    start = 0
    for d, names in enumerate(members):
        if names:
            dc_at[start] = (start + len(names), dcs[d])
            loc = int(dc_location[d])
            first, _ = next(((f, e) for f, (e, lid) in loc_at.items() if lid == locations[loc]), (start, 0))
            loc_at[first] = (start + len(names), locations[loc])
        start += len(names)

    def holders(first: int, end: int) -> list[str]:
        """The fewest holder names covering [first, end): whole locations, then whole DCs, then servers."""
        out: list[str] = []
        pos = first
        while pos < end:
            for table in (loc_at, dc_at):
                hit = table.get(pos)
                if hit is not None and hit[0] <= end:
                    out.append(hit[1])
                    pos = hit[0]
                    break
            else:
                out.append(servers[pos])
                pos += 1
        return out

    holder_start = np.asarray(a["ip_holder_start"]).tolist()
    ranges = np.asarray(a["ip_holder_ranges"]).tolist()
    ip_pool = np.asarray(a["ip_pool"]).tolist()
    pool_ips: list[list[dict[str, Any]]] = [[] for _ in pools]
    for i, address in enumerate(ips):
        hs: list[str] = []
        for first, end in ranges[holder_start[i] : holder_start[i + 1]]:
            hs += holders(int(first), int(end))
        pool_ips[ip_pool[i]].append({"address": address, "holders": hs})

    states = {
        servers[s]: STATE_NAMES[c] for s, c in enumerate(np.asarray(a["server_initial_state"]).tolist()) if c
    }
    matrix = np.asarray(a["location_distance"], dtype=np.float64)
    doc: dict[str, Any] = {
        "version": 1,
        "locations": [{"id": lid} for lid in locations],
        "data_centers": [
            {"id": dcs[d], "location": locations[int(dc_location[d])], "servers": members[d]}
            for d in range(len(dcs))
        ],
        "pools": [{"id": p, "ips": pool_ips[k]} for k, p in enumerate(pools)],
        "distances": {
            "unit": compiled.distance_unit,
            "locations": locations,
            "matrix": [[None if math.isnan(v) else float(v) for v in row] for row in matrix.tolist()],
        },
    }
    if states:
        doc["server_states"] = states
    if zones:
        zone_pool = np.asarray(a["zone_pool"]).tolist()
        doc["zones"] = {z: pools[zone_pool[k]] for k, z in enumerate(zones)}
    return doc


def topology_from_compiled(compiled: Any) -> Topology:
    """``Topology`` rebuilt from a ``CompiledTopology`` (see the module docstring)."""
    return Topology.from_dict(topology_document(compiled), source="compiled tables")
