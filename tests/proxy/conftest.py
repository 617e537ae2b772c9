"""Fixtures of the proxy tests: a loopback block per test, in-process edges, whole deployments.

Everything here listens on loopback only (one ``127.B.0.0/16`` block per test, plus ``::1``), makes
a bounded number of connections, and stops what it started in the fixture's finaliser.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("prometheus_client", reason="the proxy extra (prometheus_client) is not installed")

import aegisfwd as af
from aegisfwd.proxy.harness import Deployment
from aegisfwd.proxy.scenario import demo_topology, free_block


@pytest.fixture
def block() -> int:
    return free_block()


@pytest.fixture(scope="session")
def demo_compiled() -> af.CompiledTopology:
    return af.Topology.from_dict(demo_topology()).compile()


@pytest.fixture
def deployment_factory(tmp_path: Path) -> Iterator[Any]:
    """Start whole deployments (origin + `proxy up` as processes); all stopped at teardown."""
    made: list[Deployment] = []

    def make(**kw: Any) -> Deployment:
        d = Deployment(tmp_path / f"dep{len(made)}", block=free_block(), **kw)
        made.append(d)
        d.start()
        return d

    yield make
    for d in made:
        d.stop()
