"""Peak concurrency (aegisfwd.evaluation._concurrency and _core.concurrency.fold_event_runs) against a plain count.

The store sorts connections into runs, spills them, and folds them in a k-way merge; whatever the
thresholds (so tests shrink them to a few events), the peaks and the buckets where they are first
reached must equal a direct count of every key's running level.
"""

from __future__ import annotations

import functools
import gc
import pickle
from collections import defaultdict
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aegisfwd import _core
from aegisfwd.evaluation._concurrency import Concurrency, _pack

MS = 1_000_000
FOLD = _core.concurrency.fold_event_runs


def plain_peaks(rows: list[tuple[int, int, int]], resolution_ms: int) -> dict[int, tuple[int, int]]:
    """{key: (peak, first bucket at the peak)} from (key, start ns, duration ns), the definition."""
    r = resolution_ms * MS
    events: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for key, start, duration in rows:
        first = start // r
        last = max(-(-(start + duration) // r), first + 1)
        events[key][first] += 1
        events[key][last] -= 1
    out = {}
    for key, buckets in events.items():
        level = peak = 0
        at = None
        for t in sorted(buckets):
            level += buckets[t]
            if level > peak:
                peak, at = level, t
        out[key] = (peak, at)
    return out


def got_peaks(c: Concurrency) -> dict[int, tuple[int, int]]:
    index = {k: i for i, k in enumerate(c.keys)}
    r = c.resolution_ms * MS
    out = {}
    for p in c.peaks():
        key = next(k for k in c.keys if k[0] == p["egress_ip"])
        out[index[key]] = (p["peak"], _iso_to_ns(p["at"]) // r)
    return out


def _iso_to_ns(text: str) -> int:
    from datetime import datetime, timezone

    whole, frac = text.rstrip("Z").split(".")
    secs = int(datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp())
    return secs * 10**9 + int(frac)


def store(
    n_keys: int,
    resolution_ms: int = 1,
    *,
    run_rows: int = 1 << 20,
    memory_events: int = 1 << 22,
    block: int = 8192,
    spill_dir: Path | None = None,
) -> Concurrency:
    c = Concurrency(resolution_ms, spill_dir)
    c.run_rows, c.memory_events = run_rows, memory_events
    c.merge_buffer_bytes, c.merge_min_block = 0, block
    c.key_ids([(f"192.0.2.{k}", "203.0.113.1", 443) for k in range(n_keys)])
    return c


T0 = 1_714_564_800_000 * MS  # 2024-05-01T12:00:00Z

batches_st = st.lists(
    st.lists(
        st.tuples(st.integers(0, 5), st.integers(0, 60_000_000), st.integers(0, 25_000_000)), max_size=25
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=200, deadline=None)
@given(
    batches_st,
    st.integers(1, 5),
    st.sampled_from([1, 3, 1 << 20]),
    st.sampled_from([0, 7, 1 << 22]),
    st.sampled_from([1, 2, 8192]),
    st.sampled_from(["auto", "sweep", "heap"]),
)
def test_peaks_equal_a_plain_count_whatever_the_thresholds(
    tmp_path_factory, batches, resolution, run_rows, memory_events, block, strategy
):
    c = store(
        6,
        resolution,
        run_rows=run_rows,
        memory_events=memory_events,
        block=block,
        spill_dir=tmp_path_factory.getbasetemp(),
    )
    rows = []
    for batch in batches:
        key = np.array([k for k, _, _ in batch], np.int64)
        start = np.array([T0 + s for _, s, _ in batch], np.int64)
        dur = np.array([d for _, _, d in batch], np.int64)
        c.add_events(key, start, dur)
        rows += [(k, T0 + s, d) for k, s, d in batch]
    with mock.patch.object(_core.concurrency, "fold_event_runs", functools.partial(FOLD, strategy=strategy)):
        assert got_peaks(c) == plain_peaks(rows, resolution)
    assert c.events == 2 * len(rows)


def test_a_connection_closing_as_another_opens_is_not_two():
    c = store(1)
    # [0, 5 ms) and [5 ms, 9 ms): the second opens in the bucket where the first has closed.
    c.add_events(np.array([0, 0]), np.array([T0, T0 + 5 * MS]), np.array([5 * MS, 4 * MS]))
    assert [p["peak"] for p in c.peaks()] == [1]
    assert c.peaks()[0]["at"].endswith("12:00:00.000000000Z")  # the first bucket at the peak


def test_first_bucket_at_the_peak_is_reported():
    c = store(1)
    # Level 2 at 1 ms, back to 1, then 2 again at 20 ms: the peak is first reached at 1 ms.
    c.add_events(np.array([0, 0, 0]), np.array([T0, T0 + MS, T0 + 20 * MS]), np.array([40 * MS, 2 * MS, MS]))
    (p,) = c.peaks()
    assert p["peak"] == 2 and p["at"] == "2024-05-01T12:00:00.001000000Z"


def test_spilled_runs_go_to_spill_dir_and_are_removed(tmp_path):
    c = store(3, run_rows=4, memory_events=0, spill_dir=tmp_path)
    rng = np.random.default_rng(3)
    rows = []
    for _ in range(10):
        k = rng.integers(0, 3, 10)
        s = T0 + rng.integers(0, 10**9, 10)
        d = rng.integers(0, 10**8, 10)
        c.add_events(k, s, d)
        rows += list(zip(k.tolist(), s.tolist(), d.tolist(), strict=True))
    assert c.spilled_bytes == 8 * 200  # all 200 events (an open and a close per row) are on disk
    assert len(list(tmp_path.iterdir())) == 1
    assert got_peaks(c) == plain_peaks(rows, 1)
    del c
    gc.collect()
    assert list(tmp_path.iterdir()) == []


def _split_stores(rows, parts, **kw):
    """The rows dealt round-robin to `parts` stores whose keys are numbered in different orders."""
    stores = []
    for p in range(parts):
        c = Concurrency(1)
        c.run_rows, c.memory_events = kw.get("run_rows", 1 << 20), kw.get("memory_events", 1 << 22)
        names = [(f"192.0.2.{k}", "203.0.113.1", 443) for k in range(6)]
        order = names[p:] + names[:p]  # a different numbering per part
        c.key_ids(order)
        mine = rows[p::parts]
        if mine:
            ids = c.key_ids([names[k] for k, _, _ in mine])
            c.add_events(ids, np.array([s for _, s, _ in mine]), np.array([d for _, _, d in mine]))
        stores.append(c)
    return stores


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 5), st.integers(0, 60_000_000), st.integers(0, 25_000_000)), max_size=60
    ),
    st.integers(1, 4),
    st.sampled_from([(1 << 20, 1 << 22), (3, 0)]),
)
def test_merge_of_parts_equals_the_whole(rows, parts, thresholds):
    rows = [(k, T0 + s, d) for k, s, d in rows]
    run_rows, memory_events = thresholds
    whole = store(6, run_rows=run_rows, memory_events=memory_events)
    if rows:
        whole.add_events(
            np.array([k for k, _, _ in rows]),
            np.array([s for _, s, _ in rows]),
            np.array([d for _, _, d in rows]),
        )
    merged = Concurrency(1)
    merged.run_rows, merged.memory_events = run_rows, memory_events
    for part in _split_stores(rows, parts, run_rows=run_rows, memory_events=memory_events):
        merged.merge(pickle.loads(pickle.dumps(part)))  # as Dask ships them
    assert merged.peaks() == whole.peaks()


