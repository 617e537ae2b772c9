"""``af.Engine``: the public decision engine, over the compiled C++ core.

``Engine`` has the interface of ``ReferenceEngine`` and answers exactly as it does (the property and
state-machine tests hold them to that). Paths:

* ``decide`` (scalar) is ``aegisfwd._fast.EngineCore.decide`` (Cython): ids or indices in, a
  ``FastDecision`` out -- the attributes of ``Decision``, equal to it. ``decide_indices`` skips the
  result object for callers that only want indices.
* ``decide_batch`` normalises its input with ``_inputs.normalize_batch`` (or, when it is already
  int32/int32/uint8/uint64 C-contiguous numpy, passes it straight through: the core range-checks
  every row) and runs the C++ core on ``threads`` threads without the GIL.
* ``set_state`` applies to the next decision, safely while other threads decide (docs/engine.md).
* ``explain`` runs the reference's traced decision under the engine's live states and checks that
  it reaches the engine's own answer.

``AEGISFWD_ENGINE=reference`` in the environment, or ``Engine(..., backend="reference")``, makes
``Engine(...)`` build a ``ReferenceBackedEngine`` instead: a subclass with the same interface whose
every method runs the pure-Python ``ReferenceEngine`` (for debugging). The choice is made once, in
``Engine.__new__``; no method of ``Engine`` itself asks which backend it is. ``AEGISFWD_ISA`` (or
``isa=``) picks the C++ kernel: ``auto`` (default), ``generic``, ``avx2`` or ``avx512``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from . import _core
from ._explain import explain_request
from ._fast import EngineCore, FastDecision
from ._inputs import normalize_batch, resolve_family, resolve_flow, resolve_id
from ._types import BatchResult, Decision, IdTables
from .compiled import CompiledTopology
from .compiled._format import file_length
from .errors import BatchInputError, CompiledFileError, UnknownIdError
from .reference import ReferenceEngine
from .topology import STATE_CODES, STATE_NAMES, Topology

# Scalar answers of the compiled path are Decisions for isinstance() too (see _types.Decision).
Decision.register(FastDecision)

__all__ = ["BACKENDS", "MAX_THREADS", "Engine", "ReferenceBackedEngine", "available_isas"]

BACKENDS = ("compiled", "reference")
ENV_BACKEND = "AEGISFWD_ENGINE"
ENV_ISA = "AEGISFWD_ISA"
# decide_batch(threads=...) above this is refused: more threads than any machine has cores only
# costs thread creation (the core never starts more than one per 16,384 rows anyway).
MAX_THREADS = 1024


def _backend(backend: str | None) -> str:
    """The backend asked for: the argument, else ``AEGISFWD_ENGINE``, else ``compiled``."""
    backend = backend if backend is not None else os.environ.get(ENV_BACKEND) or "compiled"
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    return backend


def available_isas() -> list[str]:
    """C++ kernels this build can run on this CPU, best last (``generic`` always)."""
    return list(_core.available_isas())


def _is_exact(a: object, dtype: np.dtype[Any]) -> bool:
    return (
        type(a) is np.ndarray
        and a.dtype == dtype
        and a.ndim == 1
        and a.flags.c_contiguous
        and a.flags.aligned
    )


_I4, _U1, _U8 = np.dtype(np.int32), np.dtype(np.uint8), np.dtype(np.uint64)


class Engine(EngineCore):
    """Decides where the connection to a customer's origin egresses (docs/decision.md).

    ``Engine(topology)`` compiles a ``Topology``; ``Engine(compiled)`` runs a ``CompiledTopology``
    (e.g. ``af.load_compiled(path)``, memory-mapped: the engine reads the file's arrays in place).
    """

    __slots__ = (
        "_backend",
        "_compiled",
        "_core_engine",
        "_dc_lookup_d",
        "_id_tables",
        "_ids",
        "_location_lookup_d",
        "_pool_lookup_d",
        "_server_lookup_d",
        "_topology",
    )

    _core_engine: Any

    def __new__(  # noqa: PYI034 - a factory: Engine(...) may build the ReferenceBackedEngine subclass
        cls,
        topology: Topology | CompiledTopology,
        *,
        backend: str | None = None,
        isa: str | None = None,
    ) -> Engine:
        # The factory choice: the reference backend is its own class (below), never a branch here.
        chosen = ReferenceBackedEngine if cls is Engine and _backend(backend) == "reference" else cls
        return super().__new__(chosen)

    def __init__(
        self,
        topology: Topology | CompiledTopology,
        *,
        backend: str | None = None,
        isa: str | None = None,
    ) -> None:
        if _backend(backend) != "compiled":
            raise ValueError(
                "a subclass of Engine runs the compiled backend; use Engine(..., backend='reference')"
            )
        self._load(topology, "compiled")
        isa = _resolve_isa(isa)
        compiled = self._compiled
        try:
            core = _core.engine.Engine(compiled.arrays, None, isa)
        except (ValueError, IndexError) as exc:
            raise CompiledFileError(f"compiled tables rejected by the engine: {exc}") from None
        self._init_core(core)

    def _init_core(self, core: Any) -> None:
        """Run decisions on ``core`` (an ``aegisfwd._core.engine.Engine``, per-process or shared)."""
        self._core_engine = core
        servers, pools = self._ids[0], self._ids[4]
        server_lookup, pool_lookup = self._server_lookup_d, self._pool_lookup_d

        def resolve(server: object, pool: object, family: object, flow: object) -> tuple[int, int, int, int]:
            return (
                resolve_id(server, servers, server_lookup, "server"),
                resolve_id(pool, pools, pool_lookup, "pool"),
                resolve_family(family),
                resolve_flow(flow),
            )

        self._attach(core, self._ids[:4], server_lookup, pool_lookup, len(pools), resolve)

    def _load(self, topology: Topology | CompiledTopology, backend: str) -> None:
        """What both backends hold: the compiled tables, the model if any, ids and lookups."""
        if isinstance(topology, Topology):
            compiled = topology.compile()
            model: Topology | None = topology
        elif isinstance(topology, CompiledTopology):
            compiled = topology
            model = topology.topology
        else:
            raise TypeError(f"Engine needs a Topology or a CompiledTopology, got {type(topology).__name__}")
        self._backend = backend
        self._compiled = compiled
        self._topology = model
        self._ids = (
            tuple(compiled.servers),
            tuple(compiled.dcs),
            tuple(compiled.locations),
            tuple(compiled.ips),
            tuple(compiled.pools),
        )
        self._id_tables = IdTables(self._ids[2], self._ids[1], self._ids[0], self._ids[4], self._ids[3])
        self._server_lookup_d = compiled.server_index
        self._dc_lookup_d = compiled.dc_index
        self._location_lookup_d = compiled.location_index
        self._pool_lookup_d = compiled.pool_index

    # ---- tables ----------------------------------------------------------------------------------
    @property
    def backend(self) -> str:
        """``"compiled"`` or ``"reference"``."""
        return self._backend

    @property
    def isa(self) -> str:
        """The C++ kernel in use (``generic``, ``avx2``, ``avx512``), or ``reference``."""
        return str(self._core_engine.isa)

    @property
    def compiled(self) -> CompiledTopology:
        return self._compiled

    @property
    def topology(self) -> Topology | None:
        """The ``Topology`` model when the engine was built from one (or once ``explain`` rebuilt it
        from the compiled tables); else ``None``."""
        return self._topology

    @property
    def servers(self) -> tuple[str, ...]:
        return self._ids[0]

    @property
    def dcs(self) -> tuple[str, ...]:
        return self._ids[1]

    @property
    def locations(self) -> tuple[str, ...]:
        return self._ids[2]

    @property
    def ips(self) -> tuple[str, ...]:
        return self._ids[3]

    @property
    def pools(self) -> tuple[str, ...]:
        return self._ids[4]

    @property
    def distance_unit(self) -> str:
        return self._compiled.distance_unit

    def id_tables(self) -> IdTables:
        return self._id_tables

    @property
    def build_stats(self) -> Mapping[str, Any]:
        """Construction time (``build_ms``) and sizes of the C++ engine's derived indexes."""
        return dict(self._core_engine.stats)

    # ---- states --------------------------------------------------------------------------------
    @property
    def states(self) -> np.ndarray:
        """uint8 state code per server (0 up, 1 draining, 2 down), a copy."""
        return self._core_engine.get_states()

    def get_state(self, server: object) -> str:
        s = resolve_id(server, self._ids[0], self._server_lookup_d, "server")
        return STATE_NAMES[self._core_engine.state(s)]

    def set_state(self, target: object, state: str) -> None:
        """Set ``state`` ("up", "draining", "down") on a server (id or index), or on every server
        of a DC or location (overwriting their earlier settings). Applies to the next decision,
        atomically with respect to decisions running in other threads."""
        if not isinstance(state, str) or state not in STATE_CODES:
            raise ValueError(f"invalid state {state!r}: expected 'up', 'draining' or 'down'")
        first, end = self._target_range(target)
        self._core_engine.set_state(first, end, STATE_CODES[state])

    def set_states(self, states: Any) -> None:
        """Replace every server's state at once: codes (0/1/2) or names, one per server in
        ``servers`` order; one atomic change."""
        self._core_engine.set_states(_state_codes(states, len(self._ids[0])))

    def _target_range(self, target: object) -> tuple[int, int]:
        a = self._compiled.arrays
        if isinstance(target, str):
            if target in self._server_lookup_d:
                s = self._server_lookup_d[target]
                return (s, s + 1)
            if target in self._dc_lookup_d:
                d = self._dc_lookup_d[target]
                start = a["dc_server_start"]
                return (int(start[d]), int(start[d + 1]))
            if target in self._location_lookup_d:
                loc = self._location_lookup_d[target]
                start = a["location_server_start"]
                return (int(start[loc]), int(start[loc + 1]))
            raise UnknownIdError("server, DC or location", target)
        try:
            s = resolve_id(target, self._ids[0], self._server_lookup_d, "server")
        except UnknownIdError:
            raise UnknownIdError("server, DC or location", target) from None
        return (s, s + 1)

    # ---- decisions -------------------------------------------------------------------------------
    # decide(server, pool, family, flow=0) and decide_indices(...) come from EngineCore (Cython).

    def decide_batch(
        self,
        servers: Any,
        pools: Any,
        families: Any,
        flows: Any,
        *,
        errors: str = "raise",
        threads: int | None = None,
    ) -> BatchResult:
        """Decide a batch (numpy, Arrow, pandas or lists; scalars broadcast). Columns in input
        order. ``errors="mark"`` answers bad rows ``Tier.INVALID`` instead of raising. ``threads``:
        worker threads, at most ``MAX_THREADS`` (None: every core; small batches use fewer)."""
        nthreads = _thread_count(threads)
        if errors not in ("raise", "mark"):
            raise BatchInputError(f"errors must be 'raise' or 'mark', not {errors!r}")
        core = self._core_engine
        if (
            _is_exact(servers, _I4)
            and _is_exact(pools, _I4)
            and _is_exact(families, _U1)
            and _is_exact(flows, _U8)
            and servers.shape == pools.shape == families.shape == flows.shape
        ):
            # Already in the core's types: every row is range-checked by the core itself (a bad one
            # comes back INVALID, as normalize_batch would mark it), so skip the copies.
            out = core.decide_batch(servers, pools, families, flows, nthreads)
            if out[6] and errors == "raise":
                self._normalize(servers, pools, families, flows, errors)  # raises for the first bad row
                raise AssertionError("the core marked a row INVALID that the input checks accept")
        else:
            s, p, f, fl, _ = self._normalize(servers, pools, families, flows, errors)
            out = core.decide_batch(s, p, f, fl, nthreads)
        return BatchResult(out[0], out[1], out[2], out[3], out[4], out[5], self._id_tables)

    def _normalize(self, servers: Any, pools: Any, families: Any, flows: Any, errors: str) -> Any:
        return normalize_batch(
            servers,
            pools,
            families,
            flows,
            server_ids=self._ids[0],
            server_lookup=self._server_lookup_d,
            pool_ids=self._ids[4],
            pool_lookup=self._pool_lookup_d,
            errors=errors,
        )

    def explain(self, server: object, pool: object, family: object, flow: object = 0) -> str:
        """A human-readable trace of the rules tried for one request, and the result.

        Runs the reference's traced decision under this engine's live states and checks that it
        reaches this engine's answer. An engine built from compiled tables alone (a file, a pickle)
        rebuilds the model from them on its first explanation (``aegisfwd._decompile``)."""
        model = self._topology
        if model is None:  # loaded from a file or unpickled: rebuild the model from the tables, once
            from ._decompile import topology_from_compiled

            model = self._topology = topology_from_compiled(self._compiled)
        core = self._core_engine
        for _ in range(8):
            version = core.version
            states = core.get_states()
            text, decision = explain_request(model, states, server, pool, family, flow)
            mine = self.decide(server, pool, family, flow)
            if core.version != version:
                continue  # states changed meanwhile: explain again under the new ones
            if mine != decision:
                raise RuntimeError(
                    f"internal error: the engine decided {mine!r} but the reference trace reaches "
                    f"{decision!r}; please report this with the topology"
                )
            return text
        raise RuntimeError("explain: server states kept changing; try again")

    # ---- pickling: one flat buffer (compiled file bytes + current states) ---------------------
    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (self._compiled.to_bytes() + self.states.tobytes(),))

    def __repr__(self) -> str:
        c = self._compiled.counts
        return (
            f"Engine({c['locations']} locations, {c['dcs']} DCs, {c['servers']} servers, "
            f"{c['pools']} pools, {c['ips']} IPs; backend={self._backend}, isa={self.isa})"
        )


