"""Smoke pass of benchmarks/proxy_bench.py (CI runs the benchmarks once, small, still checked):
one small round of each mode through a real `proxy up`, every connection completed, figures present."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("prometheus_client", reason="the proxy extra is not installed")
sys.path.insert(0, str(Path(__file__).parent))

import proxy_bench


def test_proxy_bench_smoke() -> None:
    out = proxy_bench.run(connections=120, rounds=1, changes=3, concurrency=16, engine="private")
    assert len(out["conn_per_s_decision"]) == len(out["conn_per_s_fixed"]) == 1
    assert out["ratio_decision_over_fixed"] > 0
    assert out["decision_samples"] >= 120 and out["bind_samples"] >= 240  # fixed mode binds too
    assert out["decision_ns"]["p99_ns"] > 0 and out["bind_ns"]["p99_ns"] > 0
    assert out["state_applied_all_us"]["n"] == 3
    assert out["isolated"]["cold"]["decide_indices"]["p50"] > 0