def test_pickle_reads_spilled_runs_back(tmp_path):
    c = store(2, run_rows=2, memory_events=0, spill_dir=tmp_path)
    c.add_events(np.array([0, 1, 0, 1, 0]), T0 + np.arange(5) * MS, np.full(5, 10 * MS))
    assert c.spilled_bytes > 0
    back = pickle.loads(pickle.dumps(c))
    assert back.spilled_bytes == 0 and back.peaks() == c.peaks()
    assert [p["peak"] for p in back.peaks()] == [3, 2]


def test_the_fold_is_kept_until_more_events_arrive():
    c = store(1)
    c.add_events(np.array([0]), np.array([T0]), np.array([MS]))
    first = c.peaks()
    folded = c._folded()
    assert c.peaks() == first and c._folded() is folded
    c.add_events(np.array([0]), np.array([T0]), np.array([MS]))
    assert c.peaks()[0]["peak"] == 2


def test_add_events_rejects_bad_input_and_survives_huge_durations():
    c = store(2)
    with pytest.raises(ValueError, match="one length"):
        c.add_events(np.array([0, 1]), np.array([T0]), np.array([MS, MS]))
    with pytest.raises(ValueError, match=r"key ids must be in \[0, 2\)"):
        c.add_events(np.array([2]), np.array([T0]), np.array([MS]))
    with pytest.raises(ValueError, match="duration_ns must be >= 0"):
        c.add_events(np.array([0]), np.array([T0]), np.array([-1]))
    c.add_events(np.array([0, 0]), np.array([T0, T0 + MS]), np.array([np.iinfo(np.int64).max, MS]))
    assert [p["peak"] for p in c.peaks()] == [2]
    with pytest.raises(ValueError, match="resolution_ms"):
        Concurrency(0)


