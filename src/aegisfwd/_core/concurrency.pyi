"""Type stubs of ``aegisfwd._core.concurrency`` (compiled pybind11 submodule; internal)."""

import numpy as np
import numpy.typing as npt

def fold_event_runs(
    runs: list[tuple[npt.NDArray[np.int64], int, int, int]],
    limit: int,
    level: npt.NDArray[np.int64],
    peak: npt.NDArray[np.int64],
    peak_at: npt.NDArray[np.int64],
    strategy: str = "auto",
) -> npt.NDArray[np.int64]: ...
def pack_by_bucket(
    buckets: npt.NDArray[np.int64], keys: npt.NDArray[np.int64], time_base: int, key_bits: int
) -> npt.NDArray[np.int64]: ...
