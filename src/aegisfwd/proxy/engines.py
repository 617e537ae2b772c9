"""Where each proxy process gets its engine: the engine-provider abstraction.

* ``private``: every process builds its own ``af.Engine`` over the memory-mapped compiled file (the
  file's pages are shared by the page cache; the derived structures and the live state are per
  process), so the control plane must apply a state change in every process.
* ``shared``: the control plane creates one ``af.SharedEngine`` segment (derived tables and the
  live state, seqlock included); workers attach to it, and one ``set_state`` by the control plane
  is seen by every worker at its next decision.

Either way a worker decides through ``decide_indices``-shaped calls and reports the state epoch it
has seen; ``Provider.fan_out`` says whether a state change must be repeated per process.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..compiled import CompiledTopology
from ..engine import Engine
from .config import ProxyConfigError


class DecideEngine(Protocol):
    def decide_indices(
        self, server: int, pool: int, family: int, flow: int = 0
    ) -> tuple[int, int, int, int, int, float]: ...

    def set_state(self, target: object, state: str) -> None: ...


def shared_available() -> bool:
    import aegisfwd as af

    return hasattr(af, "SharedEngine")


class _DecideAdapter:
    """Gives an engine without ``decide_indices`` (a shared engine may only have ``decide``) the
    tuple interface the edge uses."""

    def __init__(self, engine: Any) -> None:
        self._engine = engine
        self.set_state = engine.set_state

    def decide_indices(
        self, server: int, pool: int, family: int, flow: int = 0
    ) -> tuple[int, int, int, int, int, float]:
        d = self._engine.decide(server, pool, family, flow)
        return (int(d.tier), d.server_index, d.dc_index, d.location_index, d.ip_index, d.distance)

    def close(self) -> None:
        close = getattr(self._engine, "close", None)
        if close is not None:
            close()


def _wrap(engine: Any) -> Any:
    return engine if hasattr(engine, "decide_indices") else _DecideAdapter(engine)


class Provider:
    """Creates the control plane's engine and each worker's engine for one mode."""

    fan_out: bool
    mode: str

    def control_engine(self) -> Any:
        raise NotImplementedError

    def worker_engine(self, name: str | None) -> Any:
        raise NotImplementedError

    @property
    def name(self) -> str | None:
        return None

    def close(self) -> None:
        pass


class PrivateProvider(Provider):
    mode = "private"
    fan_out = True

    def __init__(self, compiled: CompiledTopology) -> None:
        self._compiled = compiled

    def control_engine(self) -> Any:
        return Engine(self._compiled)

    def worker_engine(self, name: str | None) -> Any:
        return Engine(self._compiled)


class SharedProvider(Provider):
    mode = "shared"
    fan_out = False

    def __init__(self, compiled: CompiledTopology) -> None:
        if not shared_available():
            raise ProxyConfigError(
                "engine: shared needs af.SharedEngine, which this aegisfwd build does not have"
            )
        self._compiled = compiled
        self._owner: Any = None

    def control_engine(self) -> Any:
        import aegisfwd as af

        self._owner = af.SharedEngine.create(self._compiled)
        return _wrap(self._owner)

    @property
    def name(self) -> str | None:
        return None if self._owner is None else str(self._owner.name)

    def worker_engine(self, name: str | None) -> Any:
        import aegisfwd as af

        if name is None:
            raise ProxyConfigError("a shared-engine worker needs the segment name from the control plane")
        return _wrap(af.SharedEngine.attach(name, self._compiled))

    def close(self) -> None:
        if self._owner is not None:
            try:
                self._owner.close()
            finally:
                self._owner.unlink()
            self._owner = None


def make_provider(mode: str, compiled: CompiledTopology) -> Provider:
    if mode == "private":
        return PrivateProvider(compiled)
    if mode == "shared":
        return SharedProvider(compiled)
    raise ProxyConfigError(f"engine: unknown mode {mode!r} (private or shared)")