def test_merge_refuses_another_resolution():
    with pytest.raises(ValueError, match="cannot merge concurrency at 2 ms into one at 1 ms"):
        Concurrency(1).merge(Concurrency(2))


# ---- _pack: one run normally, several when the buckets span too far for the key bits ---------
def test_pack_splits_runs_whose_span_does_not_fit_and_the_fold_agrees():
    rng = np.random.default_rng(0)
    n_keys = (1 << 20) + 1  # 21 key bits: a span of 2**42 buckets no longer fits
    keys = rng.integers(0, n_keys, 400)
    buckets = np.concatenate([rng.integers(0, 1000, 200), rng.integers(1 << 43, (1 << 43) + 1000, 200)])
    opens = _pack(buckets, keys, 1)
    closes = _pack(buckets + 5, keys, -1)
    assert len(opens) == 2 and len(closes) == 2
    for run in opens + closes:
        b = (run.data >> run.key_bits) + run.time_base
        assert (np.diff(b) >= 0).all()
    level, peak, at = (np.zeros(n_keys, np.int64) for _ in range(3))
    runs = [(r.data, r.time_base, r.key_bits, r.sign) for r in opens + closes]
    consumed = _core.concurrency.fold_event_runs(runs, np.iinfo(np.int64).max, level, peak, at)
    assert consumed.tolist() == [r.size for r in opens + closes]
    assert not level.any()  # every connection closed
    want = plain_peaks([(int(k), int(b) * MS, 5 * MS - 1) for k, b in zip(keys, buckets, strict=True)], 1)
    got = {int(k): (int(peak[k]), int(at[k])) for k in np.flatnonzero(peak)}
    assert got == want


def test_pack_of_nothing_is_no_run():
    assert _pack(np.zeros(0, np.int64), np.zeros(0, np.int64), 1) == []


# ---- fold_event_runs: the C++ fold checks everything before it changes anything ---------------
def _state(n):
    return np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)


@pytest.mark.parametrize(
    ("runs", "message"),
    [
        ([(np.array([8, 4], np.int64), 0, 2, 1)], "run 1: not sorted by bucket at 1"),
        ([(np.array([5], np.int64), 0, 2, 1)], "key 1 at 0 is not below the key count 1"),
        ([(np.array([-4], np.int64), 0, 2, 1)], "negative packed value"),
        ([(np.array([4], np.int64), 0, 0, 1)], "key_bits must be in"),
        ([(np.array([4], np.int64), 0, 2, 2)], "sign must be"),
        ([(np.array([4], np.int32), 0, 2, 1)], "dtype int64"),
        ([(np.array([4], np.int64), 0, 2)], "tuple"),
        ([(np.array([1 << 62], np.int64), (1 << 63) - 2, 1, 1)], "overflows"),
    ],
)
def test_fold_rejects_bad_runs_without_changing_state(runs, message):
    level, peak, at = _state(1)
    good = (np.array([0, 4], np.int64), 0, 2, 1)  # a valid run first: nothing of it may be applied
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        _core.concurrency.fold_event_runs([good, *runs], 100, level, peak, at)
    assert not level.any() and not peak.any()


