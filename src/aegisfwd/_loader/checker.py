"""The cross-reference pass: rules that need the whole document, one method per section.

Unique ids, known holders / locations / pools / state targets, the address rules and the distance
matrix. It reads the raw data, skipping exactly the parts the shape pass rejected, so that a bad
entry does not hide the errors of the others; it builds the ``topology`` model objects only when
nothing was found.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from ..topology import (
    STATE_NAMES,
    AegisIP,
    DataCenter,
    DistanceMatrix,
    IPNetwork,
    Location,
    Pool,
    Topology,
    canonical_ip_text,
)
from .addresses import parse_address
from .paths import Loc, describe, format_path

__all__ = ["Checker"]

DISTANCE_UNITS = ("km", "ms")
_STATES = frozenset(STATE_NAMES)


class Checker:
    """Cross-reference rules over the raw document, skipping what the shape pass rejected.

    ``run()`` checks the sections in file order; each section's method records its issues and
    returns its part of the model. The id spaces that later sections refer to (``ids``,
    ``location_ids``, ``pool_ids``) are filled in as their sections are read.
    """

    def __init__(self, data: dict[str, Any], blocked: set[Loc]) -> None:
        self.data = data
        self.blocked = blocked
        self.issues: list[tuple[Loc, str, str]] = []
        # id -> (kind, path of the first occurrence): locations, data centers and servers share it.
        self.ids: dict[str, tuple[str, Loc]] = {}
        self.location_ids: dict[str, Loc] = {}
        self.id_set: frozenset[str] = frozenset()
        self.pool_ids: dict[str, Loc] = {}
        self.has_distances = "distances" in data and data["distances"] is not None
        # A reference into a section that failed the shape check as a whole is not reported as
        # unknown: that section's own error says what is wrong.
        self.locations_known = self.ok(("locations",))
        self.ids_known = self.locations_known and self.ok(("data_centers",))

    # A part of the document is usable when neither it nor anything above it failed the shape check
    # (errors *inside* it, e.g. in one list entry, leave the rest of it usable).
    def ok(self, loc: Loc) -> bool:
        blocked = self.blocked
        if not blocked:
            return True
        for k in range(1, len(loc) + 1):
            if loc[:k] in blocked:
                return False
        return True

    def add(self, loc: Loc, code: str, message: str) -> None:
        self.issues.append((loc, code, message))

    def items(self, loc: Loc) -> Iterable[tuple[int, Any]]:
        """Usable entries of a list section."""
        if not self.ok(loc):
            return ()
        node: Any = self.data
        for part in loc:
            node = node[part]
        if not self.blocked:
            return enumerate(node)
        return ((i, v) for i, v in enumerate(node) if self.ok(loc + (i,)))

    def field(self, entry: dict[str, Any], loc: Loc, name: str) -> Any:
        """A usable field of a usable entry, or None."""
        if self.blocked and not self.ok(loc + (name,)):
            return None
        return entry.get(name)

    def run(self) -> Topology | None:
        """Check every section; the model when no issue was found, else None (see ``issues``)."""
        locations = self.locations()
        data_centers = self.data_centers()
        self.id_set = frozenset(self.ids)  # complete now: later sections only refer to it
        states = self.server_states()
        pools = self.pools()
        zones = self.zones()
        self.version()
        distances = self.distances()
        if self.issues:
            return None
        return Topology(
            locations=tuple(locations),
            data_centers=tuple(data_centers),
            pools=tuple(pools),
            server_states=states,
            zones=zones,
            distances=distances,
        )

    def _register(self, name: str, kind: str, loc: Loc) -> bool:
        """Claim ``name`` in the one id space of locations, data centers and servers."""
        first = self.ids.get(name)
        if first is not None:
            self.add(
                loc,
                "duplicate-id",
                (
                    f"id {name!r} is already used by the {first[0]} at {format_path(first[1])}; location, "
                    "data center and server ids must be unique across all three kinds"
                ),
            )
            return False
        self.ids[name] = (kind, loc)
        return True

    def locations(self) -> list[Location]:
        """``locations``: unique ids; lat and lon together, and required without a distance matrix."""
        ok, add, blocked = self.ok, self.add, bool(self.blocked)
        locations: list[Location] = []
        for i, entry in self.items(("locations",)):
            loc = ("locations", i)
            lid = self.field(entry, loc, "id")
            if lid is not None and self._register(lid, "location", loc + ("id",)):
                self.location_ids[lid] = loc
            lat_bad = blocked and not ok(loc + ("lat",))
            lon_bad = blocked and not ok(loc + ("lon",))
            lat = None if lat_bad else entry.get("lat")
            lon = None if lon_bad else entry.get("lon")
            if not (lat_bad or lon_bad):
                if (lat is None) != (lon is None):
                    add(
                        loc,
                        "missing-coordinates",
                        (
                            f"location {lid!r} has only {'lat' if lon is None else 'lon'}; give lat and lon together"
                        ),
                    )
                elif lat is None and not self.has_distances:
                    add(
                        loc,
                        "missing-coordinates",
                        (
                            f"location {lid!r} has no lat/lon; every location needs coordinates unless the "
                            "file has a `distances` matrix"
                        ),
                    )
            if lid is not None:
                name = self.field(entry, loc, "name")
                locations.append(
                    Location(
                        lid, name, None if lat is None else float(lat), None if lon is None else float(lon)
                    )
                )
        return locations

    def data_centers(self) -> list[DataCenter]:
        """``data_centers``: unique ids, a known location, each server in exactly one data center."""
        add = self.add
        dc_of_server: dict[str, tuple[str | None, Loc]] = {}
        data_centers: list[DataCenter] = []
        for i, entry in self.items(("data_centers",)):
            loc = ("data_centers", i)
            did = self.field(entry, loc, "id")
            if did is not None:
                self._register(did, "data center", loc + ("id",))
            where = self.field(entry, loc, "location")
            if where is not None and where not in self.location_ids and self.locations_known:
                add(
                    loc + ("location",),
                    "unknown-location",
                    f"data center {did!r} names location {where!r}, which is not in `locations`",
                )
            servers = []
            for j, sid in self.items(loc + ("servers",)):
                sloc = loc + ("servers", j)
                prev = dc_of_server.get(sid)
                if prev is not None:
                    if prev[1][:2] == loc:
                        add(
                            sloc,
                            "duplicate-id",
                            (
                                f"server {sid!r} is listed twice in data center {did!r} "
                                f"(first at {format_path(prev[1])})"
                            ),
                        )
                    else:
                        add(
                            sloc,
                            "server-in-two-dcs",
                            (
                                f"server {sid!r} is already listed in data center {prev[0]!r} at "
                                f"{format_path(prev[1])}; a server belongs to exactly one data center"
                            ),
                        )
                    continue
                if self._register(sid, "server", sloc):
                    dc_of_server[sid] = (did, sloc)
                servers.append(sid)
            if did is not None and where is not None:
                data_centers.append(DataCenter(did, where, tuple(servers)))
        return data_centers

    def server_states(self) -> dict[str, Any]:
        """``server_states``: known targets, and states up / draining / down."""
        states: dict[str, Any] = {}
        if not self.ok(("server_states",)):
            return states
        id_set = self.id_set
        blocked = bool(self.blocked)
        for target, state in (self.data.get("server_states") or {}).items():
            loc = ("server_states", target)
            if blocked and not self.ok(loc):
                continue
            if target not in id_set and self.ids_known:
                self.add(
                    loc,
                    "unknown-state-target",
                    f"{target!r} is not a server, data center or location of this topology",
                )
            if not isinstance(state, str) or state not in _STATES:
                got = repr(state) if isinstance(state, str) else describe(state)
                why = " (YAML reads an unquoted off/no as the boolean false)" if state is False else ""
                self.add(loc, "unknown-state", f"state must be one of up, draining, down; got {got}{why}")
            states[target] = state
        return states

    def pools(self) -> list[Pool]:
        """``pools``: unique pool ids, the address rules, each address once, known holders, and no
        overlap between IPv6 prefixes of different pools."""
        add = self.add
        blocked = bool(self.blocked)
        id_set = self.id_set
        pools: list[Pool] = []
        seen_addr: dict[tuple[int, int, int], Loc] = {}
        v6: list[tuple[int, int, int, Loc, IPNetwork]] = []  # (first, last, pool position, loc, net)
        parse = parse_address
        for i, entry in self.items(("pools",)):
            ploc = ("pools", i)
            pid = self.field(entry, ploc, "id")
            if pid is not None:
                first_pool = self.pool_ids.get(pid)
                if first_pool is not None:
                    add(
                        ploc + ("id",),
                        "duplicate-pool",
                        f"pool id {pid!r} is already used by {format_path(first_pool)}",
                    )
                else:
                    self.pool_ids[pid] = ploc
            ips: list[AegisIP] = []
            for j, ip in self.items(ploc + ("ips",)):
                iloc = ploc + ("ips", j)
                net = None
                text = self.field(ip, iloc, "address")
                if text is not None:
                    net, code, msg = parse(text)
                    if net is None:
                        add(iloc + ("address",), code, msg)
                    else:
                        key = (net.version, int(net.network_address), net.prefixlen)
                        first_addr = seen_addr.get(key)
                        if first_addr is not None:
                            add(
                                iloc + ("address",),
                                "duplicate-address",
                                (
                                    f"{canonical_ip_text(net)} already appears at {format_path(first_addr)}; "
                                    "an address appears once in the whole file"
                                ),
                            )
                            net = None
                        else:
                            seen_addr[key] = iloc
                            if net.version == 6:
                                first6 = int(net.network_address)
                                v6.append((first6, first6 + (1 << (128 - net.prefixlen)) - 1, i, iloc, net))
                # The world topology has millions of holder entries: check them with one C-level
                # subset test, and look at them one by one only when it fails or parts are bad.
                listed = ip["holders"] if not blocked else [h for _, h in self.items(iloc + ("holders",))]
                if self.ids_known and not id_set.issuperset(listed):
                    for k, holder in self.items(iloc + ("holders",)):
                        if holder not in id_set:
                            add(
                                iloc + ("holders", k),
                                "unknown-holder",
                                f"holder {holder!r} is not a server, data center or location of this topology",
                            )
                if net is not None:
                    ips.append(AegisIP(net, tuple(listed)))
            if pid is not None:
                pools.append(Pool(pid, tuple(ips)))
        self._check_overlaps(v6)
        return pools

    def zones(self) -> dict[str, str]:
        """``zones``: each zone names a known pool."""
        zones: dict[str, str] = {}
        if not self.ok(("zones",)):
            return zones
        blocked = bool(self.blocked)
        pools_known = self.ok(("pools",))
        for zone, pool in (self.data.get("zones") or {}).items():
            loc = ("zones", zone)
            if blocked and not self.ok(loc):
                continue
            if pool not in self.pool_ids and pools_known:
                self.add(loc, "unknown-pool", f"zone {zone!r} names pool {pool!r}, which is not in `pools`")
            zones[zone] = pool
        return zones

    def version(self) -> None:
        """``version``: 1, the only one there is."""
        if self.ok(("version",)) and self.data.get("version", 1) != 1:
            self.add(("version",), "unsupported-version", f"version must be 1, got {self.data['version']!r}")

    def _check_overlaps(self, v6: list[tuple[int, int, int, Loc, IPNetwork]]) -> None:
        """IPv6 prefixes (and addresses) of different pools may not overlap.

        Prefixes either nest or are disjoint, so after sorting by (first address, widest first) the
        entries that contain the current one are exactly a stack: O(n log n), not O(n^2).
        """
        if len(v6) < 2:
            return
        order = {loc: n for n, (_, _, _, loc, _) in enumerate(v6)}  # file order
        v6 = sorted(v6, key=lambda t: (t[0], -t[1]))
        pool_names = self._pool_names()
        stack: list[tuple[int, int, int, Loc, IPNetwork]] = []
        for cur in v6:
            first, _last, pool, loc, net = cur
            while stack and stack[-1][1] < first:
                stack.pop()
            for outer in reversed(stack):  # innermost container first; depth <= 129
                if outer[2] != pool:
                    inner_txt, outer_txt = canonical_ip_text(net), canonical_ip_text(outer[4])
                    if order[loc] > order[outer[3]]:
                        at, msg = (
                            loc,
                            (
                                f"{inner_txt} lies inside {outer_txt} of pool {pool_names[outer[2]]} at "
                                f"{format_path(outer[3])}"
                            ),
                        )
                    else:
                        at, msg = (
                            outer[3],
                            (
                                f"{outer_txt} contains {inner_txt} of pool {pool_names[pool]} at "
                                f"{format_path(loc)}"
                            ),
                        )
                    self.add(
                        at + ("address",),
                        "overlapping-prefix",
                        msg + "; IPv6 prefixes of different pools may not overlap",
                    )
                    break
            stack.append(cur)

    def _pool_names(self) -> dict[int, str]:
        out = {}
        for i, entry in enumerate(self.data.get("pools") or []):
            pid = entry.get("id") if isinstance(entry, dict) else None
            out[i] = repr(pid) if isinstance(pid, str) and pid else f"pools[{i}]"
        return out

    def distances(self) -> DistanceMatrix | None:
        """The ``distances`` matrix: unit, every location listed once, finite non-negative values."""
        if not (self.has_distances and self.ok(("distances",))):
            return None
        location_ids, locations_known = self.location_ids, self.locations_known
        d = self.data["distances"]
        base: Loc = ("distances",)
        add = self.add
        unit = self.field(d, base, "unit")
        if unit is not None and unit not in DISTANCE_UNITS:
            add(base + ("unit",), "bad-distance-unit", f"unit must be km or ms, got {unit!r}")
        listed_ok = self.ok(base + ("locations",))
        listed: list[str] = list(d["locations"]) if listed_ok else []
        if listed_ok and locations_known:
            seen: dict[str, int] = {}
            for k, lid in self.items(base + ("locations",)):
                if lid not in location_ids:
                    add(
                        base + ("locations", k),
                        "unknown-location",
                        f"{lid!r} is not a location of this topology",
                    )
                elif lid in seen:
                    add(
                        base + ("locations", k),
                        "incomplete-matrix",
                        f"{lid!r} is listed twice (first at distances.locations[{seen[lid]}])",
                    )
                else:
                    seen[lid] = k
            missing = [lid for lid in location_ids if lid not in seen]
            if missing:
                shown = ", ".join(repr(x) for x in missing[:10]) + (" ..." if len(missing) > 10 else "")
                add(
                    base + ("locations",),
                    "incomplete-matrix",
                    (
                        f"distances.locations must list every location exactly once; missing {len(missing)}: {shown}"
                    ),
                )
        rows: list[tuple[float | None, ...]] = []
        if self.ok(base + ("matrix",)):
            matrix = d["matrix"]
            n = len(listed)
            if listed_ok and len(matrix) != n:
                add(
                    base + ("matrix",),
                    "incomplete-matrix",
                    f"the matrix has {len(matrix)} rows but distances.locations lists {n} locations",
                )
            for i, row in self.items(base + ("matrix",)):
                if listed_ok and len(row) != n:
                    add(
                        base + ("matrix", i),
                        "incomplete-matrix",
                        f"row {i} has {len(row)} values, expected {n} (one per listed location)",
                    )
                out: list[float | None] = []
                for j, v in enumerate(row):
                    if v is None:
                        out.append(None)
                    elif (
                        isinstance(v, (int, float))
                        and not isinstance(v, bool)
                        and math.isfinite(v)
                        and v >= 0
                    ):
                        out.append(float(v))
                    else:
                        add(
                            base + ("matrix", i, j),
                            "bad-distance",
                            (
                                f"a distance must be a finite non-negative number or null (unreachable), "
                                f"got {describe(v)}"
                            ),
                        )
                rows.append(tuple(out))
        if self.issues:
            return None
        return DistanceMatrix(unit, tuple(listed), tuple(rows))
