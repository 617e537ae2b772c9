"""``af.SharedEngine``: the derived tables and live states of one engine in a shared-memory segment.

* answers bit-identical to ``af.Engine`` and ``ReferenceEngine`` (random topologies, states,
  requests and state changes made through either the owner or an attached engine);
* a state change made in one process is seen by another process at its next decision;
* batches decided on threads while another process flips states: every row is the answer under the
  states before or after a flip, never a mix;
* a writer process killed inside its change: the next writer (or a waiting reader) repairs the state;
* attaching to a missing, foreign, truncated, unfinished or other-topology segment is a clear
  ``SharedEngineError``; unlink (explicit, ``with``, or the owner's end) removes ``/dev/shm/<name>``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import secrets
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import apply_states, request_lists, requests, states, topologies
from test_threads import grid_topology

import aegisfwd as af
from aegisfwd.engine import available_isas
from aegisfwd.topology import STATE_NAMES

pytestmark = pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="needs POSIX shared memory (/dev/shm)")

COLUMNS = ("tier", "server", "dc", "location", "ip", "distance")
# fork: the children attach by name like unrelated processes would (a fork copies no mapping they use).
CTX = mp.get_context("fork")


def shm(name: str) -> Path:
    return Path("/dev/shm") / name


def fresh_name() -> str:
    return f"aegisfwd-test-{os.getpid()}-{secrets.token_hex(4)}"


def outcome(call, *args, **kwargs):
    try:
        return call(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - any exception must match the reference's
        return (type(exc), str(exc))


def same_batch(a: af.BatchResult, b: af.BatchResult) -> None:
    for name in COLUMNS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        assert np.array_equal(x, y, equal_nan=(name == "distance")), (name, x, y)


@pytest.fixture(scope="module")
def grid():
    topo = grid_topology()
    return topo, topo.compile()


# ---- answers --------------------------------------------------------------------------------------


@pytest.mark.parametrize("isa", available_isas())
@given(data=st.data())
def test_answers_equal_engine_and_reference(isa, data):
    topo = data.draw(topologies())
    codes = data.draw(states(topo))
    compiled = topo.compile()
    with af.SharedEngine.create(compiled, isa=isa) as owner:
        worker = af.SharedEngine.attach(owner.name, compiled, isa=isa)
        ref, eng = af.ReferenceEngine(topo), af.Engine(compiled, isa=isa)
        # Initial states: the compiled file's.
        assert (owner.states == ref.states).all() and (worker.states == ref.states).all()
        apply_states(ref, codes)
        eng.set_states(codes)
        worker.set_states(codes)  # made by the attached engine, seen by the owner
        assert (owner.states == codes).all()
        for _ in range(6):
            request = data.draw(requests(topo, invalid=True))
            expected = outcome(ref.decide, *request)
            assert outcome(owner.decide, *request) == expected, request
            assert outcome(worker.decide, *request) == expected, request
            assert outcome(eng.decide, *request) == expected, request
        rows = data.draw(request_lists(topo, invalid=True))
        if rows:
            cols = [list(c) for c in zip(*rows, strict=True)]
            expected = ref.decide_batch(*cols, errors="mark")
            same_batch(worker.decide_batch(*cols, errors="mark"), expected)
            same_batch(owner.decide_batch(*cols, errors="mark", threads=2), expected)
        worker.close()


@settings(max_examples=25)
@given(data=st.data())
def test_state_changes_from_either_side_match_reference(data):
    """A sequence of server/DC/location changes, each made by the owner or by an attached engine,
    leaves both answering as the reference under the same changes."""
    topo = data.draw(topologies())
    compiled = topo.compile()
    targets = list(topo.server_ids) + [d.id for d in topo.data_centers] + [loc.id for loc in topo.locations]
    with af.SharedEngine.create(compiled) as owner:
        worker = af.SharedEngine.attach(owner.name, compiled)
        ref = af.ReferenceEngine(topo)
        for _ in range(data.draw(st.integers(1, 8))):
            target = data.draw(st.sampled_from(targets))
            state = data.draw(st.sampled_from(("up", "draining", "down")))
            data.draw(st.sampled_from((owner, worker))).set_state(target, state)
            ref.set_state(target, state)
            assert (owner.states == ref.states).all() and (worker.states == ref.states).all()
            for request in data.draw(request_lists(topo, max_size=6)):
                expected = ref.decide(*request)
                assert owner.decide(*request) == expected
                assert worker.decide(*request) == expected
        assert worker.get_state(topo.server_ids[0]) == STATE_NAMES[int(ref.states[0])]
        worker.close()


def test_world_batch_equals_engine():
    topo = af.datasets.world(seed=0)
    compiled = topo.compile()
    req = af.datasets.requests(topo, 50_000, seed=3)
    args = (req.server, req.pool, req.family, req.flow)
    eng = af.Engine(compiled)
    with af.SharedEngine.create(compiled) as owner:
        worker = af.SharedEngine.attach(owner.name, compiled)
        same_batch(worker.decide_batch(*args), eng.decide_batch(*args))
        loc = compiled.locations[5]
        worker.set_state(loc, "down")
        eng.set_state(loc, "down")
        same_batch(owner.decide_batch(*args), eng.decide_batch(*args))
        assert owner._state_version == worker._state_version  # one seqlock word
        worker.close()


# ---- across processes ----------------------------------------------------------------------------


def _watch(name, path, request, before, ready, conn):
    """Child: attach, then decide `request` until its answer moves off `before`; report how long."""
    worker = af.SharedEngine.attach(name, af.load_compiled(path))
    assert worker.decide_indices(*request)[:5] == before
    ready.set()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        got = worker.decide_indices(*request)[:5]
        if got != before:
            conn.send(("moved", got, time.monotonic_ns()))
            return
    conn.send(("timeout", None, time.monotonic_ns()))


def test_state_change_in_one_process_seen_by_another(tmp_path, grid):
    _topo, compiled = grid
    path = tmp_path / "grid.aegis"
    compiled.save(path)
    compiled = af.load_compiled(path)
    with af.SharedEngine.create(compiled) as owner:
        # A request whose egress server will go down.
        request = (0, 0, 6, 12345)
        before = owner.decide_indices(*request)[:5]
        assert before[1] >= 0
        ready = CTX.Event()
        parent, child = CTX.Pipe()
        p = CTX.Process(target=_watch, args=(owner.name, str(path), request, before, ready, child))
        p.start()
        try:
            assert ready.wait(30), "the child did not attach"
            t0 = time.monotonic_ns()
            owner.set_state(int(before[1]), "down")
            after = owner.decide_indices(*request)[:5]
            assert after != before
            assert parent.poll(30), "the child never answered"
            kind, got, t1 = parent.recv()
            assert kind == "moved", "the child never saw the change"
            assert got == after  # the same answer as the process that made the change
            assert t1 >= t0
        finally:
            p.join(30)
            if p.is_alive():
                p.kill()
        assert p.exitcode == 0


def _flip(name, path, a, b, flips, stop):
    worker = af.SharedEngine.attach(name, af.load_compiled(path))
    state = False
    while not stop.is_set():
        worker.set_states(b if not state else a)
        state = not state
        with flips.get_lock():
            flips.value += 1


def test_batches_during_flips_by_another_process(tmp_path, grid):
    _topo, compiled = grid
    path = tmp_path / "grid.aegis"
    compiled.save(path)
    compiled = af.load_compiled(path)
    eng = af.Engine(compiled)
    n = 40_000
    rng = np.random.default_rng(2)
    args = (
        rng.integers(0, len(eng.servers), n).astype(np.int32),
        rng.integers(0, len(eng.pools), n).astype(np.int32),
        rng.choice(np.array([4, 4, 4, 6], dtype=np.uint8), n),
        rng.integers(0, 2**64, n, dtype=np.uint64),
    )
    a = np.zeros(len(eng.servers), dtype=np.uint8)
    b = a.copy()
    start = compiled["location_server_start"]
    for loc in (1, 4, 7):
        b[start[loc] : start[loc + 1]] = 2
    b[rng.integers(0, len(b), 60)] = 1
    eng.set_states(a)
    expect_a = eng.decide_batch(*args, threads=1)
    eng.set_states(b)
    expect_b = eng.decide_batch(*args, threads=1)
    differ = ~(
        (expect_a.tier == expect_b.tier) & (expect_a.server == expect_b.server) & (expect_a.ip == expect_b.ip)
    )
    assert differ.mean() > 0.2

    with af.SharedEngine.create(compiled) as owner:
        owner.set_states(a)
        stop, flips = CTX.Event(), CTX.Value("q", 0)
        p = CTX.Process(target=_flip, args=(owner.name, str(path), a, b, flips, stop))
        p.start()
        errors: list[str] = []
        seen_a = seen_b = 0

        def decide(engine: af.SharedEngine) -> None:
            nonlocal seen_a, seen_b
            for _ in range(5):
                got = engine.decide_batch(*args, threads=1)
                row_a = np.ones(n, dtype=bool)
                row_b = np.ones(n, dtype=bool)
                for name in COLUMNS:
                    g, x, y = getattr(got, name), getattr(expect_a, name), getattr(expect_b, name)
                    row_a &= (g == x) | (np.isnan(g) & np.isnan(x)) if name == "distance" else g == x
                    row_b &= (g == y) | (np.isnan(g) & np.isnan(y)) if name == "distance" else g == y
                if not (row_a | row_b).all():
                    errors.append(f"{int((~(row_a | row_b)).sum())} rows match neither state")
                seen_a += int((row_a & differ).sum())
                seen_b += int((row_b & differ).sum())

        try:
            deadline = time.monotonic() + 30
            while flips.value < 2 and time.monotonic() < deadline:
                time.sleep(0.001)
            attached = af.SharedEngine.attach(owner.name, compiled)
            threads = [threading.Thread(target=decide, args=(e,)) for e in (owner, attached)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
        finally:
            stop.set()
            p.join(30)
            if p.is_alive():
                p.kill()
        assert p.exitcode == 0
        assert not errors, errors[:5]
        assert flips.value > 10
        assert seen_a > 0 and seen_b > 0  # the batches really ran across changes


def _flip_until_killed(name, path, a, b):
    worker = af.SharedEngine.attach(name, af.load_compiled(path))
    state = False
    while True:
        worker.set_states(b if not state else a)
        state = not state


def test_writer_killed_mid_change_is_repaired(tmp_path):
    """SIGKILL a process that changes every server's state in a loop (each change takes a while on
    the world topology, so the kill often lands inside one): the next writer and the readers go on,
    and the answers are the reference's for the state bytes in force."""
    topo = af.datasets.world(seed=0)
    path = tmp_path / "world.aegis"
    topo.compile().save(path)
    compiled = af.load_compiled(path)
    eng = af.Engine(compiled)
    req = af.datasets.requests(topo, 20_000, seed=4)
    args = (req.server, req.pool, req.family, req.flow)
    a = np.zeros(len(eng.servers), dtype=np.uint8)
    b = a.copy()
    b[::3] = 2
    with af.SharedEngine.create(compiled) as owner:
        rng = np.random.default_rng(9)
        odd = 0  # kills that landed inside a change (most do: a change here takes milliseconds)
        for _ in range(8):
            if odd >= 2:
                break
            p = CTX.Process(target=_flip_until_killed, args=(owner.name, str(path), a, b))
            p.start()
            time.sleep(0.3 + float(rng.random()) * 0.2)
            os.kill(p.pid, signal.SIGKILL)
            p.join(10)
            odd += owner._state_version % 2
            # A reader first (it may find the version odd and repair), then a writer.
            result: list[af.BatchResult] = []

            def read(out: list[af.BatchResult] = result) -> None:
                out.append(owner.decide_batch(*args, threads=1))

            t = threading.Thread(target=read)
            t.start()
            t.join(30)
            assert result, "a reader hung after the writer died"
            owner.set_state(0, "up")
            eng.set_states(owner.states)
            same_batch(owner.decide_batch(*args), eng.decide_batch(*args))
        assert odd >= 1, "no kill landed inside a change: the repair was not exercised"