def test_fold_rejects_bad_state():
    runs = [(np.array([0], np.int64), 0, 1, 1)]
    level, peak, at = _state(2)
    with pytest.raises(ValueError, match="peak must have one entry per key"):
        _core.concurrency.fold_event_runs(runs, 10, level, peak[:1].copy(), at)
    with pytest.raises(ValueError, match="dtype int64"):
        _core.concurrency.fold_event_runs(runs, 10, level, peak.astype(np.int32), at)
    peak.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        _core.concurrency.fold_event_runs(runs, 10, level, peak, at)


def test_fold_stops_at_the_limit_and_resumes():
    # key 0 opens at buckets 1, 2, 3 (+1 each) and closes at 2 (-1): levels 1, 1, 2.
    opens = np.array([1, 2, 3], np.int64) << 1
    closes = np.array([2], np.int64) << 1
    level, peak, at = _state(1)
    used = _core.concurrency.fold_event_runs([(opens, 0, 1, 1), (closes, 0, 1, -1)], 3, level, peak, at)
    assert used.tolist() == [2, 1] and level.tolist() == [1] and peak.tolist() == [1] and at.tolist() == [1]
    used = _core.concurrency.fold_event_runs(
        [(opens[2:], 0, 1, 1), (closes[1:], 0, 1, -1)], 100, level, peak, at
    )
    assert used.tolist() == [1, 0] and peak.tolist() == [2] and at.tolist() == [3]


def test_concurrency_add_new_keys_refuses_known_keys():
    c = Concurrency()
    assert c.add_new_keys([("a", "o", 1), ("b", "o", 1)]) == 0
    assert c.key_ids([("b", "o", 1), ("c", "o", 1)]).tolist() == [1, 2]
    assert c.add_new_keys([("d", "o", 1)]) == 3
    with pytest.raises(ValueError, match="already"):
        c.add_new_keys([("a", "o", 1)])
    with pytest.raises(ValueError, match="twice"):
        c.add_new_keys([("e", "o", 1), ("e", "o", 1)])
    assert c.key_ids([("e", "o", 1)]).tolist() == [4] and len(c.keys) == 5  # nothing was half-added


# ---- pack_by_bucket: the C++ radix sort that makes a run ---------------------------------------
@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**40), st.integers(0, 2**10 - 1)), max_size=300), st.integers(0, 3))
def test_pack_by_bucket_is_a_stable_sort_by_bucket(events, spread):
    buckets = np.array([b >> (10 * (3 - spread)) for b, _ in events], np.int64)  # spans from 2**10 to 2**40
    keys = np.array([k for _, k in events], np.int64)
    base = int(buckets.min()) if events else 0
    got = _core.concurrency.pack_by_bucket(buckets, keys, base, 10)
    order = np.argsort(buckets, kind="stable")
    want = ((buckets[order] - base) << 10) | keys[order]
    assert got.tolist() == want.tolist()


def test_pack_by_bucket_rejects_what_does_not_fit():
    b, k = np.array([5, 6], np.int64), np.array([0, 3], np.int64)
    with pytest.raises(ValueError, match="key 3 at 1 does not fit 1 bits"):
        _core.concurrency.pack_by_bucket(b, k, 5, 1)
    with pytest.raises(ValueError, match="bucket 5 at 0 is outside"):
        _core.concurrency.pack_by_bucket(b, k, 6, 2)
    with pytest.raises(ValueError, match="outside"):
        _core.concurrency.pack_by_bucket(np.array([2**61], np.int64), np.array([0], np.int64), 0, 2)
    with pytest.raises(ValueError, match="key_bits must be in"):
        _core.concurrency.pack_by_bucket(b, k, 5, 63)
    with pytest.raises(ValueError, match="one length"):
        _core.concurrency.pack_by_bucket(b, k[:1], 5, 2)
    with pytest.raises(ValueError, match="dtype int64"):
        _core.concurrency.pack_by_bucket(b.astype(np.int32), k, 5, 2)


