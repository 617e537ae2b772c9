"""``ReferenceEngine``: the decision rules of ``_rules.py`` behind the interface of ``af.Engine``.

The readable specification of the decision and the check of the compiled core: every fast path is
tested to answer exactly as this engine does. It reads the validated ``Topology`` model only, never
the compiled tables.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from ._explain import explain_request
from ._inputs import normalize_batch, resolve_family, resolve_flow, resolve_id
from ._rules import decide_request, model_of, topology_of
from ._types import BatchResult, Decision, IdTables, Tier
from .errors import UnknownIdError
from .topology import STATE_CODES, STATE_NAMES, Topology

__all__ = ["ReferenceEngine"]


class ReferenceEngine:
    """Pure-Python engine with the interface of ``af.Engine``; the readable spec.

    Server states are held in a ``bytearray`` that is replaced, never mutated, by ``set_state``:
    a decision reads the reference once, so it sees the states before or after a change, never a
    half-applied DC or location change.
    """

    def __init__(self, topology: object) -> None:
        self._topology = topology_of(topology)
        self._model = model_of(self._topology)
        self._states = bytearray(self._topology.initial_states().tobytes())
        self._write_lock = threading.Lock()

    # ---- tables ----------------------------------------------------------------------------
    @property
    def topology(self) -> Topology:
        return self._topology

    @property
    def servers(self) -> tuple[str, ...]:
        return self._model.server_ids

    @property
    def dcs(self) -> tuple[str, ...]:
        return self._model.dc_ids

    @property
    def locations(self) -> tuple[str, ...]:
        return self._model.location_ids

    @property
    def pools(self) -> tuple[str, ...]:
        return self._model.pool_ids

    @property
    def ips(self) -> tuple[str, ...]:
        return self._model.ip_ids

    @property
    def distance_unit(self) -> str:
        return self._model.distance_unit

    def id_tables(self) -> IdTables:
        m = self._model
        return IdTables(m.location_ids, m.dc_ids, m.server_ids, m.pool_ids, m.ip_ids)

    # ---- states ------------------------------------------------------------------------------
    @property
    def states(self) -> np.ndarray:
        """uint8 state code per server (0 up, 1 draining, 2 down), a copy."""
        return np.frombuffer(bytes(self._states), dtype=np.uint8).copy()

    def get_state(self, server: object) -> str:
        m = self._model
        return STATE_NAMES[self._states[resolve_id(server, m.server_ids, m.server_lookup, "server")]]

    def set_state(self, target: object, state: str) -> None:
        """Set ``state`` ("up", "draining", "down") on a server (id or index), or on every server
        of a DC or location (overwriting their earlier settings). Applies to the next decision."""
        if not isinstance(state, str) or state not in STATE_CODES:
            raise ValueError(f"invalid state {state!r}: expected 'up', 'draining' or 'down'")
        first, end = self._target_range(target)
        with self._write_lock:
            new = bytearray(self._states)
            new[first:end] = bytes([STATE_CODES[state]]) * (end - first)
            self._states = new  # one reference swap: readers see all of it or none

    def set_states(self, codes: Any) -> None:
        """Replace every server's state at once: ``codes`` is one code per server in index order
        (0 up, 1 draining, 2 down), e.g. what ``states`` returned. Atomic like ``set_state``."""
        array = np.asarray(codes)
        n = len(self._model.server_ids)
        if array.shape != (n,) or array.dtype.kind not in "iu":
            raise ValueError(
                f"states must be {n} integer codes (one per server), got {array.dtype} {array.shape}"
            )
        if n and (array.min() < 0 or array.max() > 2):
            raise ValueError("state codes must be 0 (up), 1 (draining) or 2 (down)")
        new = bytearray(array.astype(np.uint8).tobytes())
        with self._write_lock:
            self._states = new

    def _target_range(self, target: object) -> tuple[int, int]:
        m = self._model
        if isinstance(target, str):
            if target in m.server_lookup or target in m.dc_lookup or target in m.location_lookup:
                return self._topology.holder_range(target)
            raise UnknownIdError("server, DC or location", target)
        try:
            s = resolve_id(target, m.server_ids, m.server_lookup, "server")
        except UnknownIdError:
            raise UnknownIdError("server, DC or location", target) from None
        return (s, s + 1)

    # ---- decisions --------------------------------------------------------------------------
    def _resolve(
        self, server: object, pool: object, family: object, flow: object
    ) -> tuple[int, int, int, int]:
        m = self._model
        return (
            resolve_id(server, m.server_ids, m.server_lookup, "server"),
            resolve_id(pool, m.pool_ids, m.pool_lookup, "pool"),
            resolve_family(family),
            resolve_flow(flow),
        )

    def decide(self, server: object, pool: object, family: object, flow: object = 0) -> Decision:
        """Decide one request: server and pool as id (str) or index, family 4 or 6, flow key
        in ``[0, 2**64)``. Bad input raises a ``ValueError`` subclass naming the value."""
        return decide_request(self._model, self._states, *self._resolve(server, pool, family, flow))

    def decide_batch(
        self, servers: Any, pools: Any, families: Any, flows: Any, *, errors: str = "raise"
    ) -> BatchResult:
        """Decide a batch (numpy, Arrow, pandas or lists; scalars broadcast). Columns in input
        order. ``errors="mark"`` answers bad rows ``Tier.INVALID`` instead of raising."""
        m = self._model
        s_idx, p_idx, fam, flow, bad = normalize_batch(
            servers,
            pools,
            families,
            flows,
            server_ids=m.server_ids,
            server_lookup=m.server_lookup,
            pool_ids=m.pool_ids,
            pool_lookup=m.pool_lookup,
            errors=errors,
        )
        n = len(s_idx)
        tier = np.full(n, Tier.INVALID, dtype=np.uint8)
        server = np.full(n, -1, dtype=np.int32)
        dc = np.full(n, -1, dtype=np.int32)
        location = np.full(n, -1, dtype=np.int32)
        ip = np.full(n, -1, dtype=np.int32)
        distance = np.full(n, np.nan, dtype=np.float64)
        states = self._states  # one snapshot for the whole batch
        rows = range(n) if bad is None else np.flatnonzero(~bad).tolist()
        s_l, p_l, f_l, fl_l = s_idx.tolist(), p_idx.tolist(), fam.tolist(), flow.tolist()
        for row in rows:
            d = decide_request(m, states, s_l[row], p_l[row], f_l[row], fl_l[row])
            tier[row] = d.tier
            server[row], dc[row], location[row], ip[row] = (
                d.server_index,
                d.dc_index,
                d.location_index,
                d.ip_index,
            )
            distance[row] = d.distance
        return BatchResult(tier, server, dc, location, ip, distance, self.id_tables())

    def explain(self, server: object, pool: object, family: object, flow: object = 0) -> str:
        """A human-readable trace of the rules tried for one request, and the result."""
        text, _ = explain_request(self._topology, self._states, server, pool, family, flow)
        return text

    def __repr__(self) -> str:
        m = self._model
        return (
            f"ReferenceEngine({len(m.location_ids)} locations, {len(m.dc_ids)} DCs, "
            f"{len(m.server_ids)} servers, {len(m.pool_ids)} pools, {len(m.ip_ids)} IPs)"
        )