class ReferenceBackedEngine(Engine):
    """``Engine(..., backend="reference")``: the interface of ``Engine``, answered by the pure-Python
    ``ReferenceEngine`` (for debugging; far slower). ``Engine.__new__`` builds it; it has no C-level
    engine, so the Cython fast path and the C API refuse it."""

    __slots__ = ("_ref",)

    def __init__(
        self,
        topology: Topology | CompiledTopology,
        *,
        backend: str | None = None,
        isa: str | None = None,
    ) -> None:
        self._load(topology, "reference")
        self._ref = ReferenceEngine(self._topology if self._topology is not None else self._compiled)

    @property
    def isa(self) -> str:
        return "reference"

    @property
    def build_stats(self) -> Mapping[str, Any]:
        return {}

    @property
    def _state_version(self) -> int | None:
        return None

    @property
    def states(self) -> np.ndarray:
        return self._ref.states

    def get_state(self, server: object) -> str:
        return self._ref.get_state(resolve_id(server, self._ids[0], self._server_lookup_d, "server"))

    def set_state(self, target: object, state: str) -> None:
        if not isinstance(state, str) or state not in STATE_CODES:
            raise ValueError(f"invalid state {state!r}: expected 'up', 'draining' or 'down'")
        self._target_range(target)  # the engine's own error for an unknown target
        self._ref.set_state(target, state)

    def set_states(self, states: Any) -> None:
        self._ref.set_states(_state_codes(states, len(self._ids[0])))

    def decide(self, server: object, pool: object, family: object, flow: object = 0) -> Decision:
        return self._ref.decide(server, pool, family, flow)

    def decide_indices(self, server: int, pool: int, family: int, flow: int = 0) -> tuple[Any, ...]:
        try:
            d = self._ref.decide(server, pool, family, flow)
        except ValueError:
            return (255, -1, -1, -1, -1, float("nan"))
        return (int(d.tier), d.server_index, d.dc_index, d.location_index, d.ip_index, d.distance)

    def decide_batch(
        self,
        servers: Any,
        pools: Any,
        families: Any,
        flows: Any,
        *,
        errors: str = "raise",
        threads: int | None = None,
    ) -> BatchResult:
        _thread_count(threads)  # checked like the compiled backend's, then unused
        return self._ref.decide_batch(servers, pools, families, flows, errors=errors)

    def explain(self, server: object, pool: object, family: object, flow: object = 0) -> str:
        return self._ref.explain(server, pool, family, flow)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore_reference, (self._ref.topology, self._ref.states.tobytes()))


