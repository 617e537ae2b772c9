"""Live state changes while other threads decide: every row of every batch decided during a flood of
changes equals its answer under the states before or after some change -- never a torn mix."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import aegisfwd as af
from aegisfwd.engine import available_isas


def grid_topology(n_loc: int = 12, dcs: int = 3, servers: int = 12, pools: int = 120) -> af.Topology:
    """Locations on a line (distances differ), IPv4 addresses in 1-4 locations, IPv6 prefixes
    everywhere: long candidate lists, every tier."""
    rng = np.random.default_rng(1)
    locations = [{"id": f"L{i}", "lat": 0.0, "lon": 3.0 * i} for i in range(n_loc)]
    data_centers = [
        {"id": f"L{i}D{d}", "location": f"L{i}", "servers": [f"L{i}D{d}s{k}" for k in range(servers)]}
        for i in range(n_loc)
        for d in range(dcs)
    ]
    pool_docs = []
    for p in range(pools):
        ips = []
        for k in range(int(rng.integers(1, 4))):
            where = rng.choice(n_loc, size=int(rng.integers(1, 5)), replace=False)
            holders = []
            for loc in where.tolist():
                if rng.random() < 0.5:
                    holders.append(f"L{loc}")
                else:
                    holders.append(f"L{loc}D{int(rng.integers(0, dcs))}")
            ips.append({"address": f"10.{p // 256}.{p % 256}.{k + 1}", "holders": holders})
        ips.append({"address": f"2001:db8:{p:x}::/48", "holders": [f"L{i}" for i in range(n_loc)]})
        pool_docs.append({"id": f"p{p}", "ips": ips})
    return af.Topology.from_dict({"locations": locations, "data_centers": data_centers, "pools": pool_docs})


@pytest.fixture(scope="module")
def topo():
    return grid_topology()


def expected_under(engine: af.Engine, codes: np.ndarray, args) -> af.BatchResult:
    engine.set_states(codes)
    return engine.decide_batch(*args, threads=1)


@pytest.mark.parametrize("isa", available_isas())
def test_batches_see_states_before_or_after_each_change(topo, isa):
    engine = af.Engine(topo, isa=isa)
    n = 60_000
    rng = np.random.default_rng(2)
    args = (
        rng.integers(0, len(engine.servers), n).astype(np.int32),
        rng.integers(0, len(engine.pools), n).astype(np.int32),
        rng.choice(np.array([4, 4, 4, 6], dtype=np.uint8), n),
        rng.integers(0, 2**64, n, dtype=np.uint64),
    )
    # Two server-state vectors that differ in whole locations, DCs and scattered servers: the
    # flips between them change lists, empty some, and move REMOTE answers.
    a = np.zeros(len(engine.servers), dtype=np.uint8)
    b = a.copy()
    loc_start = engine.compiled["location_server_start"]
    for loc in (1, 4, 7):
        b[loc_start[loc] : loc_start[loc + 1]] = 2
    b[rng.integers(0, len(b), 60)] = 1
    expect_a = expected_under(engine, a, args)
    expect_b = expected_under(engine, b, args)
    differ = ~(
        (expect_a.tier == expect_b.tier) & (expect_a.server == expect_b.server) & (expect_a.ip == expect_b.ip)
    )
    assert differ.mean() > 0.2  # the flips matter to many rows
    engine.set_states(a)

    stop = threading.Event()
    flips = [0]

    def flipper():
        state = False
        while not stop.is_set():
            engine.set_states(b if not state else a)  # one atomic change of ~100 servers
            state = not state
            flips[0] += 1

    errors: list[str] = []
    seen_a = seen_b = 0
    t = threading.Thread(target=flipper)
    t.start()
    try:
        for _ in range(12):
            got = engine.decide_batch(*args, threads=2)
            for name in ("tier", "server", "dc", "location", "ip", "distance"):
                g, x, y = getattr(got, name), getattr(expect_a, name), getattr(expect_b, name)
                ok = np.isclose(g, x, equal_nan=True, rtol=0, atol=0) | np.isclose(
                    g, y, equal_nan=True, rtol=0, atol=0
                )
                if not ok.all():
                    errors.append(f"{name}: {int((~ok).sum())} rows match neither state")
            # Whole rows, not just columns, must come from one state.
            row_a = (got.tier == expect_a.tier) & (got.server == expect_a.server) & (got.ip == expect_a.ip)
            row_b = (got.tier == expect_b.tier) & (got.server == expect_b.server) & (got.ip == expect_b.ip)
            if not (row_a | row_b).all():
                errors.append(f"{int((~(row_a | row_b)).sum())} rows mix the two states")
            seen_a += int((row_a & differ).sum())
            seen_b += int((row_b & differ).sum())
    finally:
        stop.set()
        t.join()
    assert not errors, errors[:5]
    assert flips[0] > 10
    assert seen_a > 0 and seen_b > 0  # batches really ran across changes


def test_scalar_decisions_and_changes_from_many_threads(topo):
    """Python threads deciding and changing states at once (the GIL interleaves them; the C++
    engine must stay consistent between the calls of different threads)."""
    engine = af.Engine(topo)
    ref = af.ReferenceEngine(topo)
    locations = list(engine.locations)
    stop = threading.Event()
    failures: list[BaseException] = []

    def changer():
        rng = np.random.default_rng(5)
        try:
            while not stop.is_set():
                engine.set_state(locations[int(rng.integers(0, len(locations)))], "down")
                engine.set_state(locations[int(rng.integers(0, len(locations)))], "up")
        except BaseException as exc:  # noqa: BLE001
            failures.append(exc)

    def decider(seed: int):
        rng = np.random.default_rng(seed)
        try:
            for _ in range(3000):
                d = engine.decide(
                    int(rng.integers(0, len(engine.servers))),
                    int(rng.integers(0, len(engine.pools))),
                    4,
                    int(rng.integers(0, 2**63)),
                )
                assert d.tier in (
                    af.Tier.LOCAL,
                    af.Tier.SAME_DC,
                    af.Tier.SAME_LOCATION,
                    af.Tier.REMOTE,
                    af.Tier.UNAVAILABLE,
                )
                if d.tier != af.Tier.UNAVAILABLE:
                    assert engine.ips[d.ip_index] == d.ip and d.server is not None
        except BaseException as exc:  # noqa: BLE001
            failures.append(exc)

    threads = [threading.Thread(target=changer)] + [
        threading.Thread(target=decider, args=(k,)) for k in range(3)
    ]
    for th in threads:
        th.start()
    for th in threads[1:]:
        th.join()
    stop.set()
    threads[0].join()
    assert not failures, failures[:3]
    # After the storm the engine still answers exactly like the reference under its states.
    for s, code in enumerate(engine.states.tolist()):
        ref.set_state(s, ("up", "draining", "down")[code])
    flows = np.arange(2000, dtype=np.uint64)
    servers = (np.arange(2000) % len(engine.servers)).astype(np.int32)
    pools = (np.arange(2000) % len(engine.pools)).astype(np.int32)
    assert engine.decide_batch(servers, pools, 4, flows).equals(ref.decide_batch(servers, pools, 4, flows))
