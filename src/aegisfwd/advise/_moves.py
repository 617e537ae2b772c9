"""Placement moves and applying them to a ``Topology`` (the patched topology ``--patch`` writes).

A move changes only where one pool's IPv4 addresses are held; servers, DCs, locations, states,
zones and distances stay as they are, so the log resolves to the same ingress servers before and
after (the ingress choice depends on servers and states only).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import AegisError
from ..topology import AegisIP, Pool, Topology

MOVE_KINDS = ("add", "extend", "new-address", "swap")


class MoveError(AegisError, ValueError):
    """A move that does not fit the topology (unknown pool or address, an address already in use)."""


@dataclass(frozen=True)
class Move:
    """One change to one pool's IPv4 placement.

    * ``add``: ``address`` becomes held at a location it was not held at (``holders``: the DC ids,
      or the location id when all of its DCs);
    * ``extend``: more DCs of a location where ``address`` is already held;
    * ``new-address``: a new IPv4 ``address`` for the pool, held by ``holders``;
    * ``swap``: ``address`` leaves ``removed_location`` (every holder entry there) and is held by
      ``holders`` at ``location`` instead (the address was at the four-location limit).
    """

    kind: str
    pool: str
    address: str
    location: str
    holders: tuple[str, ...]
    removed_location: str | None = None

    def describe(self) -> str:
        where = ", ".join(self.holders)
        if self.kind == "add":
            return f"add {self.address} at {self.location} ({where})"
        if self.kind == "extend":
            return f"extend {self.address} at {self.location} ({where})"
        if self.kind == "new-address":
            return f"new address {self.address} at {self.location} ({where})"
        return f"move {self.address} from {self.removed_location} to {self.location} ({where})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "pool": self.pool,
            "address": self.address,
            "location": self.location,
            "holders": list(self.holders),
            "removed_location": self.removed_location,
        }


def holder_locations(topology: Topology) -> dict[str, str]:
    """Location id of every name a holder list may use (server, DC or location id)."""
    out: dict[str, str] = {loc.id: loc.id for loc in topology.locations}
    for dc in topology.data_centers:
        out[dc.id] = dc.location
        for s in dc.servers:
            out[s] = dc.location
    return out


def apply_moves(topology: Topology, moves: list[Move]) -> Topology:
    """A new topology with ``moves`` applied in order (``topology`` is not changed)."""
    if not moves:
        return topology
    index = {p.id: p for p in topology.pools}
    pools: dict[str, list[AegisIP]] = {}  # copies of the pools a move touches
    # Only what the moves need: every holder's location for a swap, every address for a new one
    # (both are whole-topology passes, costly on a world-sized topology).
    where = holder_locations(topology) if any(m.kind == "swap" for m in moves) else {}
    used = (
        {ip.network for p in topology.pools for ip in p.ips}
        if any(m.kind == "new-address" for m in moves)
        else set()
    )
    known = _holder_names(topology)
    for m in moves:
        if m.kind not in MOVE_KINDS:
            raise MoveError(f"unknown move kind {m.kind!r}")
        if m.pool not in index:
            raise MoveError(f"unknown pool {m.pool!r}")
        ips = pools.setdefault(m.pool, list(index[m.pool].ips))
        for h in m.holders:
            if h not in known:
                raise MoveError(f"unknown holder {h!r} in a move of pool {m.pool!r}")
        if m.kind == "new-address":
            try:
                net = ipaddress.IPv4Network(m.address)
            except ValueError as exc:
                raise MoveError(f"new address {m.address!r} is not an IPv4 address: {exc}") from None
            if net.prefixlen != 32:
                raise MoveError(f"new address {m.address!r} must be a single IPv4 address")
            if net in used:
                raise MoveError(f"new address {m.address} is already in the topology")
            used.add(net)
            ips.append(AegisIP(net, tuple(m.holders)))
            continue
        k = next((i for i, ip in enumerate(ips) if ip.address == m.address), None)
        if k is None:
            raise MoveError(f"pool {m.pool!r} has no address {m.address!r}")
        holders = ips[k].holders
        if m.kind == "swap":
            holders = tuple(h for h in holders if where.get(h) != m.removed_location)
        holders = holders + tuple(h for h in m.holders if h not in holders)
        ips[k] = AegisIP(ips[k].network, holders)
    new_pools = tuple(Pool(p.id, tuple(pools[p.id])) if p.id in pools else p for p in topology.pools)
    return _like(topology, new_pools, dict(topology.zones))


def _holder_names(topology: Topology) -> Any:
    class _Names:
        def __contains__(self, name: object) -> bool:
            return (
                name in topology.location_index or name in topology.dc_index or name in topology.server_index
            )

    return _Names()


class _KnownDistances(Topology):
    """A topology whose distance matrix is already known (moves never change distances): the
    haversine matrix of a world-sized topology costs ~0.8 s to recompute for every patched copy."""

    def distance_matrix(self) -> np.ndarray:
        return self.__dict__["_matrix"].copy()


def _like(topology: Topology, pools: tuple[Pool, ...], zones: dict[str, str]) -> Topology:
    """``topology`` with other pools and zones; same locations, DCs, states and distances."""
    matrix = topology.__dict__.get("_matrix")
    if topology.distances is not None:
        return Topology(
            topology.locations,
            topology.data_centers,
            pools,
            dict(topology.server_states),
            zones,
            topology.distances,
        )
    out = _KnownDistances(
        topology.locations,
        topology.data_centers,
        pools,
        dict(topology.server_states),
        zones,
        topology.distances,
    )
    out.__dict__["_matrix"] = topology.distance_matrix() if matrix is None else matrix
    return out


def only_pools(topology: Topology, pool_ids: set[str]) -> Topology:
    """The same servers, states and distances with only ``pool_ids`` (and no zones): enough to decide
    those pools' requests, and much quicker to compile than a whole world."""
    return _like(topology, tuple(p for p in topology.pools if p.id in pool_ids), {})


def write_topology(topology: Topology, path: Any) -> None:
    """Write a topology file (YAML for .yaml/.yml, JSON for .json, TOML for .toml)."""
    import json
    from pathlib import Path

    p = Path(path)
    doc = topology.to_dict()
    suffix = p.suffix.lower()
    if suffix in (".yaml", ".yml"):
        import yaml

        text = yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=120)
    elif suffix == ".json":
        text = json.dumps(doc, indent=1) + "\n"
    elif suffix == ".toml":
        try:
            import tomli_w  # type: ignore[import-not-found, unused-ignore]
        except ModuleNotFoundError:
            raise MoveError("writing TOML needs the tomli-w package; write .yaml or .json instead") from None
        text = tomli_w.dumps(doc)
    else:
        raise MoveError(
            f"{p}: the patch is written as .yaml, .yml or .json (got {p.suffix or 'no suffix'!r})"
        )
    try:
        p.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise MoveError(f"cannot write {p}: {exc.strerror or exc}") from None