def _thread_count(threads: object) -> int:
    """``threads=`` of ``decide_batch`` as the core takes it (0: every core)."""
    if threads is None:
        return 0
    if (
        isinstance(threads, bool)
        or not isinstance(threads, (int, np.integer))
        or not 1 <= threads <= MAX_THREADS
    ):
        raise BatchInputError(f"threads must be an integer in [1, {MAX_THREADS}] or None, not {threads!r}")
    return int(threads)


def _resolve_isa(isa: str | None) -> str:
    """The kernel asked for: the argument, else ``AEGISFWD_ISA``, else ``auto``.

    Checked by the core's one resolver (the one the engine and the log helpers use): a ``ValueError``
    naming the value and what this machine runs, for an unknown name or one this CPU or build lacks.
    """
    isa = isa if isa is not None else os.environ.get(ENV_ISA) or "auto"
    if not isinstance(isa, str):
        raise TypeError(f"isa must be a string such as 'auto', not {isa!r}")
    _core.resolve_isa(isa)
    return isa


def _state_codes(states: Any, n: int) -> np.ndarray:
    if isinstance(states, np.ndarray) and states.dtype.kind in "iu":
        codes = states
    else:
        values = list(states)
        codes = np.array(
            [STATE_CODES[v] if isinstance(v, str) and v in STATE_CODES else v for v in values], dtype=object
        )
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in codes):
            raise ValueError("states must be state names ('up', 'draining', 'down') or codes 0/1/2")
        codes = codes.astype(np.int64)
    if codes.ndim != 1 or codes.shape[0] != n:
        raise ValueError(f"states must hold one state per server ({n}), got shape {codes.shape}")
    if codes.size and (codes.min() < 0 or codes.max() > 2):
        raise ValueError("state codes must be 0 (up), 1 (draining) or 2 (down)")
    return np.ascontiguousarray(codes, dtype=np.uint8)


def _restore(blob: bytes) -> Engine:
    total = file_length(blob)
    view = memoryview(blob)
    engine = Engine(CompiledTopology.from_bytes(view[:total]), backend="compiled")
    engine.set_states(np.frombuffer(view[total:], dtype=np.uint8))
    return engine


def _restore_reference(topology: Topology, states: bytes) -> Engine:
    engine = Engine(topology, backend="reference")
    engine.set_states(np.frombuffer(states, dtype=np.uint8))
    return engine
