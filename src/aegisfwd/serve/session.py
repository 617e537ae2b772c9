"""The explorer's what-if state: server states and placement moves over one topology, and the
decisions of every loaded row under them, next to the baseline (the topology as loaded).

State changes go to a private ``af.Engine`` with ``set_states`` (no recompile). A placement move
changes one pool's holders; recompiling the world topology for it takes seconds, so the session
compiles only the pools whose placement changed into a small *moved-pools* topology (the same
locations, DCs, servers and distances, those pools only) and decides just their rows with it. Keys
and nearest-location orders depend only on ids and coordinates, never on array positions (docs/hashing.md),
so its answers are those of the whole recompiled topology (the tests hold them equal); its IP indices
are mapped back to the full topology's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..engine import Engine
from ..errors import AegisError, UnknownIdError
from ..topology import STATE_CODES, STATE_NAMES, Topology
from .placement import AddressBook, MoveResult, PlacementMove, apply_move
from .rows import Rows

MOVED_ENGINE_CACHE = 8  # moved-pools engines kept (a few MB each for the world topology)


class StateChangeError(AegisError, ValueError):
    """A state change that is not a mapping of server/DC/location ids to up/draining/down."""


@dataclass
class Decided:
    """The decision columns of every loaded row (row order of ``Rows``)."""

    ingress: np.ndarray  # int32 ingress server
    tier: np.ndarray  # uint8
    server: np.ndarray  # int32 egress server (-1: none)
    location: np.ndarray  # int32 egress location (-1: none)
    ip: np.ndarray  # int32 egress IP, full-topology index (-1: none)
    distance: np.ndarray  # float64 (NaN: none)

    @property
    def nbytes(self) -> int:
        return int(
            sum(
                a.nbytes
                for a in (self.ingress, self.tier, self.server, self.location, self.ip, self.distance)
            )
        )

    def take(self, pos: np.ndarray) -> Decided:
        return Decided(
            self.ingress[pos],
            self.tier[pos],
            self.server[pos],
            self.location[pos],
            self.ip[pos],
            self.distance[pos],
        )


@dataclass(frozen=True, eq=False)
class _MovedPools(Topology):
    """The moved-pools topology: the full skeleton with a few pools, reusing what the first compile of
    the skeleton computed. Its distance matrix (an O(locations²) Python loop, most of a compile) and
    server states are taken from the full topology's tables instead of being recomputed."""

    known_distance: np.ndarray | None = None
    known_states: np.ndarray | None = None
    known_server_keys: np.ndarray | None = None

    def distance_matrix(self) -> np.ndarray:
        return self.known_distance if self.known_distance is not None else super().distance_matrix()

    def initial_states(self) -> np.ndarray:
        return self.known_states.copy() if self.known_states is not None else super().initial_states()

    def server_keys(self) -> np.ndarray:
        # Hashing 62,000 server ids was most of a moved-pools compile; the servers never move.
        return self.known_server_keys if self.known_server_keys is not None else super().server_keys()


def _ip_starts(topology: Topology) -> np.ndarray:
    """First IP index of each pool in the compiled order (by pool, then file order)."""
    sizes = np.fromiter((len(p.ips) for p in topology.pools), dtype=np.int64, count=len(topology.pools))
    start = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=start[1:])
    return start