# ---- bad segments --------------------------------------------------------------------------------


def test_attach_errors(grid, tmp_path):
    _topo, compiled = grid
    other = af.Topology.from_dict(
        {
            "locations": [{"id": "X", "lat": 0.0, "lon": 0.0}],
            "data_centers": [{"id": "X1", "location": "X", "servers": ["x1"]}],
            "pools": [{"id": "p", "ips": [{"address": "192.0.2.1", "holders": ["X"]}]}],
        }
    ).compile()
    missing = fresh_name()
    with pytest.raises(af.SharedEngineError, match=f"no shared engine named '{missing}'"):
        af.SharedEngine.attach(missing, compiled)
    with pytest.raises(af.SharedEngineError, match="may only hold"):
        af.SharedEngine.attach("a/b", compiled)
    assert issubclass(af.SharedEngineError, af.AegisError)

    with af.SharedEngine.create(compiled) as owner:
        with pytest.raises(af.SharedEngineError, match="already exists"):
            af.SharedEngine.create(compiled, name=owner.name)
        with pytest.raises(af.SharedEngineError, match="another compiled topology"):
            af.SharedEngine.attach(owner.name, other)
        good = shm(owner.name).read_bytes()

    def planted(content: bytes) -> str:
        name = fresh_name()
        shm(name).write_bytes(content)
        os.chmod(shm(name), 0o600)
        return name

    cases = {
        "garbage": (os.urandom(len(good)), "not an aegisfwd shared engine segment"),
        "tiny": (b"AEGISSHM", "truncated or not an aegisfwd segment"),
        "truncated": (good[: len(good) // 2], "is truncated"),
        "longer": (good + b"\0" * 4096, "has the wrong size"),
        "version": (good[:8] + (99).to_bytes(4, "little") + good[12:], "layout version 99"),
    }
    for label, (content, message) in cases.items():
        name = planted(content)
        try:
            with pytest.raises(af.SharedEngineError, match=message):
                af.SharedEngine.attach(name, compiled)
        finally:
            shm(name).unlink()
        assert not shm(name).exists(), label


def test_unfinished_segment_is_refused(grid):
    """A segment whose builder has not set its ready flag (still building, or died doing so)."""
    _topo, compiled = grid
    with af.SharedEngine.create(compiled) as owner:
        good = bytearray(shm(owner.name).read_bytes())
    # The ready flag is the only 32-bit 1 the header holds at a 64-byte boundary past the array
    # directory; find it by clearing candidates until attach says "not finished".
    for offset in range(64, 4096, 64):
        if good[offset : offset + 4] != b"\x01\x00\x00\x00":
            continue
        copy = bytearray(good)
        copy[offset : offset + 4] = b"\0\0\0\0"
        name = fresh_name()
        shm(name).write_bytes(bytes(copy))
        try:
            af.SharedEngine.attach(name, compiled).close()
        except af.SharedEngineError as exc:
            if "not finished" in str(exc):
                return
        finally:
            shm(name).unlink()
    pytest.fail("no ready flag found in the header")


def test_explain_on_a_shared_engine(grid):
    topo, compiled = grid
    with af.SharedEngine.create(compiled) as owner:  # compiled in this process: the model is known
        private = af.Engine(topo)
        for engine in (owner, private):
            engine.set_state("L0", "down")
        for pool in topo.pool_ids[:5]:
            request = (topo.server_ids[0], pool, 4, 11)
            assert owner.explain(*request) == private.explain(*request)


def test_closed_engine_raises_clearly(grid):
    _topo, compiled = grid
    with af.SharedEngine.create(compiled) as owner:
        worker = af.SharedEngine.attach(owner.name, compiled)
        worker.close()
        worker.close()  # idempotent
        assert worker.closed and "closed" in repr(worker)
        with pytest.raises(af.SharedEngineError, match="is closed"):
            worker.decide_batch([0], [0], [4], [1])
        with pytest.raises(af.SharedEngineError, match="is closed"):
            worker.set_state(0, "down")
        with pytest.raises(RuntimeError):
            worker.decide(0, 0, 4, 1)
        assert owner.decide(0, 0, 4, 1) is not None  # the owner is unaffected
    with pytest.raises(TypeError, match="SharedEngine.create"):
        af.SharedEngine(compiled)


# ---- lifetime of the name ------------------------------------------------------------------------


def test_unlink_removes_the_segment(grid):
    _topo, compiled = grid
    owner = af.SharedEngine.create(compiled)
    name = owner.name
    assert shm(name).exists() and owner.is_owner
    worker = af.SharedEngine.attach(name, compiled)
    assert not worker.is_owner
    owner.unlink()
    assert not shm(name).exists()
    owner.unlink()  # idempotent
    # Mappings outlive the name: both still decide and share states.
    owner.set_state(0, "down")
    assert worker.get_state(0) == "down"
    with pytest.raises(af.SharedEngineError, match="no shared engine"):
        af.SharedEngine.attach(name, compiled)

    with af.SharedEngine.create(compiled, name=fresh_name()) as scoped:
        name = scoped.name
        assert shm(name).exists()
    assert not shm(name).exists()

    dropped = af.SharedEngine.create(compiled)
    name = dropped.name
    del dropped  # the owner's end removes the name
    assert not shm(name).exists()


def _child_drops_inherited_owner(engine, conn):
    del engine  # a forked copy of the owner must not remove the owner's segment
    conn.send(True)


def test_forked_child_does_not_unlink(grid):
    _topo, compiled = grid
    with af.SharedEngine.create(compiled) as owner:
        parent, child = CTX.Pipe()
        p = CTX.Process(target=_child_drops_inherited_owner, args=(owner, child))
        p.start()
        assert parent.poll(30) and parent.recv()
        p.join(30)
        assert shm(owner.name).exists()


def test_pickle_attaches(grid):
    import pickle

    _topo, compiled = grid
    with af.SharedEngine.create(compiled) as owner:
        clone = pickle.loads(pickle.dumps(owner))
        assert isinstance(clone, af.SharedEngine) and not clone.is_owner and clone.name == owner.name
        clone.set_state(1, "down")
        assert owner.get_state(1) == "down"
        clone.close()
