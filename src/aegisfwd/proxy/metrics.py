"""Prometheus metrics of the edge processes (prometheus_client).

Every edge process counts into prometheus_client's multiprocess directory
(``PROMETHEUS_MULTIPROC_DIR``, set by ``proxy up`` before a worker imports prometheus_client); the
control endpoint's ``/metrics`` merges all processes. The decision histogram's buckets are in
seconds, from 250 ns: a decision takes a fraction of a microsecond, a source bind a few (syscalls).
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

DECISION_BUCKETS = (
    0.25e-6,
    0.5e-6,
    0.75e-6,
    1e-6,
    1.5e-6,
    2e-6,
    3e-6,
    4e-6,
    6e-6,
    8e-6,
    12e-6,
    16e-6,
    32e-6,
    64e-6,
    128e-6,
    1e-3,
    float("inf"),
)

CONNECTIONS = Counter(
    "aegisfwd_proxy_connections_total", "Client connections decided, by tier", ["server", "tier"]
)
REFUSALS = Counter(
    "aegisfwd_proxy_refusals_total",
    "Connections refused, by reason (ingress and egress)",
    ["server", "reason"],
)
DECISION = Histogram(
    "aegisfwd_proxy_decision_seconds",
    "Engine decision per connection (flow key to answer)",
    buckets=DECISION_BUCKETS,
)
BIND = Histogram(
    "aegisfwd_proxy_source_bind_seconds",
    "Source socket per egress connection: create, options, bind",
    buckets=DECISION_BUCKETS,
)
ACTIVE = Gauge(
    "aegisfwd_proxy_active_connections",
    "Open origin connections per egress IP and origin",
    ["egress_ip", "origin"],
    multiprocess_mode="livesum",
)
STATE_EPOCH = Gauge(
    "aegisfwd_proxy_state_epoch",
    "Last state epoch applied",
    ["server"],
    multiprocess_mode="liveall",
)


def multiprocess_metrics() -> bytes:
    """The merged exposition of every process writing to ``PROMETHEUS_MULTIPROC_DIR``."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return generate_latest()
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call, unused-ignore]
    return generate_latest(registry)


def mark_dead(pid: int) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call, unused-ignore]


def parse_exposition(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Samples of a Prometheus text exposition: (name, sorted labels) -> value (for tests, demo)."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    return out


def total(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **match: Any) -> float:
    return sum(
        v
        for (n, labels), v in samples.items()
        if n == name and all(dict(labels).get(k) == str(x) for k, x in match.items())
    )