class Session:
    """One explorer's what-if over ``topology`` and ``rows``; thread-safe (one change at a time)."""

    def __init__(
        self, topology: Topology, rows: Rows, *, threads: int | None = 2, engine: Engine | None = None
    ) -> None:
        self.base_topology = topology
        self.topology = topology  # with the placement moves applied
        self.rows = rows
        self.threads = threads
        self.lock = threading.RLock()
        self.engine = engine if engine is not None else Engine(topology)
        self.compiled = self.engine.compiled
        self.book = AddressBook(topology, self.compiled.ips)
        a = self.compiled.arrays
        self.server_keys = np.ascontiguousarray(a["server_key"], dtype=np.uint64)
        self.server_location = np.asarray(a["server_location"], dtype=np.int32)
        self.location_ids: tuple[str, ...] = topology.location_ids
        self.server_ids: tuple[str, ...] = topology.server_ids
        self.pool_ids: tuple[str, ...] = topology.pool_ids
        self.ip_ids: list[str] = list(self.compiled.ips)
        self.ip_start = _ip_starts(topology)
        self._distance = np.asarray(a["location_distance"], dtype=np.float64).reshape(
            len(topology.locations), -1
        )
        # Holder ranges of every IP, with the (pool, family) group each belongs to, and every row's group:
        # a state change re-decides only the rows of groups with a holder whose up-ness changed.
        holder_start = np.asarray(a["ip_holder_start"], dtype=np.int64)
        ranges = np.asarray(a["ip_holder_ranges"], dtype=np.int64).reshape(-1, 2)
        ip_group = 2 * np.asarray(a["ip_pool"], dtype=np.int64) + (np.asarray(a["ip_family"]) == 6)
        self._range_first, self._range_end = ranges[:, 0], ranges[:, 1]
        self._range_group = np.repeat(ip_group, np.diff(holder_start))
        self._row_group = (2 * rows.pool + (rows.family == 6)).astype(np.int32)
        self.base_states = topology.initial_states()
        self.states = self.base_states.copy()
        self.engine.set_states(self.states)
        self.moves: list[MoveResult] = []
        self._moved: dict[int, int] = {}  # pool index -> its index in the moved-pools engine
        self._moved_engine: Engine | None = None
        self._moved_ip_start: dict[int, int] = {}  # pool index -> its first IP in the moved-pools engine
        self._engine_cache: dict[tuple[Any, ...], Engine] = {}  # oldest first
        self._compiled_last = False
        self._ingress_up: np.ndarray | None = None
        self._ingress: np.ndarray | None = None
        self.version = 0
        self.timings: dict[str, float] = {}
        self._before: tuple[np.ndarray, Decided] | None = None
        self.last_change: tuple[int, np.ndarray, Decided] | None = None
        self.baseline = self._decide()
        self.current = self.baseline

    # ---- changes ------------------------------------------------------------------------------
    def set_states(self, changes: Mapping[str, str]) -> None:
        """Apply ``{server, DC or location id: "up" | "draining" | "down"}`` in order, then re-decide.

        Every entry is checked before any is applied: a bad one changes nothing.
        """
        if not isinstance(changes, Mapping) or not changes:
            raise StateChangeError("states must be a non-empty object of {server, DC or location id: state}")
        ranges = []
        for target, state in changes.items():
            if not isinstance(state, str) or state not in STATE_CODES:
                raise StateChangeError(f"{target!r}: invalid state {state!r}: expected up, draining or down")
            try:
                ranges.append((self.topology.holder_range(target), STATE_CODES[state]))
            except (KeyError, TypeError):
                raise UnknownIdError("server, DC or location", target) from None
        with self.lock:
            t0 = time.perf_counter()
            for (a, b), code in ranges:
                self.states[a:b] = code
            self.engine.set_states(self.states)
            if self._moved_engine is not None:
                self._moved_engine.set_states(self.states)
            self.timings = {"apply_ms": (time.perf_counter() - t0) * 1e3}
            self._redecide()

    def move(self, move: PlacementMove) -> MoveResult:
        """Apply a placement move (``PlacementError`` if it is invalid; nothing changes then)."""
        with self.lock:
            t0 = time.perf_counter()
            topology, result = apply_move(self.topology, self.book, move)
            moved = dict(self._moved)
            moved.setdefault(result.pool_index, len(moved))
            engine, ip_start = self._moved_pools_engine(topology, moved)
            self.topology, self._moved, self._moved_engine, self._moved_ip_start = (
                topology,
                moved,
                engine,
                ip_start,
            )
            self.moves.append(result)
            self.timings = {
                "compile_ms": (time.perf_counter() - t0) * 1e3,
                "compiled": float(self._compiled_last),
            }
            # Only the moved pool's rows can change (its holders did; states did not).
            sl = self.rows.pool_slice(result.pool_index)
            self._redecide(np.arange(sl.start, sl.stop))
            return result

    def reset(self) -> None:
        """Back to the topology as loaded: its states and placement."""
        with self.lock:
            self.topology = self.base_topology
            self.states = self.base_states.copy()
            self.engine.set_states(self.states)
            self._moved, self._moved_engine, self._moved_ip_start = {}, None, {}
            self._ingress, self._ingress_up = self.baseline.ingress, self.base_states == 0
            self.moves = []
            self.timings = {}
            self.current = self.baseline
            self.version += 1
            self.last_change = None

    # ---- deciding -----------------------------------------------------------------------------
    def _moved_pools_engine(
        self, topology: Topology, moved: Mapping[int, int]
    ) -> tuple[Engine, dict[int, int]]:
        order = sorted(moved, key=moved.__getitem__)
        pools = tuple(topology.pools[p] for p in order)
        # Operators try a move and take it back, or flip between two placements: the engines of the
        # last few placements are kept, keyed by the moved pools' holders.
        key = tuple((p, tuple(ip.holders for ip in pool.ips)) for p, pool in zip(order, pools, strict=True))
        engine = self._engine_cache.pop(key, None)
        self._compiled_last = engine is None
        if engine is None:
            mini = _MovedPools(
                topology.locations,
                topology.data_centers,
                pools,
                topology.server_states,
                {},
                topology.distances,
                known_distance=self._distance,
                known_states=self.base_states,
                known_server_keys=self.server_keys,
            )
            engine = Engine(mini)
        self._engine_cache[key] = engine
        while len(self._engine_cache) > MOVED_ENGINE_CACHE:
            self._engine_cache.pop(next(iter(self._engine_cache)))
        engine.set_states(self.states)
        ip_start, n = {}, 0
        for p in order:
            ip_start[p] = n
            n += len(topology.pools[p].ips)
        return engine, ip_start

    def _ingress_servers(self, up: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The ingress column under ``up``, and the rows whose ingress moved (``None``: all rows)."""
        if self._ingress is None or self._ingress_up is None:
            return self.rows.ingress(self.server_keys, self.states, threads=self.threads), None
        # Only up-ness moves an ingress choice (draining <-> down does not), and only for rows
        # entering at a colo that contains a server whose up-ness changed.
        changed = up != self._ingress_up
        if not changed.any():
            return self._ingress, np.empty(0, dtype=np.int64)
        rows = self.rows.rows_entering(changed)
        ingress = self._ingress.copy()  # the baseline keeps its own column
        if rows.shape[0]:
            ingress[rows] = self.rows.ingress(self.server_keys, self.states, self.threads, rows=rows)
        return ingress, rows

    def _affected_groups(self, changed: np.ndarray) -> np.ndarray:
        """bool per (pool, family) group of the loaded topology: does one of its IPs have a holder whose
        up-ness is in ``changed``? Only those groups' candidate lists changed."""
        seen = np.zeros(changed.shape[0] + 1, dtype=np.int64)
        np.cumsum(changed, out=seen[1:])
        hit = seen[self._range_end] - seen[self._range_first] > 0
        groups = np.zeros(2 * len(self.pool_ids), dtype=bool)
        groups[self._range_group[hit]] = True
        return groups

    def _decide(self, redo: np.ndarray | None = None) -> Decided:
        """Decide every row (``redo=None``) or only the rows at positions ``redo`` (sorted), keeping
        the current answers of the others."""
        rows = self.rows
        t0 = time.perf_counter()
        up = self.states == 0
        ingress, moved_ingress = self._ingress_servers(up)
        if redo is None and self._ingress_up is not None and moved_ingress is not None:
            # A state change: only rows whose ingress moved, or whose group lost or gained a holder.
            changed = up != self._ingress_up
            mask = (
                self._affected_groups(changed)[self._row_group]
                if changed.any()
                else np.zeros(len(rows), bool)
            )
            mask[moved_ingress] = True
            if changed.any():
                for p in self._moved:  # moved pools: their holders are not in the loaded tables
                    mask[rows.pool_slice(p)] = True
            redo = np.flatnonzero(mask)
        self._ingress, self._ingress_up = ingress, up
        t1 = time.perf_counter()
        if redo is None or redo.shape[0] > len(rows) // 2:
            r = self.engine.decide_batch(
                ingress, rows.pool, rows.family, rows.flow, errors="mark", threads=self.threads
            )
            out = Decided(ingress, r.tier, r.server, r.location, r.ip, r.distance)
            redo_all = True
        else:
            c = self.current
            if c is self.baseline:  # the baseline keeps its columns; later changes update a copy in place
                c = Decided(
                    ingress, c.tier.copy(), c.server.copy(), c.location.copy(), c.ip.copy(), c.distance.copy()
                )
            out = Decided(ingress, c.tier, c.server, c.location, c.ip, c.distance)
            redo_all = False
            self._before = (redo, self.current.take(redo))
            if redo.shape[0]:
                r = self.engine.decide_batch(
                    ingress[redo],
                    rows.pool[redo],
                    rows.family[redo],
                    rows.flow[redo],
                    errors="mark",
                    threads=self.threads,
                )
                self._scatter(out, redo, r.tier, r.server, r.location, r.ip, r.distance)
        if redo_all:
            self._before = None
        if self._moved_engine is not None:
            for p, k in self._moved.items():
                sl = rows.pool_slice(p)
                if redo_all:
                    pos = np.arange(sl.start, sl.stop)
                else:
                    assert redo is not None
                    pos = redo[np.searchsorted(redo, sl.start) : np.searchsorted(redo, sl.stop)]
                if pos.shape[0] == 0:
                    continue
                m = self._moved_engine.decide_batch(
                    ingress[pos],
                    np.full(pos.shape[0], k, dtype=np.int32),
                    rows.family[pos],
                    rows.flow[pos],
                    errors="mark",
                    threads=self.threads,
                )
                # The moved-pools topology lists pool p's IPs in the same order, from its own offset.
                offset = int(self.ip_start[p]) - self._moved_ip_start[p]
                self._scatter(
                    out, pos, m.tier, m.server, m.location, np.where(m.ip >= 0, m.ip + offset, -1), m.distance
                )
        t2 = time.perf_counter()
        self.timings.update(
            {
                "ingress_ms": (t1 - t0) * 1e3,
                "decide_ms": (t2 - t1) * 1e3,
                "rows_decided": len(rows) if redo_all or redo is None else int(redo.shape[0]),
            }
        )
        return out

    @staticmethod
    def _scatter(
        out: Decided,
        pos: np.ndarray,
        tier: np.ndarray,
        server: np.ndarray,
        location: np.ndarray,
        ip: np.ndarray,
        distance: np.ndarray,
    ) -> None:
        out.tier[pos] = tier
        out.server[pos] = server
        out.location[pos] = location
        out.ip[pos] = ip
        out.distance[pos] = distance

    def _redecide(self, redo: np.ndarray | None = None) -> None:
        self.current = self._decide(redo)
        self.version += 1
        # What the last change re-decided, and those rows' answers before it: a summary kept from
        # the previous version can be updated from these rows alone.
        self.last_change = (self.version, *self._before) if self._before is not None else None

    # ---- views ----------------------------------------------------------------------------------
    def state_of(self, server: int) -> str:
        return STATE_NAMES[int(self.states[server])]

    def changed_states(self) -> dict[str, Any]:
        """The servers whose state differs from the baseline, by id."""
        diff = np.flatnonzero(self.states != self.base_states)
        return {self.server_ids[s]: STATE_NAMES[int(self.states[s])] for s in diff.tolist()}

    def topology_now(self) -> Topology:
        """The current what-if as a topology (placement moves and states written as server_states)."""
        return replace(self.topology, server_states=compact_states(self.topology, self.states))


def compact_states(topology: Topology, states: np.ndarray) -> dict[str, Any]:
    """Fewest ``server_states`` entries that give ``states``: a location or DC whose servers share one
    non-up state is one entry; otherwise its servers are listed one by one."""
    out: dict[str, Any] = {}
    li = topology.location_index
    for loc in topology.location_ids:
        a, b = topology.location_server_ranges[li[loc]]
        part = states[a:b]
        if b > a and part.min() == part.max():
            if part[0] != 0:
                out[loc] = STATE_NAMES[int(part[0])]
            continue
        for dc in topology.ordered_data_centers:
            if dc.location != loc:
                continue
            c, d = topology.holder_range(dc.id)
            sub = states[c:d]
            if d > c and sub.min() == sub.max():
                if sub[0] != 0:
                    out[dc.id] = STATE_NAMES[int(sub[0])]
                continue
            for s in range(c, d):
                if states[s] != 0:
                    out[topology.server_ids[s]] = STATE_NAMES[int(states[s])]
    return out
