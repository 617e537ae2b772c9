"""``af.SharedEngine``: one engine for many processes.

A per-process ``af.Engine`` builds its derived tables (up-lists, layouts, big-layout answers: about
27 MB for the world topology) and its live server states in private memory, so N worker processes
hold N copies and a state change must be repeated in each. A ``SharedEngine`` keeps all of that in
one POSIX shared-memory segment (``/dev/shm/<name>``):

* ``SharedEngine.create(compiled)`` builds it once (the owner, e.g. a supervisor);
* ``SharedEngine.attach(name, compiled)`` maps it in any process (a worker): nothing is rebuilt,
  the derived tables are mapped read-only, and the compiled arrays come from the same compiled file
  (memory-mapped, so shared through the page cache too);
* ``set_state`` from any process is seen by every process at its next decision: the seqlock
  version lives in the segment, so the protocol is the per-process engine's, across processes.

Everything else is ``af.Engine``'s interface and code (``SharedEngine`` subclasses it): the same
scalar and batch paths, answers bit-identical to it and to ``ReferenceEngine``. How the segment is
laid out and what happens when a writer process dies mid-change: docs/engine.md, "Many processes,
one state".
"""

from __future__ import annotations

import os
import secrets
import weakref
from types import TracebackType
from typing import Any, cast

from . import _core
from .compiled import CompiledTopology, load_compiled
from .engine import Engine, _resolve_isa
from .errors import CompiledFileError, SharedEngineError
from .topology import Topology

__all__ = ["SharedEngine"]


def _compiled_of(compiled: CompiledTopology | Topology | str | os.PathLike[str]) -> CompiledTopology:
    if isinstance(compiled, CompiledTopology):
        return compiled
    if isinstance(compiled, Topology):
        return compiled.compile()
    if isinstance(compiled, (str, os.PathLike)):
        return load_compiled(compiled)
    raise TypeError(
        f"SharedEngine needs a CompiledTopology or the path of a compiled file, got {type(compiled).__name__}"
    )


def _unlink_if_creator(name: str, pid: int) -> None:
    # A forked child inherits the owner object; only the process that created the segment removes it.
    if os.getpid() == pid:
        try:
            _core.engine.unlink_shared(name)
        except _core.engine.SharedSegmentError:
            pass


class _Closed:
    """Stands in for the core engine of a closed SharedEngine: every use is a clear error."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        raise SharedEngineError(f"shared engine {self._name!r} is closed")


class SharedEngine(Engine):
    """An ``af.Engine`` whose derived tables and live states live in a shared-memory segment.

    Make one with ``SharedEngine.create`` (builds the segment; the returned owner removes it on
    ``unlink()``, at the end of a ``with`` block, or when it is garbage-collected or its process
    exits) or ``SharedEngine.attach`` (maps an existing one). Both decide, explain and change states
    exactly like ``af.Engine``; a state change by any process applies to every process's next
    decision.
    """

    __slots__ = ("__weakref__", "_finalizer", "_name", "_owner")

    _name: str
    _owner: bool
    _finalizer: weakref.finalize | None  # type: ignore[type-arg, unused-ignore]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("use SharedEngine.create(compiled) or SharedEngine.attach(name, compiled)")

    @classmethod
    def create(
        cls,
        compiled: CompiledTopology | Topology | str | os.PathLike[str],
        name: str | None = None,
        *,
        isa: str | None = None,
    ) -> SharedEngine:
        """Build the derived tables and the live states (the compiled file's server states) into
        a new segment ``/dev/shm/<name>`` (a fresh ``aegisfwd-<pid>-<random>`` when ``name`` is
        None). ``SharedEngineError`` when the name exists or the segment cannot be made."""
        topology = _compiled_of(compiled)
        if name is None:
            name = f"aegisfwd-{os.getpid()}-{secrets.token_hex(6)}"
        isa = _resolve_isa(isa)
        try:
            core = _core.engine.Engine.create_shared(topology.arrays, name, None, isa)
        except _core.engine.SharedSegmentError as exc:
            raise SharedEngineError(str(exc)) from None
        except (ValueError, IndexError) as exc:
            raise CompiledFileError(f"compiled tables rejected by the engine: {exc}") from None
        self = cls._wrap(topology, core, name, owner=True)
        self._finalizer = weakref.finalize(self, _unlink_if_creator, name, os.getpid())
        return self

    @classmethod
    def attach(
        cls,
        name: str,
        compiled: CompiledTopology | Topology | str | os.PathLike[str],
        *,
        isa: str | None = None,
    ) -> SharedEngine:
        """Map the existing segment ``name``, built from ``compiled`` (the same compiled file:
        its content hash is checked). ``SharedEngineError`` when the segment is missing, not an
        aegisfwd segment, of another layout version, truncated, unfinished, or built from another
        compiled topology."""
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__}")
        topology = _compiled_of(compiled)
        isa = _resolve_isa(isa)
        try:
            core = _core.engine.Engine.attach_shared(topology.arrays, name, isa)
        except _core.engine.SharedSegmentError as exc:
            raise SharedEngineError(str(exc)) from None
        except (ValueError, IndexError) as exc:
            raise CompiledFileError(f"compiled tables rejected by the engine: {exc}") from None
        self = cls._wrap(topology, core, name, owner=False)
        self._finalizer = None
        return self

    @classmethod
    def _wrap(cls, compiled: CompiledTopology, core: Any, name: str, *, owner: bool) -> SharedEngine:
        self = cast(SharedEngine, Engine.__new__(cls, compiled))
        self._load(compiled, "compiled")
        self._init_core(core)
        self._name = name
        self._owner = owner
        return self

    # ---- the segment -----------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The segment's name (``/dev/shm/<name>``): what ``attach`` takes."""
        return self._name

    @property
    def is_owner(self) -> bool:
        """True for the engine ``create`` returned."""
        return self._owner

    @property
    def closed(self) -> bool:
        return isinstance(self._core_engine, _Closed)

    def close(self) -> None:
        """Stop using the segment in this object (the mapping goes once no call uses it any more).
        Decisions and state calls afterwards raise. Does not remove the segment (``unlink``)."""
        if not self.closed:
            self._core_engine = _Closed(self._name)
            self._detach()  # the scalar path (Cython) drops its pointer too

    def unlink(self) -> None:
        """Remove the segment's name: no process can attach any more; engines that mapped it keep
        working until closed. Idempotent."""
        if self._finalizer is not None:
            self._finalizer.detach()
        try:
            _core.engine.unlink_shared(self._name)
        except _core.engine.SharedSegmentError as exc:
            raise SharedEngineError(str(exc)) from None

    def __enter__(self) -> SharedEngine:  # noqa: PYI034 - the class is not meant to be subclassed
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
        if self._owner:
            self.unlink()

    # ---- pickling: another process attaches ---------------------------------------------------
    def __reduce__(self) -> tuple[Any, ...]:
        return (_attach_unpickled, (self._name, self._compiled))

    def __repr__(self) -> str:
        c = self._compiled.counts
        role = "owner" if self._owner else "attached"
        kernel = "closed" if self.closed else f"isa={self.isa}"
        return (
            f"SharedEngine({self._name!r}, {role}; {c['locations']} locations, {c['servers']} servers, "
            f"{c['pools']} pools; {kernel})"
        )


def _attach_unpickled(name: str, compiled: CompiledTopology) -> SharedEngine:
    return SharedEngine.attach(name, compiled)
