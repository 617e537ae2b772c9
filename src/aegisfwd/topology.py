"""The topology model: locations -> data centers -> servers, Aegis IP pools, states, distances.

``Topology`` holds a *validated* topology (``Topology.from_dict`` / ``load_topology`` check every rule
of ``docs/topology-format.md`` and report all errors at once). It also fixes the canonical index
order that the compiled tables, both engines and batch results use (``docs/compiled-format.md``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .geo import haversine_km, round_distance, round_distances

if TYPE_CHECKING:  # pragma: no cover
    from .compiled import CompiledTopology

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
State = Literal["up", "draining", "down"]
STATE_CODES: dict[str, int] = {"up": 0, "draining": 1, "down": 2}
STATE_NAMES: tuple[str, ...] = ("up", "draining", "down")
#: The documented limit on placement: one IPv4 egress address may be split across at most this many
#: locations (docs/decision.md). Placement tools (the explorer's moves, the advice) obey it.
MAX_IPV4_LOCATIONS = 4


@dataclass(frozen=True)
class Location:
    id: str
    name: str | None = None
    lat: float | None = None
    lon: float | None = None


@dataclass(frozen=True)
class DataCenter:
    id: str
    location: str
    servers: tuple[str, ...]


@dataclass(frozen=True)
class AegisIP:
    """One Aegis IP entry. ``network`` is a /32 or /128 for a single address."""

    network: IPNetwork
    holders: tuple[str, ...]

    @property
    def address(self) -> str:
        """Canonical text form: ``192.0.2.10``, ``2001:db8::1`` or ``2001:db8:a::/48``."""
        return canonical_ip_text(self.network)

    @property
    def family(self) -> int:
        return self.network.version


@dataclass(frozen=True)
class Pool:
    id: str
    ips: tuple[AegisIP, ...]


@dataclass(frozen=True)
class DistanceMatrix:
    unit: Literal["km", "ms"]
    locations: tuple[str, ...]
    matrix: tuple[tuple[float | None, ...], ...]


def canonical_ip_text(network: IPNetwork) -> str:
    full = 32 if network.version == 4 else 128
    return str(network.network_address) if network.prefixlen == full else str(network)


@dataclass(frozen=True, eq=False)
class Topology:
    """A validated topology. Build it with ``Topology.from_dict`` or ``load_topology``.

    The constructor itself does not validate: it is for code that already holds checked parts.
    """

    locations: tuple[Location, ...]
    data_centers: tuple[DataCenter, ...]
    pools: tuple[Pool, ...]
    server_states: dict[str, State] = field(default_factory=dict)
    zones: dict[str, str] = field(default_factory=dict)
    distances: DistanceMatrix | None = None

    # ---- construction ---------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, *, source: str | None = None) -> Topology:
        """Validate a parsed topology document (``docs/topology-format.md``) and build the model.

        Raises ``TopologyError`` listing every problem with its path.
        """
        from ._loader import topology_from_dict

        return topology_from_dict(data, source=source)

    def to_dict(self) -> dict[str, Any]:
        """The topology as a plain document that ``from_dict`` accepts (round trip)."""
        from ._loader import topology_to_dict

        return topology_to_dict(self)

    def compile(self) -> CompiledTopology:
        """Compile into the dense tables the engines run on (``docs/compiled-format.md``)."""
        from .compiled import compile_topology

        return compile_topology(self)

    # ---- equality -----------------------------------------------------------------------------
    def _fields(self) -> tuple[Any, ...]:
        return (self.locations, self.data_centers, self.pools, self.server_states, self.zones, self.distances)

    def __eq__(self, other: object) -> bool:
        """Same locations, DCs, pools (in order), states, zones and distances: ``from_dict(to_dict(t)) == t``."""
        if not isinstance(other, Topology):
            return NotImplemented
        return self is other or self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash((self.locations, self.data_centers, self.pools, self.distances))

    # ---- canonical index order ---------------------------------------------------------------
    @cached_property
    def location_ids(self) -> tuple[str, ...]:
        return tuple(loc.id for loc in self.locations)

    @cached_property
    def location_index(self) -> dict[str, int]:
        return {lid: i for i, lid in enumerate(self.location_ids)}

    @cached_property
    def ordered_data_centers(self) -> tuple[DataCenter, ...]:
        """DCs sorted by location index (stable: file order within a location)."""
        li = self.location_index
        return tuple(sorted(self.data_centers, key=lambda dc: li[dc.location]))

    @cached_property
    def dc_ids(self) -> tuple[str, ...]:
        return tuple(dc.id for dc in self.ordered_data_centers)

    @cached_property
    def dc_index(self) -> dict[str, int]:
        return {did: i for i, did in enumerate(self.dc_ids)}

    @cached_property
    def server_ids(self) -> tuple[str, ...]:
        return tuple(s for dc in self.ordered_data_centers for s in dc.servers)

    @cached_property
    def server_index(self) -> dict[str, int]:
        return {sid: i for i, sid in enumerate(self.server_ids)}

    @cached_property
    def pool_ids(self) -> tuple[str, ...]:
        return tuple(p.id for p in self.pools)

    @cached_property
    def pool_index(self) -> dict[str, int]:
        return {pid: i for i, pid in enumerate(self.pool_ids)}

    @cached_property
    def ordered_ips(self) -> tuple[tuple[int, AegisIP], ...]:
        """(pool index, IP) in IP index order: by pool, then file order."""
        return tuple((p, ip) for p, pool in enumerate(self.pools) for ip in pool.ips)

    @cached_property
    def dc_server_ranges(self) -> tuple[tuple[int, int], ...]:
        """``[first, end)`` server range of each DC, in DC index order."""
        out = []
        start = 0
        for dc in self.ordered_data_centers:
            out.append((start, start + len(dc.servers)))
            start += len(dc.servers)
        return tuple(out)

    @cached_property
    def location_server_ranges(self) -> tuple[tuple[int, int], ...]:
        """``[first, end)`` server range of each location (empty range for a location with no DC)."""
        li = self.location_index
        first = [0] * len(self.locations)
        end = [0] * len(self.locations)
        seen = [False] * len(self.locations)
        for dc, (a, b) in zip(self.ordered_data_centers, self.dc_server_ranges, strict=True):
            loc = li[dc.location]
            if not seen[loc]:
                first[loc], seen[loc] = a, True
            end[loc] = b
        # A location without DCs gets an empty range at the position it would occupy.
        cursor = 0
        for loc in range(len(self.locations)):
            if not seen[loc]:
                first[loc] = end[loc] = cursor
            cursor = end[loc]
        return tuple(zip(first, end, strict=True))

    def holder_range(self, name: str) -> tuple[int, int]:
        """Server range named by a holder (a server, DC or location id). KeyError if unknown."""
        if name in self.server_index:
            s = self.server_index[name]
            return (s, s + 1)
        if name in self.dc_index:
            return self.dc_server_ranges[self.dc_index[name]]
        return self.location_server_ranges[self.location_index[name]]

    def initial_states(self) -> np.ndarray:
        """uint8 state code per server (0 up, 1 draining, 2 down); most specific entry wins."""
        states = np.zeros(len(self.server_ids), dtype=np.uint8)
        # Apply location, then DC, then server entries: later (more specific) overwrite earlier.
        for kind in (self.location_index, self.dc_index, self.server_index):
            for target, state in self.server_states.items():
                if target in kind:
                    a, b = self.holder_range(target)
                    states[a:b] = STATE_CODES[state]
        return states

    def server_keys(self) -> np.ndarray:
        """uint64 rendezvous key per server, in server index order (docs/hashing.md): what the
        compiler stores as ``server_key``. A method, like ``distance_matrix``, so that a topology
        built around known tables (the explorer's moved-pools topology) can hand them over."""
        from . import _hashing

        return np.fromiter(
            map(_hashing.server_key, self.server_ids), dtype=np.uint64, count=len(self.server_ids)
        )

    @property
    def distance_unit(self) -> str:
        return self.distances.unit if self.distances is not None else "km"

    def distance_matrix(self) -> np.ndarray:
        """float64 L x L matrix (row = from) rounded to 3 decimals; NaN = unreachable; diagonal 0."""
        n = len(self.locations)
        out = np.zeros((n, n), dtype=np.float64)
        if self.distances is not None:
            pos = {lid: k for k, lid in enumerate(self.distances.locations)}
            order = np.array([pos[lid] for lid in self.location_ids], dtype=np.intp)
            # One C-level conversion (None -> NaN) and one fancy-index reorder, not n^2 Python steps:
            # a 3,000-location matrix is 9 million values.
            matrix = np.array(self.distances.matrix, dtype=np.float64).reshape(n, n)
            out = round_distances(matrix[np.ix_(order, order)])
            np.fill_diagonal(out, 0.0)
            return out
        for i, a in enumerate(self.locations):
            for j in range(i + 1, n):
                b = self.locations[j]
                assert a.lat is not None and a.lon is not None and b.lat is not None and b.lon is not None
                out[i, j] = out[j, i] = round_distance(haversine_km(a.lat, a.lon, b.lat, b.lon))
        return out
