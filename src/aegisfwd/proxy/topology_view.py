"""What the proxy reads from the compiled topology, resolved once per process: zones to pools,
IP holders, server ranges of state targets, and the initial states."""

from __future__ import annotations

import numpy as np

from ..compiled import CompiledTopology
from ..errors import UnknownIdError
from ..topology import STATE_CODES


class TopologyView:
    def __init__(self, compiled: CompiledTopology) -> None:
        self.compiled = compiled
        self.servers = list(compiled.servers)
        self.pools = list(compiled.pools)
        self.ips = list(compiled.ips)
        self.server_index = compiled.server_index
        self.pool_index = compiled.pool_index
        zp = compiled["zone_pool"]
        self.zone_pool = {z: int(zp[i]) for i, z in enumerate(compiled.zones)}
        self.ip_pool = compiled["ip_pool"].tolist()
        self.ip_family = compiled["ip_family"].tolist()
        self.ip_index = {ip: i for i, ip in enumerate(self.ips)}
        start, ranges = compiled["ip_holder_start"], compiled["ip_holder_ranges"].reshape(-1, 2)
        self.ip_holders = [
            [(int(a), int(b)) for a, b in ranges[start[i] : start[i + 1]]] for i in range(len(self.ips))
        ]
        self.initial_states = np.asarray(compiled["server_initial_state"], dtype=np.uint8).copy()

    def holds(self, server: int, ip: int) -> bool:
        return any(a <= server < b for a, b in self.ip_holders[ip])

    def target_range(self, target: str) -> tuple[int, int]:
        c = self.compiled
        if target in c.server_index:
            s = c.server_index[target]
            return s, s + 1
        if target in c.dc_index:
            d = c.dc_index[target]
            st = c["dc_server_start"]
            return int(st[d]), int(st[d + 1])
        if target in c.location_index:
            loc = c.location_index[target]
            st = c["location_server_start"]
            return int(st[loc]), int(st[loc + 1])
        raise UnknownIdError("server, DC or location", target)


def apply_state(states: np.ndarray, view: TopologyView, target: str, state: str) -> None:
    a, b = view.target_range(target)
    states[a:b] = STATE_CODES[state]
