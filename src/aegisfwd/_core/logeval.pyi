"""Type stubs of ``aegisfwd._core.logeval`` (compiled pybind11 submodule; internal)."""

import numpy as np
import numpy.typing as npt

def choose_ingress(
    first: npt.NDArray[np.int32],
    end: npt.NDArray[np.int32],
    flows: npt.NDArray[np.uint64],
    server_keys: npt.NDArray[np.uint64],
    states: npt.NDArray[np.uint8],
    threads: int = 0,
    isa: str = "auto",
) -> npt.NDArray[np.int32]: ...
def string_hashes(
    offsets: npt.NDArray[np.int32] | npt.NDArray[np.int64],
    data: npt.NDArray[np.uint8],
    valid: npt.NDArray[np.bool_] | npt.NDArray[np.uint8] | None = None,
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.bool_]]: ...

class PairIndex:
    def __init__(self) -> None: ...
    def __len__(self) -> int: ...
    def index(
        self, a: npt.NDArray[np.uint64], b: npt.NDArray[np.uint64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]: ...

def compact_indices(
    indices: npt.NDArray[np.int32], size: int
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32]]: ...