def test_top_peaks_and_counts_agree_with_the_full_list():
    c = store(5)
    rng = np.random.default_rng(7)
    c.add_events(rng.integers(0, 5, 300), T0 + rng.integers(0, 10**9, 300), rng.integers(0, 10**8, 300))
    full = c.peaks()
    assert [p["peak"] for p in full] == sorted((p["peak"] for p in full), reverse=True)
    for top in (0, 1, 2, 3, 4, 5, 10):
        assert c.peaks(top) == full[:top]
    assert c.counts() == (len(full), 0)
    assert all(p["share_of_limit"] == p["peak"] / 40_000 for p in full)


# ---- end to end: a log evaluated with spilling equals one evaluated in memory -----------------
@pytest.fixture(scope="module")
def world_log():
    import importlib

    from aegisfwd.evaluation.demo import make_table

    world = importlib.import_module("aegisfwd.datasets").world(0)
    import aegisfwd as af

    return af.Engine(world), make_table(30_000, 11, topology=world)


def test_evaluate_with_spilling_gives_the_same_peaks_in_bounded_memory(world_log, tmp_path, monkeypatch):
    import aegisfwd as af

    engine, table = world_log
    in_memory = af.evaluate(table, engine, progress=False, batch_rows=4096).summary
    assert in_memory.concurrency.spilled_bytes == 0 and in_memory.timed_rows > 25_000

    monkeypatch.setattr(Concurrency, "run_rows", 1000)
    monkeypatch.setattr(Concurrency, "memory_events", 3000)
    monkeypatch.setattr(Concurrency, "merge_buffer_bytes", 8 * 500)
    monkeypatch.setattr(Concurrency, "merge_min_block", 100)
    held: list[int] = []
    add = Concurrency.add_events

    def watched(self, *args):
        add(self, *args)
        held.append(2 * self._pending_rows + self._memory_events)

    monkeypatch.setattr(Concurrency, "add_events", watched)
    spilled = af.evaluate(table, engine, progress=False, batch_rows=4096, spill_dir=tmp_path).summary
    assert spilled.concurrency.spilled_bytes > 8 * 40_000  # most events went to disk
    assert max(held) <= 2 * 1000 + 3000  # buffered connections + in-memory runs, never the whole log
    assert spilled.concurrency.peaks() == in_memory.concurrency.peaks()
    assert spilled.to_dict() == in_memory.to_dict()
    del spilled
    gc.collect()
    assert list(tmp_path.iterdir()) == []


def test_cli_spill_dir(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from aegisfwd.cli import main

    logs = Path(__file__).parent / "fixtures" / "logs"
    monkeypatch.setattr(Concurrency, "run_rows", 1)
    monkeypatch.setattr(Concurrency, "memory_events", 0)
    made: list[Path] = []
    spill_init = Concurrency._spill_runs

    def spy(self):
        spill_init(self)
        made.append(Path(self._spill.dir))

    monkeypatch.setattr(Concurrency, "_spill_runs", spy)
    r = CliRunner().invoke(
        main,
        [
            "evaluate",
            str(logs / "quirks.ndjson"),
            "-t",
            str(logs / "topology.yaml"),
            "--spill-dir",
            str(tmp_path),
            "--no-progress",
        ],
    )
    assert r.exit_code == 0, r.output
    assert made and all(p.parent == tmp_path for p in made)
    gc.collect()
    assert list(tmp_path.iterdir()) == []
    bad = CliRunner().invoke(
        main,
        [
            "evaluate",
            str(logs / "quirks.ndjson"),
            "-t",
            str(logs / "topology.yaml"),
            "--spill-dir",
            str(tmp_path / "missing"),
        ],
    )
    assert bad.exit_code == 2 and "does not exist" in bad.output
    made.clear()
    r = CliRunner().invoke(
        main,
        [
            "compare",
            str(logs / "basic.csv"),
            "-t",
            str(logs / "topology.yaml"),
            "-t",
            str(logs / "topology-b.yaml"),
            "--spill-dir",
            str(tmp_path),
            "--no-progress",
        ],
    )
    assert r.exit_code == 0, r.output
    assert made and all(p.parent == tmp_path for p in made)  # both topologies' analyses spilled there
    gc.collect()
    assert list(tmp_path.iterdir()) == []


def test_log_commands_pick_jemalloc_unless_told_otherwise(monkeypatch):
    import pyarrow as pa

    from aegisfwd.cli.evaluate import use_lean_arrow_pool

    before = pa.default_memory_pool()
    try:
        monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "system")
        use_lean_arrow_pool()
        assert pa.default_memory_pool().backend_name == before.backend_name
        monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL")
        try:
            pa.jemalloc_memory_pool()
        except NotImplementedError:
            pytest.skip("this pyarrow build has no jemalloc")
        use_lean_arrow_pool()
        assert pa.default_memory_pool().backend_name == "jemalloc"
    finally:
        pa.set_memory_pool(before)


