"""End-to-end log evaluation: read, parse, choose ingress, decide, summarise (including the
concurrency peaks the CLI shows), write Parquet.

Groups (one per input size):

* ``evaluate | N rows``: the same N Logpush-style requests on the world topology, from
  - Parquet, ingress from ``EdgeColoCode`` (rendezvous among the colo's up servers, ``_ingress.py``),
  - Parquet with an explicit ingress-server column (no ingress choice),
  - NDJSON.gz (the demo log: quirks included).

Each run writes the decisions to Parquet. Every result is checked before it counts: rows in equal
rows decided plus rejected, the output holds every decided row, and the first rows' decisions equal
``engine.decide_batch`` on the output's ingress servers with the documented flow keys.
Size: ``AEGISFWD_BENCH_EVAL_N`` (default 1,000,000; 2,000 with ``--benchmark-disable``).

    .venv/bin/pytest benchmarks/test_evaluate_bench.py --benchmark-columns=min,median,max
"""

from __future__ import annotations

import importlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import aegisfwd as af
from aegisfwd.evaluation import _arrow as ar
from aegisfwd.evaluation._run import model_for
from aegisfwd.evaluation.demo import make_log, make_table

CHECK_ROWS = 5_000


@pytest.fixture(scope="session")
def eval_setup(tmp_path_factory, sizes):
    datasets = importlib.import_module("aegisfwd.datasets")
    topo = datasets.world(0)
    engine = af.Engine(topo)
    model = model_for(engine)  # built once, like a long-running job would
    d = tmp_path_factory.mktemp("evallogs")
    n = sizes.eval_n
    table = make_table(n, 0, topology=topo, server_column=True)
    pq.write_table(table.drop_columns(["EdgeServer"]), d / "log.parquet")
    pq.write_table(table, d / "log-with-server.parquet")
    make_log(d / "log.ndjson.gz", n, 0, topology=topo)
    return {"topo": topo, "engine": engine, "model": model, "dir": d, "n": n, "table": table}


def _check(ev, s, out_path, n, expect_all: bool) -> None:
    summary = ev.summary
    assert summary.rows_in == summary.rows_decided + summary.rows_rejected
    assert summary.rows_in >= n
    if expect_all:
        assert summary.rows_rejected == 0
    out = pq.read_table(out_path)
    assert out.num_rows == summary.rows_decided
    # The first rows against the engine directly, with the documented flow keys.
    head = out.slice(0, CHECK_ROWS)
    src = s["table"]
    by_ray = {r: i for i, r in enumerate(src.column("RayID").slice(0, 4 * CHECK_ROWS).to_pylist())}
    rows = [by_ray.get(r) for r in head.column("RayID").to_pylist()]
    keep = [i for i, r in enumerate(rows) if r is not None]
    if not keep:
        return
    src_rows = src.take(pa.array([rows[i] for i in keep]))
    head = head.take(pa.array(keep))
    m = len(keep)
    flows, ok = ar.flow_keys(
        src_rows.column("ClientIP"), src_rows.column("ClientSrcPort"), src_rows.column("RayID"), m
    )
    assert ok.all()
    family = ar.ip_family_of_strings(src_rows.column("OriginIP").combine_chunks())
    zones = s["topo"].zones
    pools = [zones[z] for z in src_rows.column("ZoneName").to_pylist()]
    servers = head.column("ingress_server").cast(pa.string()).to_pylist()
    want = s["engine"].decide_batch(servers, pools, family, flows).to_arrow()
    assert (
        head.column("tier").cast(pa.string()).to_pylist() == want.column("tier").cast(pa.string()).to_pylist()
    )
    assert (
        head.column("egress_server").cast(pa.string()).to_pylist()
        == want.column("server").cast(pa.string()).to_pylist()
    )
    assert (
        head.column("egress_ip").cast(pa.string()).to_pylist()
        == want.column("ip").cast(pa.string()).to_pylist()
    )
    np.testing.assert_array_equal(head.column("distance").to_numpy(), want.column("distance").to_numpy())


@pytest.mark.parametrize(
    ("name", "file", "columns", "expect_all"),
    [
        ("parquet, ingress by colo", "log.parquet", None, True),
        ("parquet, ingress server column", "log-with-server.parquet", {"ingress_server": "EdgeServer"}, True),
        ("ndjson.gz (demo log, quirks)", "log.ndjson.gz", None, False),
    ],
)
def test_evaluate_end_to_end(benchmark, eval_setup, sizes, tmp_path, name, file, columns, expect_all):
    s = eval_setup
    benchmark.group = f"evaluate | {s['n']:,} rows"
    benchmark.name = name
    out = tmp_path / "decisions.parquet"

    def run():
        ev = af.evaluate(s["dir"] / file, s["model"], columns=columns, output=out, progress=False)
        # What the CLI shows: the top concurrency peaks and the counts (the fold of every connection).
        ev.summary.concurrency.peaks(20)
        ev.summary.concurrency.counts()
        return ev

    ev = benchmark.pedantic(run, rounds=sizes.rounds, iterations=1)
    _check(ev, s, out, s["n"], expect_all)
    if benchmark.stats is not None and benchmark.stats.stats.min:
        benchmark.extra_info["rows_per_s_best"] = round(ev.summary.rows_in / benchmark.stats.stats.min)
