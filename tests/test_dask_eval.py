"""af.evaluate_dask on a two-process LocalCluster equals af.evaluate on one machine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import aegisfwd as af

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

LOGS = Path(__file__).parent / "fixtures" / "logs"


def _log(n: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    colos = np.array(["LHR", "AMS", "JFK", "LHR01", "LHR02", "ZZZ"])
    zones = np.array(
        ["local.example", "remote.example", "dc.example", "none.example", "pair.example", "x.example"]
    )
    origins = np.array(["203.0.113.1", "203.0.113.2", "2001:db8:ffff::1", "", "garbage"])
    return pa.table(
        {
            "RayID": [f"{i:016x}" for i in range(n)],
            "EdgeColoCode": colos[rng.integers(0, 6, n)],
            "ZoneName": zones[rng.integers(0, 6, n)],
            "OriginIP": origins[rng.choice(5, n, p=[0.45, 0.4, 0.1, 0.03, 0.02])],
            "ClientIP": [f"198.51.{i % 256}.{(i * 7) % 256}" for i in range(n)],
            "ClientSrcPort": rng.integers(1024, 65535, n),
            "EdgeStartTimestamp": 1_700_000_000_000_000_000 + np.sort(rng.integers(0, 10**9, n)),
            "OriginResponseDurationMs": rng.integers(0, 300, n),
        }
    )


@pytest.fixture(scope="module")
def cluster():
    with (
        # Loopback only, and the scheduler's HTTP server on a free port: dashboard_address=None
        # still means distributed's default 8787, and a second run on the machine holding it made the
        # cluster fail to start ("Port 8787 is already in use", an error under strict warnings).
        distributed.LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
        ) as c,
        distributed.Client(c) as client,
    ):
        yield client


def test_dask_equals_local(cluster, tmp_path):
    topo = af.load_topology(LOGS / "topology.yaml")
    table = _log(3000)
    local = af.evaluate(table, topo, progress=False)
    ddf = dd.from_pandas(table.to_pandas(), npartitions=5)

    scatters = []
    real_scatter = cluster.scatter

    def counting_scatter(*args, **kwargs):
        scatters.append(kwargs.get("broadcast"))
        return real_scatter(*args, **kwargs)

    cluster.scatter = counting_scatter
    try:
        ev = af.evaluate_dask(ddf, topo, client=cluster, output=tmp_path / "out", rejects=tmp_path / "rej")
    finally:
        del cluster.scatter
    assert scatters == [True]  # the engine went to the workers once, broadcast, for all 5 partitions
    assert ev.summary.rows_in == 3000
    assert ev.summary.counts_equal(local.summary)
    assert ev.summary.rejects == local.summary.rejects and ev.summary.rejects
    assert ev.summary.concurrency.peaks() == local.summary.concurrency.peaks()
    parts = sorted((tmp_path / "out").glob("part-*.parquet"))
    assert len(parts) == 5
    out = pq.read_table(tmp_path / "out")
    assert out.num_rows == local.summary.rows_decided
    a = out.select(["RayID", "tier", "egress_server", "egress_ip"]).to_pylist()
    b = local.decisions.select(["RayID", "tier", "egress_server", "egress_ip"]).to_pylist()
    key = lambda r: r["RayID"]
    assert sorted(a, key=key) == sorted(b, key=key)
    assert pq.read_table(tmp_path / "rej").num_rows == local.summary.rows_rejected


def test_dask_files_one_task_each(cluster, tmp_path):
    topo = af.load_topology(LOGS / "topology.yaml")
    d = tmp_path / "logs"
    d.mkdir()
    t = _log(1200, seed=3)
    pq.write_table(t.slice(0, 500), d / "a.parquet")
    pq.write_table(t.slice(500), d / "b.parquet")
    (d / "c.ndjson").write_text((LOGS / "quirks.ndjson").read_text())
    ev = af.evaluate_dask(d, topo, client=cluster)
    local = af.evaluate(d, topo, progress=False)
    assert ev.summary.counts_equal(local.summary)
    assert ev.summary.rows_in == 1220


def test_summaries_of_parts_merge_exactly():
    topo = af.load_topology(LOGS / "topology.yaml")
    table = _log(2000, seed=5)
    whole = af.evaluate(table, topo, progress=False).summary
    parts = [af.evaluate(table.slice(a, 500), topo, progress=False).summary for a in range(0, 2000, 500)]
    merged = af.evaluation.Summary.merge_all(parts)
    assert merged.counts_equal(whole)
    assert merged.to_dict()["concurrency"] == whole.to_dict()["concurrency"]


def test_cli_scheduler(cluster, tmp_path):
    # The CLI in a process of its own, as a user runs it: one client in it, connected to the running
    # scheduler by address. (In this process it would share the interpreter with the fixture's client
    # and switch the process's Arrow pool and GC state for every later test.) Bounded: a CLI that does
    # not finish in time fails the test, with the stacks of every thread of the CLI (faulthandler, on
    # SIGABRT) and of the tasks still running on the workers, instead of holding the suite. (An
    # in-process run of this test once held CI for 90 minutes; it never hung here to be seen.)
    import os
    import signal
    import subprocess
    import sys

    out = tmp_path / "decisions"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from aegisfwd.cli import main; main()",
            "evaluate",
            str(LOGS / "quirks.ndjson"),
            str(LOGS / "basic.csv"),
            "-t",
            str(LOGS / "topology.yaml"),
            "--scheduler",
            cluster.scheduler.address,
            "-o",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONFAULTHANDLER": "1"},
    )
    try:
        stdout, stderr = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        workers = cluster.call_stack()
        proc.send_signal(signal.SIGABRT)  # faulthandler writes every thread's stack to stderr
        stdout, stderr = proc.communicate(timeout=30)
        pytest.fail(f"evaluate --scheduler did not finish in 180 s\n{stderr}\nworkers' tasks: {workers}")
    assert proc.returncode == 0, stdout + stderr
    assert "Tier mix" in stdout
    assert "Traceback" not in stderr
    assert pq.read_table(out).num_rows == 11 + 9


def test_dask_lists_input_errors_in_file_order_whatever_finishes_first(cluster, tmp_path):
    import gzip
    import json

    topo = af.load_topology(LOGS / "topology.yaml")
    d = tmp_path / "logs"
    d.mkdir()
    rows = _log(400, seed=4).to_pylist()
    for name, n in (("a", 50), ("b", 400), ("c", 5)):  # different sizes: they finish in any order
        data = gzip.compress("".join(json.dumps(r) + "\n" for r in rows[:n]).encode() * 20)
        (d / f"{name}.json.gz").write_bytes(data[: len(data) // 2])  # cut: each reports an input error
    ev = af.evaluate_dask(d, topo, client=cluster)
    local = af.evaluate(d, topo, progress=False)
    assert ev.summary.input_errors == local.summary.input_errors
    assert len(ev.summary.input_errors) == 3 and "a.json.gz" in ev.summary.input_errors[0]
    assert ev.summary.counts_equal(local.summary)