def test_top_peaks_break_ties_at_the_boundary_by_key():
    c = Concurrency(1)
    names = [(f"192.0.2.{k}", "203.0.113.1", 443) for k in (9, 3, 7, 1, 5)]
    c.key_ids(names)
    # Keys 0 and 1 reach 2, the others 1: the top 3 is both 2s, then the smallest key among the 1s.
    c.add_events(np.array([0, 0, 1, 1, 2, 3, 4]), np.full(7, T0), np.full(7, MS))
    assert [(p["egress_ip"], p["peak"]) for p in c.peaks(3)] == [
        ("192.0.2.3", 2),
        ("192.0.2.9", 2),
        ("192.0.2.1", 1),
    ]
    assert c.peaks(3) == c.peaks()[:3]


def test_spill_problems_are_clear_errors(tmp_path):
    import aegisfwd as af

    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    c = store(1, run_rows=1, memory_events=0, spill_dir=blocked)
    with pytest.raises(af.SpillError, match="cannot create the concurrency spill file in .*file-not-dir"):
        c.add_events(np.array([0]), np.array([T0]), np.array([MS]))

    c = store(1, run_rows=1, memory_events=0, spill_dir=tmp_path)
    c.add_events(np.array([0, 0]), np.array([T0, T0]), np.array([MS, MS]))
    c._spill.file.truncate(8)  # the file lost its tail behind our back
    with pytest.raises(af.SpillError, match="shorter than written"):
        c.peaks()
    assert isinstance(af.SpillError("x"), OSError)


def test_cli_reports_a_spill_error_as_one_line(tmp_path, monkeypatch):
    import tempfile

    from click.testing import CliRunner

    from aegisfwd.cli import main

    logs = Path(__file__).parent / "fixtures" / "logs"
    monkeypatch.setattr(Concurrency, "run_rows", 1)
    monkeypatch.setattr(Concurrency, "memory_events", 0)

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tempfile, "mkdtemp", full)
    r = CliRunner().invoke(
        main,
        [
            "evaluate",
            str(logs / "quirks.ndjson"),
            "-t",
            str(logs / "topology.yaml"),
            "--spill-dir",
            str(tmp_path),
            "--no-progress",
        ],
    )
    assert r.exit_code == 2, r.output
    assert "cannot create the concurrency spill file" in r.output and "No space left" in r.output
    assert "Traceback" not in r.output


@pytest.mark.parametrize(("strategy", "span"), [("sweep", 50), ("heap", 50), ("heap", 10**12)])
def test_fold_strategies_agree_on_dense_and_sparse_runs(strategy, span):
    # Dense (span 50): auto sweeps; sparse (buckets up to 10**12 apart): auto takes the heap (a
    # forced sweep would visit every one of the 10**12 buckets).
    rng = np.random.default_rng(5)
    runs = []
    for sign in (1, -1, 1, -1):
        buckets = np.sort(rng.integers(0, span, 300))
        keys = rng.integers(0, 9, 300)
        runs += [(r.data, r.time_base, r.key_bits, r.sign) for r in _pack(buckets, keys, sign)]
    results = []
    for how in ("auto", strategy):
        level, peak, at = _state(9)
        used = _core.concurrency.fold_event_runs(runs, 10**13, level, peak, at, strategy=how)
        results.append((used.tolist(), level.tolist(), peak.tolist(), at.tolist()))
    assert results[0] == results[1]
    with pytest.raises(ValueError, match="strategy must be"):
        _core.concurrency.fold_event_runs([], 0, *_state(1), strategy="fast")
