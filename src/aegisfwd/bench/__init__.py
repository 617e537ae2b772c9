"""Benchmark comparisons of the decision paths against peers and a memory-streaming floor.

``aegisfwd bench`` (``cli/bench.py``) runs ``runner.run`` and prints a table or JSON records; the
full suite is ``pytest benchmarks/`` (pytest-benchmark), built on the same workloads and paths.
See ``benchmarks/README.md`` for the method and the measured results.
"""

from __future__ import annotations

from .floor import BYTES_PER_DECISION, Floor, measure_floor
from .runner import Record, Settings, WorkloadReport, run
from .workloads import WORKLOADS, Workload, make

__all__ = [
    "BYTES_PER_DECISION",
    "WORKLOADS",
    "Floor",
    "Record",
    "Settings",
    "Workload",
    "WorkloadReport",
    "make",
    "measure_floor",
    "run",
]
