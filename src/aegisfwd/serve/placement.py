"""Placement moves for the explorer: add or remove holders of one Aegis IP, checked like the loader.

A move names an address already in the topology (any spelling: it is compared in canonical form) and
holders to add and to remove. The result must still be a valid topology: every holder names a server,
DC or location (the loader's ``unknown-holder`` rule), and an IPv4 address sits in at most
``MAX_IPV4_LOCATIONS`` locations (the documented limit for splitting one IPv4 egress address). Only
one pool's holder lists change, so those are the only rules a move can break; checking them
directly takes microseconds where re-validating the whole document takes about a second.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from ..errors import AegisError
from ..topology import MAX_IPV4_LOCATIONS, AegisIP, Pool, Topology, canonical_ip_text


class PlacementError(AegisError, ValueError):
    """A placement move that names an unknown address or holder, or breaks a placement rule."""


@dataclass(frozen=True)
class PlacementMove:
    """Add and/or remove holders (server, DC or location ids) of one address."""

    address: str
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()


@dataclass(frozen=True)
class MoveResult:
    pool_index: int
    ip_position: int  # position of the IP within its pool
    before: tuple[str, ...]
    after: tuple[str, ...]
    locations: tuple[str, ...]  # the locations the address is held in after the move


class AddressBook:
    """Lookups a move needs, built once per skeleton (locations, DCs, servers do not change by moves).

    ``where``: canonical address text -> (pool index, position in the pool) of the original topology
    (moves change holders, never which pool an address is in); ``location_of``: server, DC or
    location id -> the location it names servers in (``None`` for a DC or location without servers).
    """

    def __init__(self, topology: Topology, ip_texts: Sequence[str] | None = None) -> None:
        # ``ip_texts``: the canonical text of every IP in compiled order (``CompiledTopology.ips``),
        # when at hand: formatting 60,000 addresses again costs most of a second.
        texts = iter(ip_texts) if ip_texts is not None else (ip.address for _, ip in topology.ordered_ips)
        self.where: dict[str, tuple[int, int]] = {}
        for p, pool in enumerate(topology.pools):
            for k in range(len(pool.ips)):
                self.where[next(texts)] = (p, k)
        self.location_order = topology.location_index
        self.location_of: dict[str, str | None] = {}
        for loc in topology.location_ids:
            a, b = topology.holder_range(loc)
            self.location_of[loc] = loc if b > a else None
        for dc in topology.data_centers:
            self.location_of[dc.id] = dc.location if dc.servers else None
            for s in dc.servers:
                self.location_of[s] = dc.location

    def find(self, address: str) -> tuple[int, int]:
        if not isinstance(address, str) or not address:
            raise PlacementError("address must be a non-empty string")
        try:
            canonical = canonical_ip_text(ipaddress.ip_network(address, strict=True))
        except ValueError:
            raise PlacementError(f"{address!r} is not an IP address or prefix") from None
        hit = self.where.get(canonical)
        if hit is None:
            raise PlacementError(f"address {canonical} is in no pool of the topology")
        return hit

    def holder_locations(self, holders: Iterable[str]) -> tuple[str, ...]:
        """The locations (in topology order) that the servers named by ``holders`` sit in."""
        found = {loc for h in holders if (loc := self.location_of.get(h)) is not None}
        return tuple(sorted(found, key=self.location_order.__getitem__))

    def check_ids(self, ids: Sequence[str], what: str) -> tuple[str, ...]:
        if isinstance(ids, str) or not isinstance(ids, (list, tuple)):
            raise PlacementError(f"{what} must be a list of server, DC or location ids")
        for h in ids:
            if not isinstance(h, str) or not h:
                raise PlacementError(f"{what}: {h!r} is not an id (a non-empty string)")
            if h not in self.location_of:
                raise PlacementError(
                    f"{what}: unknown holder {h!r} (not a server, DC or location) [unknown-holder]"
                )
        return tuple(ids)


def apply_move(topology: Topology, book: AddressBook, move: PlacementMove) -> tuple[Topology, MoveResult]:
    """The topology after ``move`` (a new object; ``topology`` is unchanged). Raises ``PlacementError``."""
    p, k = book.find(move.address)
    add = book.check_ids(move.add, "add")
    remove = book.check_ids(move.remove, "remove")
    if not add and not remove:
        raise PlacementError("a move needs holders to add or to remove")
    pool = topology.pools[p]
    ip = pool.ips[k]
    before = ip.holders
    for h in remove:
        if h not in before:
            raise PlacementError(
                f"remove: {h!r} is not a holder of {ip.address} (holders: {', '.join(before) or 'none'})"
            )
    for h in add:
        if h in before and h not in remove:
            raise PlacementError(f"add: {h!r} already holds {ip.address}")
    after = tuple(h for h in before if h not in remove) + tuple(dict.fromkeys(add))
    locations = book.holder_locations(after)
    if ip.family == 4 and len(locations) > MAX_IPV4_LOCATIONS:
        raise PlacementError(
            f"{ip.address} would sit in {len(locations)} locations ({', '.join(locations)}): an IPv4 address "
            f"may be split across at most {MAX_IPV4_LOCATIONS} locations"
        )
    new_ips = pool.ips[:k] + (AegisIP(ip.network, after),) + pool.ips[k + 1 :]
    pools = topology.pools[:p] + (Pool(pool.id, new_ips),) + topology.pools[p + 1 :]
    return replace(topology, pools=pools), MoveResult(p, k, before, after, locations)
