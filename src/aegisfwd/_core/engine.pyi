"""Type stubs of ``aegisfwd._core.engine`` (compiled pybind11 submodule; internal)."""

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

ENGINE_CAPSULE_NAME: str

class SharedSegmentError(RuntimeError): ...

def unlink_shared(name: str) -> bool: ...

class Engine:
    def __init__(
        self, arrays: Mapping[str, np.ndarray], states: npt.NDArray[np.uint8] | None = None, isa: str = "auto"
    ) -> None: ...
    @staticmethod
    def create_shared(
        arrays: Mapping[str, np.ndarray],
        name: str,
        states: npt.NDArray[np.uint8] | None = None,
        isa: str = "auto",
    ) -> Engine: ...
    @staticmethod
    def attach_shared(arrays: Mapping[str, np.ndarray], name: str, isa: str = "auto") -> Engine: ...
    @property
    def shared_name(self) -> str: ...
    def decide(
        self, server: int, pool: int, family: int, flow: int
    ) -> tuple[int, int, int, int, int, float]: ...
    def decide_batch(
        self,
        server: npt.NDArray[np.int32],
        pool: npt.NDArray[np.int32],
        family: npt.NDArray[np.uint8],
        flow: npt.NDArray[np.uint64],
        threads: int = 0,
    ) -> tuple[
        npt.NDArray[np.uint8],
        npt.NDArray[np.int32],
        npt.NDArray[np.int32],
        npt.NDArray[np.int32],
        npt.NDArray[np.int32],
        npt.NDArray[np.float64],
        int,
    ]: ...
    def set_state(self, first: int, end: int, state: int) -> None: ...
    def set_states(self, states: npt.NDArray[np.uint8]) -> None: ...
    def get_states(self) -> npt.NDArray[np.uint8]: ...
    def state(self, server: int) -> int: ...
    def argmax(self, keys: npt.NDArray[np.uint64], flow_hash: int) -> int: ...
    def _capsule(self) -> Any: ...
    @property
    def version(self) -> int: ...
    @property
    def isa(self) -> str: ...
    @property
    def counts(self) -> dict[str, int]: ...
    @property
    def stats(self) -> dict[str, Any]: ...
