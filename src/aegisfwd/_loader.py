"""Reading, validating and writing topology documents (SPEC "Topology file", docs/topology-format.md).

Three passes, so that one file reports *all* of its errors at once:

1. **Parse** (``load_topology_file``): JSON, YAML or TOML into plain data. Duplicate mapping keys, which
   YAML and Python's JSON would otherwise resolve silently (last one wins), are errors here.
2. **Shape** (pydantic v2, strict mode, unknown keys forbidden): types, required fields, non-empty ids,
   coordinate ranges. Nothing is converted: a YAML ``NO`` that loaded as ``False`` is an error whose
   message says what it loaded as and to quote it.
3. **Cross references** (this module, plain Python): unique ids, known holders / locations / pools /
   state targets, address rules, distance matrix. This pass reads the raw data, skipping exactly the
   parts the shape pass rejected, so a bad entry does not hide the errors of the others.

Only when no pass found anything are the model objects of ``topology.py`` built.
"""

from __future__ import annotations

import datetime as _dt
import gc
import ipaddress
import json
import math
import socket
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from .errors import TopologyError, TopologyIssue
from .topology import (
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

__all__ = ["ERROR_CODES", "load_topology_file", "topology_from_dict", "topology_to_dict"]

#: Every code a ``TopologyIssue`` from this module can carry (documented in docs/topology-format.md).
ERROR_CODES: frozenset[str] = frozenset(
    {
        # reading the file
        "unsupported-extension",
        "file-not-found",
        "read-error",
        "parse-error",
        "duplicate-key",
        # shape
        "wrong-type",
        "missing-field",
        "unknown-field",
        "empty-id",
        "unsupported-version",
        "bad-coordinate",
        "bad-distance-unit",
        # cross references
        "duplicate-id",
        "server-in-two-dcs",
        "unknown-location",
        "duplicate-pool",
        "unknown-holder",
        "invalid-address",
        "ipv4-prefix",
        "host-bits-set",
        "ipv6-zone-id",
        "ipv4-mapped",
        "duplicate-address",
        "overlapping-prefix",
        "missing-coordinates",
        "bad-distance",
        "incomplete-matrix",
        "unknown-state-target",
        "unknown-state",
        "unknown-pool",
    }
)

Loc = tuple[Any, ...]

# ---------------------------------------------------------------------------------------------------
# Shape schema (pydantic v2, strict). Its output is not used: it only finds errors with their location.
# ---------------------------------------------------------------------------------------------------

_Id = Annotated[str, Field(min_length=1)]
_Lat = Annotated[float, Field(ge=-90.0, le=90.0, allow_inf_nan=False)]
_Lon = Annotated[float, Field(ge=-180.0, le=180.0, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", cache_strings=False)


class _LocationShape(_Strict):
    id: _Id
    name: str | None = None
    lat: _Lat | None = None
    lon: _Lon | None = None


class _DataCenterShape(_Strict):
    id: _Id
    location: _Id
    servers: list[_Id]


class _IPShape(_Strict):
    address: str
    holders: list[_Id]


class _PoolShape(_Strict):
    id: _Id
    ips: list[_IPShape]


class _DistancesShape(_Strict):
    unit: str  # km or ms: checked below, to give its own code
    locations: list[_Id]
    matrix: list[list[Any]]  # values checked below (finite, non-negative or null: ``bad-distance``)


class _DocumentShape(_Strict):
    version: int = 1  # strict int: True and 1.0 are rejected; == 1 is checked below
    locations: list[_LocationShape]
    data_centers: list[_DataCenterShape]
    server_states: dict[_Id, Any] = {}  # values checked below, to give them the code unknown-state
    pools: list[_PoolShape]
    zones: dict[_Id, _Id] = {}
    distances: _DistancesShape | None = None


_DICT_SECTIONS = ("server_states", "zones")
_DISTANCE_UNITS = ("km", "ms")
_STATES = frozenset(STATE_NAMES)

# ---------------------------------------------------------------------------------------------------
# Paths and messages
# ---------------------------------------------------------------------------------------------------


def _key_text(key: Any) -> str:
    if isinstance(key, str):
        return json.dumps(key, ensure_ascii=False)
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, (_dt.date, _dt.time)):
        return key.isoformat()
    return repr(key)


def format_path(loc: Loc) -> str:
    """``('pools', 0, 'ips', 1, 'holders', 0)`` -> ``pools[0].ips[1].holders[0]``.

    Keys of the two mapping sections are written in brackets, JSON-quoted, because zone names contain
    dots: ``zones["example.com"]``, ``server_states["lhr01-s002"]``.
    """
    out: list[str] = []
    for k, part in enumerate(loc):
        if k == 1 and loc[0] in _DICT_SECTIONS:
            out.append(f"[{_key_text(part)}]")
        elif isinstance(part, int) and not isinstance(part, bool):
            out.append(f"[{part}]")
        else:
            out.append(("." if out else "") + str(part))
    return "".join(out)


def _describe(value: Any) -> str:
    """What a value loaded as, in the words of the file formats."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "the boolean true" if value else "the boolean false"
    if isinstance(value, int):
        return f"the integer {value}"
    if isinstance(value, float):
        return f"the number {value!r}"
    if isinstance(value, (_dt.date, _dt.datetime, _dt.time)):
        return f"the date/time {value.isoformat()}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the string {value!r}"
    return f"a {type(value).__name__}"


def _not_a_string(value: Any) -> str:
    """Message for a value that should have been text: what it became, why, and to quote it."""
    why = ""
    if value is None:
        why = " (an empty value, `~` or `null` in YAML)"
    elif isinstance(value, bool):
        why = " (YAML 1.1 reads unquoted yes/no/on/off/true/false, in any case, as booleans)"
    elif isinstance(value, int):
        why = " (in YAML 1.1 unquoted digits are a number, and a leading 0 makes them octal: 0123 is 83)"
    elif isinstance(value, float):
        why = " (YAML reads unquoted 1.5, 1.0e+3, .inf as numbers)"
    elif isinstance(value, (_dt.date, _dt.time)):
        why = " (an unquoted YYYY-MM-DD is a date in YAML and TOML)"
    hint = (
        ""
        if isinstance(value, (dict, list))
        else "; quote it in the file, exactly as meant, so that it stays text"
    )
    return f"expected a string, but this loaded as {_describe(value)}{why}{hint}"


_KEY_NOUN = {"server_states": "state target", "zones": "zone name"}


def _shape_issue(err: ErrorDetails) -> tuple[Loc, str, str]:
    """Turn one pydantic error into (loc, code, message)."""
    typ: str = err["type"]
    loc: Loc = tuple(err["loc"])
    value = err.get("input")
    is_key = bool(loc) and loc[-1] == "[key]"
    if is_key:
        # pydantic writes a non-string key into loc as it can (False becomes 0); the input is the key.
        loc = loc[:-2] + (value,)
    field = loc[-1] if loc else None
    where = f"the {_KEY_NOUN.get(loc[0], 'key')} " if is_key else ""

    if typ == "missing":
        return loc, "missing-field", f"required field {field!r} is missing"
    if typ == "extra_forbidden":
        return (
            loc,
            "unknown-field",
            f"unknown field {field!r} (check the spelling; allowed fields are listed in docs)",
        )
    if loc == ("version",):
        return loc, "unsupported-version", f"version must be the integer 1, got {_describe(value)}"
    if len(loc) == 3 and loc[0] == "locations" and field in ("lat", "lon"):
        rng = "[-90, 90]" if field == "lat" else "[-180, 180]"
        return loc, "bad-coordinate", f"{field} must be a finite number in {rng}, got {_describe(value)}"
    if typ == "string_too_short":
        return loc, "empty-id", f"{where or 'an id '}must not be empty"
    if typ == "string_type":
        return loc, "wrong-type", (f"{where.strip()}: " if where else "") + _not_a_string(value)
    if typ in ("list_type", "dict_type", "model_type"):
        want = {"list_type": "a list", "dict_type": "a mapping", "model_type": "a mapping"}[typ]
        return loc, "wrong-type", f"expected {want}, but this loaded as {_describe(value)}"
    return loc, "wrong-type", f"{err['msg']} (got {_describe(value)})"


# ---------------------------------------------------------------------------------------------------
# Addresses
# ---------------------------------------------------------------------------------------------------

_AF_INET = socket.AF_INET
_AF_INET6 = socket.AF_INET6
_MAPPED_PREFIX = 0xFFFF  # ::ffff:0:0/96, shifted right by 32


def _parse_address(text: str) -> tuple[IPNetwork | None, str, str]:
    """Parse one Aegis IP entry. Returns (network, "", "") or (None, code, message).

    The common cases go through ``socket.inet_pton`` and build the network from integers, which is
    several times faster than parsing with ``ipaddress`` (about 62k entries in a world topology);
    anything unusual falls back to ``ipaddress`` for its precise error message.
    """
    if "%" in text:
        return None, "ipv6-zone-id", f"{text!r}: zone ids (%...) are not allowed; an Aegis IP is global"
    if ":" not in text:
        if "/" in text:
            return (
                None,
                "ipv4-prefix",
                (
                    f"{text!r}: IPv4 entries are single addresses without a prefix length (not even /32); "
                    "list each address of a range separately"
                ),
            )
        try:
            packed = socket.inet_pton(_AF_INET, text)
        except (OSError, ValueError):
            packed = None
        if packed is not None and socket.inet_ntop(_AF_INET, packed) == text:
            return ipaddress.IPv4Network((int.from_bytes(packed, "big"), 32)), "", ""
        try:
            addr4 = ipaddress.IPv4Address(text)
        except ValueError as exc:
            return None, "invalid-address", f"{text!r} is not an IPv4 or IPv6 address: {exc}"
        return ipaddress.IPv4Network((int(addr4), 32)), "", ""

    addr_text, slash, plen_text = text.partition("/")
    try:
        value = int.from_bytes(socket.inet_pton(_AF_INET6, addr_text), "big")
    except (OSError, ValueError):
        try:
            value = int(ipaddress.IPv6Address(addr_text))
        except ValueError as exc:
            return None, "invalid-address", f"{text!r} is not a valid IPv6 address or prefix: {exc}"
    if not slash:
        plen = 128
    elif plen_text.isascii() and plen_text.isdigit() and int(plen_text) <= 128:
        plen = int(plen_text)
    else:
        return None, "invalid-address", f"{text!r}: the prefix length must be an integer from 0 to 128"
    hostmask = (1 << (128 - plen)) - 1
    if value & hostmask:
        fixed = ipaddress.IPv6Network((value & ~hostmask, plen))
        return (
            None,
            "host-bits-set",
            (
                f"{text!r} has host bits set; the prefix is {fixed} (write that, or the single address "
                "without a prefix length)"
            ),
        )
    if plen >= 96 and value >> 32 == _MAPPED_PREFIX:
        mapped = ipaddress.IPv4Address(value & 0xFFFFFFFF)
        return (
            None,
            "ipv4-mapped",
            f"{text!r} is an IPv4-mapped IPv6 address; write the IPv4 address {mapped} instead",
        )
    return ipaddress.IPv6Network((value, plen)), "", ""


# ---------------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------------


class _Checker:
    """Cross-reference rules over the raw document, skipping what the shape pass rejected."""

    def __init__(self, data: dict[str, Any], blocked: set[Loc]) -> None:
        self.data = data
        self.blocked = blocked
        self.issues: list[tuple[Loc, str, str]] = []

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
        data = self.data
        ok = self.ok
        add = self.add
        blocked = bool(self.blocked)

        # ---- locations, data centers, servers: one id space -------------------------------------
        # id -> (kind, path of the first occurrence)
        ids: dict[str, tuple[str, Loc]] = {}
        location_ids: dict[str, Loc] = {}
        dc_of_server: dict[str, tuple[str | None, Loc]] = {}

        def register(name: str, kind: str, loc: Loc) -> bool:
            first = ids.get(name)
            if first is not None:
                add(
                    loc,
                    "duplicate-id",
                    (
                        f"id {name!r} is already used by the {first[0]} at {format_path(first[1])}; location, "
                        "data center and server ids must be unique across all three kinds"
                    ),
                )
                return False
            ids[name] = (kind, loc)
            return True

        has_distances = "distances" in data and data["distances"] is not None
        # A reference into a section that failed the shape check as a whole is not reported as unknown:
        # that section's own error says what is wrong.
        locations_known = ok(("locations",))
        ids_known = locations_known and ok(("data_centers",))
        locations: list[Location] = []
        for i, entry in self.items(("locations",)):
            loc = ("locations", i)
            lid = self.field(entry, loc, "id")
            if lid is not None and register(lid, "location", loc + ("id",)):
                location_ids[lid] = loc
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
                elif lat is None and not has_distances:
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

        data_centers: list[DataCenter] = []
        for i, entry in self.items(("data_centers",)):
            loc = ("data_centers", i)
            did = self.field(entry, loc, "id")
            if did is not None:
                register(did, "data center", loc + ("id",))
            where = self.field(entry, loc, "location")
            if where is not None and where not in location_ids and locations_known:
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
                if register(sid, "server", sloc):
                    dc_of_server[sid] = (did, sloc)
                servers.append(sid)
            if did is not None and where is not None:
                data_centers.append(DataCenter(did, where, tuple(servers)))

        # ---- states ------------------------------------------------------------------------------
        id_set = frozenset(ids)
        states: dict[str, Any] = {}
        if ok(("server_states",)):
            for target, state in (data.get("server_states") or {}).items():
                loc = ("server_states", target)
                if blocked and not ok(loc):
                    continue
                if target not in id_set and ids_known:
                    add(
                        loc,
                        "unknown-state-target",
                        f"{target!r} is not a server, data center or location of this topology",
                    )
                if not isinstance(state, str) or state not in _STATES:
                    got = repr(state) if isinstance(state, str) else _describe(state)
                    why = " (YAML reads an unquoted off/no as the boolean false)" if state is False else ""
                    add(loc, "unknown-state", f"state must be one of up, draining, down; got {got}{why}")
                states[target] = state

        # ---- pools and their IPs -----------------------------------------------------------------
        pool_ids: dict[str, Loc] = {}
        pools: list[Pool] = []
        seen_addr: dict[tuple[int, int, int], Loc] = {}
        v6: list[tuple[int, int, int, Loc, IPNetwork]] = []  # (first, last, pool position, loc, net)
        parse = _parse_address
        for i, entry in self.items(("pools",)):
            ploc = ("pools", i)
            pid = self.field(entry, ploc, "id")
            if pid is not None:
                first_pool = pool_ids.get(pid)
                if first_pool is not None:
                    add(
                        ploc + ("id",),
                        "duplicate-pool",
                        f"pool id {pid!r} is already used by {format_path(first_pool)}",
                    )
                else:
                    pool_ids[pid] = ploc
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
                if ids_known and not id_set.issuperset(listed):
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

        # ---- zones -------------------------------------------------------------------------------
        zones: dict[str, str] = {}
        if ok(("zones",)):
            for zone, pool in (data.get("zones") or {}).items():
                loc = ("zones", zone)
                if blocked and not ok(loc):
                    continue
                if pool not in pool_ids and ok(("pools",)):
                    add(loc, "unknown-pool", f"zone {zone!r} names pool {pool!r}, which is not in `pools`")
                zones[zone] = pool

        # ---- version, distances ------------------------------------------------------------------
        if ok(("version",)) and data.get("version", 1) != 1:
            add(("version",), "unsupported-version", f"version must be 1, got {data['version']!r}")
        distances = None
        if has_distances and ok(("distances",)):
            distances = self._check_distances(location_ids, locations_known)

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

    def _check_distances(self, location_ids: dict[str, Loc], locations_known: bool) -> DistanceMatrix | None:
        d = self.data["distances"]
        base: Loc = ("distances",)
        add = self.add
        unit = self.field(d, base, "unit")
        if unit is not None and unit not in _DISTANCE_UNITS:
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
                                f"got {_describe(v)}"
                            ),
                        )
                rows.append(tuple(out))
        if self.issues:
            return None
        return DistanceMatrix(unit, tuple(listed), tuple(rows))


def _order_key(data: Any, loc: Loc, cache: dict[int, dict[Any, int]]) -> list[int]:
    """Position of ``loc`` in the document, so that issues are listed in file order."""
    out: list[int] = []
    node = data
    for part in loc:
        if isinstance(node, dict):
            positions = cache.get(id(node))
            if positions is None:
                positions = cache[id(node)] = {(type(k), k): n for n, k in enumerate(node)}
            pos = positions.get((type(part), part))
            out.append(len(node) if pos is None else pos)
            node = None if pos is None else node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            out.append(part)
            node = node[part]
        else:
            out.append(1 << 30)
            node = None
    return out


def _fail(issues: list[TopologyIssue], source: str | None) -> TopologyError:
    return TopologyError(issues, source)


@contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many small acyclic objects.

    A world topology creates a few hundred thousand objects next to a document of about as many;
    the collector's repeated full passes over them would triple the load time (2.7 s instead of
    0.8 s), and nothing built here forms reference cycles.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def topology_from_dict(data: Any, *, source: str | None = None) -> Topology:
    """Validate a parsed topology document and build the model; ``TopologyError`` lists every problem."""
    with _no_gc():
        return _topology_from_dict(data, source)


def _topology_from_dict(data: Any, source: str | None) -> Topology:
    if not isinstance(data, dict):
        raise _fail(
            [
                TopologyIssue(
                    "wrong-type",
                    "",
                    f"the document must be a mapping (table) at the top level, got {_describe(data)}",
                )
            ],
            source,
        )

    shape: list[tuple[Loc, str, str]] = []
    try:
        _DocumentShape.model_validate(data)
    except ValidationError as exc:
        shape = [_shape_issue(e) for e in exc.errors(include_url=False, include_context=False)]
    checker = _Checker(data, {loc for loc, _, _ in shape})
    topo = checker.run()
    found = shape + checker.issues
    if found:
        cache: dict[int, dict[Any, int]] = {}
        found.sort(key=lambda t: _order_key(data, t[0], cache))
        raise _fail([TopologyIssue(code, format_path(loc), msg) for loc, code, msg in found], source)
    assert topo is not None
    return topo


def topology_to_dict(topo: Topology) -> dict[str, Any]:
    """A plain document (dicts, lists, str, float, None) that ``topology_from_dict`` accepts."""
    with _no_gc():
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


# ---------------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------------


def _yaml_load(text: str, issues: list[TopologyIssue]) -> Any:
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class _Loader(base):  # type: ignore[misc, valid-type]
        """Safe loader that reports duplicate keys instead of silently keeping the last one."""

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            if isinstance(node, yaml.MappingNode):
                seen: dict[Any, Any] = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node, deep=True)
                    try:
                        marker = (type(key), key)
                        first = seen.get(marker)
                    except TypeError:  # unhashable: the base class reports it
                        continue
                    if first is not None:
                        m, f = key_node.start_mark, first.start_mark
                        issues.append(
                            TopologyIssue(
                                "duplicate-key",
                                "",
                                (
                                    f"line {m.line + 1}, column {m.column + 1}: key {key!r} appears twice in one "
                                    f"mapping (first at line {f.line + 1}); YAML would silently keep only the last"
                                ),
                            )
                        )
                    else:
                        seen[marker] = key_node
            return super().construct_mapping(node, deep=deep)

    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: builds plain data only
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = "; ".join(x for x in (exc.context, exc.problem) if x)
        raise _ParseError(f"{where}{problem or exc}") from None
    except yaml.YAMLError as exc:
        raise _ParseError(str(exc)) from None


def _json_load(text: str, issues: list[TopologyIssue]) -> Any:
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in items:
            if k in out:
                issues.append(
                    TopologyIssue(
                        "duplicate-key",
                        "",
                        (
                            f"key {k!r} appears twice in one object; JSON readers would silently keep only the last"
                        ),
                    )
                )
            out[k] = v
        return out

    try:
        return json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        raise _ParseError(f"line {exc.lineno}, column {exc.colno}: {exc.msg}") from None


def _toml_load(text: str, issues: list[TopologyIssue]) -> Any:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    try:
        return tomllib.loads(text)  # duplicate keys are already an error in TOML
    except tomllib.TOMLDecodeError as exc:
        raise _ParseError(str(exc)) from None  # the message carries "(at line L, column C)"


class _ParseError(Exception):
    pass


_READERS: dict[str, Callable[[str, list[TopologyIssue]], Any]] = {
    ".json": _json_load,
    ".yaml": _yaml_load,
    ".yml": _yaml_load,
    ".toml": _toml_load,
}


def load_topology_file(path: Path) -> Topology:
    """Read, validate and build a topology from a ``.json``, ``.yaml``/``.yml`` or ``.toml`` file."""
    path = Path(path)
    source = str(path)
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise _fail(
            [
                TopologyIssue(
                    "unsupported-extension",
                    "",
                    (
                        f"cannot tell the format of {path.name!r} from its extension; use .json, .yaml, .yml or .toml"
                    ),
                )
            ],
            source,
        )
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise _fail([TopologyIssue("file-not-found", "", f"no such file: {source}")], source) from None
    except OSError as exc:
        raise _fail(
            [TopologyIssue("read-error", "", f"cannot read {source}: {exc.strerror or exc}")], source
        ) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _fail(
            [TopologyIssue("parse-error", "", f"byte {exc.start}: the file is not UTF-8 text")], source
        ) from None
    dupes: list[TopologyIssue] = []
    try:
        data = reader(text, dupes)
    except _ParseError as exc:
        raise _fail([TopologyIssue("parse-error", "", str(exc))], source) from None
    if dupes:
        raise _fail(dupes, source)
    return topology_from_dict(data, source=source)
