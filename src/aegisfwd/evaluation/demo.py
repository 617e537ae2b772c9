"""The evaluation demo: a Logpush-style log for the built-in world topology, evaluated end to end.

    from aegisfwd.evaluation.demo import run_demo
    run_demo("demo-out")        # demo-out/http_requests.ndjson.gz, decisions.parquet, report/

``make_log`` writes ``rows`` Cloudflare Logpush ``http_requests`` records (NDJSON, gzip) whose
ingress colos, zones and address families follow ``datasets.requests`` on ``datasets.world``, with a
sprinkle of the quirks real Logpush jobs show (``QUIRKS`` per record, ``SEGMENTS`` per job). The JSON text is assembled column by
column with Arrow string kernels, not record by record, so a million rows take seconds.
"""

from __future__ import annotations

import gzip
import importlib
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Quirks that real logs show per record: share of rows carrying each (independently drawn).
QUIRKS: dict[str, float] = {
    "empty_origin_ip": 0.001,  # OriginIP ""
    "unknown_colo": 0.0005,  # EdgeColoCode not in the topology
    "missing_zone": 0.0005,  # no ZoneName field
    "nested_extra": 0.02,  # an extra nested object field
    "ipv6_client": 0.05,  # ClientIP is an IPv6 address
    "null_port": 0.001,  # ClientSrcPort null (the flow key falls back to RayID)
}
# Quirks that come per Logpush job (a job's timestamp format and field set are its settings): the
# demo log is a concatenation of jobs, each a segment [start, end) of the rows, as a share of them.
SEGMENTS: dict[str, tuple[float, float]] = {
    "timestamp_rfc3339": (0.30, 0.31),  # EdgeStartTimestamp as "2024-05-01T12:00:00.123456789Z"
    "timestamp_seconds_string": (0.50, 0.505),  # as a digit string of Unix seconds
    "numbers_as_strings": (0.70, 0.71),  # ClientSrcPort and OriginResponseDurationMs as strings
    "old_origin_response_time": (0.90, 0.905),  # OriginResponseTime (ns), no OriginResponseDurationMs
}
WINDOW_S = 600  # the log covers ten minutes
START_NS = 1_714_564_800_000_000_000  # 2024-05-01T12:00:00Z


def _u8str(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values), pa.string())


def _join(*parts: Any) -> pa.Array:
    """Row-wise concatenation; a null part makes the row null (used for optional fields)."""
    return pc.binary_join_element_wise(*parts, "", null_handling="emit_null")


def make_log(path: str | Path, rows: int = 1_000_000, seed: int = 0, *, topology: Any = None) -> Path:
    """Write a Logpush-style NDJSON.gz log of ``rows`` requests for ``topology`` (default: the world)."""
    datasets = importlib.import_module("aegisfwd.datasets")

    topo = topology if topology is not None else datasets.world(seed)
    req = datasets.requests(topo, rows, seed)
    rng = np.random.default_rng(seed + 1)
    n = len(req)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    # Ingress colo: the location of the sampled ingress server.
    first_of_loc = np.array([a for a, _ in topo.location_server_ranges])
    loc_of_server = np.searchsorted(first_of_loc, np.arange(len(topo.server_ids)), side="right") - 1
    colo = pa.array(topo.location_ids).take(pa.array(loc_of_server[req.server]))
    # Zone: one of the pool's zones.
    zones_of_pool: list[list[str]] = [[] for _ in topo.pools]
    pidx = topo.pool_index
    for z, p in topo.zones.items():
        zones_of_pool[pidx[p]].append(z)
    first_zone = pa.array([zs[0] if zs else None for zs in zones_of_pool])
    zone = first_zone.take(pa.array(req.pool))
    # Origin: one per pool; IPv4 from 100.64.0.0/10, IPv6 from 2001:db8:ffff::/48.
    p = req.pool.astype(np.int64)
    v4 = pc.binary_join_element_wise(
        "100", _u8str(64 + (p >> 16) % 64), _u8str((p >> 8) % 256), _u8str(p % 256), "."
    )
    # groups of at most four decimal digits are valid hex groups
    v6 = pc.binary_join_element_wise(
        "2001:db8:ffff:",
        pc.cast(pa.array(p // 10000), pa.string()),
        "::",
        pc.cast(pa.array(p % 9999 + 1), pa.string()),
        "",
    )
    origin = pc.if_else(pa.array(req.family == 4), v4, v6)
    # Clients.
    c = rng.integers(1 << 24, 223 << 24, n, dtype=np.int64)
    client4 = pc.binary_join_element_wise(
        _u8str((c >> 24) % 256), _u8str((c >> 16) % 256), _u8str((c >> 8) % 256), _u8str(c % 256), "."
    )
    client6 = pc.binary_join_element_wise("2001:db8:c::", pc.cast(pa.array(c % 65536), pa.string()), "")
    is6 = rng.random(n) < QUIRKS["ipv6_client"]
    client = pc.if_else(pa.array(is6), client6, client4)
    port = rng.integers(1024, 65536, n)
    ray = pc.utf8_lpad(pc.cast(pa.array(rng.integers(0, 1 << 62, n)), pa.string()), 19, "0")
    ts = START_NS + np.sort(rng.integers(0, WINDOW_S * 10**9, n))
    dur = np.minimum(rng.lognormal(np.log(80), 1.0, n), 30_000).astype(np.int64)

    def q(name: str) -> np.ndarray:
        if name in SEGMENTS:
            a, b = SEGMENTS[name]
            out = np.zeros(n, dtype=bool)
            out[int(a * n) : int(b * n)] = True
            return out
        return rng.random(n) < QUIRKS[name]

    def s(a: Any) -> pa.Array:
        return pc.cast(pa.array(a), pa.string())

    def quoted(a: pa.Array) -> pa.Array:
        return _join('"', a, '"')

    # Field fragments: '"Name":value'.
    ts_text = s(ts)
    rfc = q("timestamp_rfc3339")
    secs = q("timestamp_seconds_string")
    iso = pc.strftime(pa.array(ts, pa.timestamp("ns", tz="UTC")), format="%Y-%m-%dT%H:%M:%S", locale="C")
    iso = _join(iso, ".", pc.utf8_lpad(s(ts % 10**9), 9, "0"), "Z")
    ts_val = pc.if_else(
        pa.array(rfc), quoted(iso), pc.if_else(pa.array(secs), quoted(s(ts // 10**9)), ts_text)
    )
    as_str = q("numbers_as_strings")
    port_val = pc.if_else(pa.array(as_str), quoted(s(port)), s(port))
    port_val = pc.if_else(pa.array(q("null_port")), pa.array(["null"] * n), port_val)
    dur_val = pc.if_else(pa.array(as_str), quoted(s(dur)), s(dur))
    old = q("old_origin_response_time")
    dur_field = pc.if_else(
        pa.array(old),
        _join('"OriginResponseTime":', s(dur * 10**6)),
        _join('"OriginResponseDurationMs":', dur_val),
    )
    origin = pc.if_else(pa.array(q("empty_origin_ip")), pa.array([""] * n), origin)
    colo = pc.if_else(pa.array(q("unknown_colo")), pa.array(["XXX"] * n), colo)
    zone_field = _join(',"ZoneName":"', zone, '"')
    zone_field = pc.if_else(pa.array(q("missing_zone")), pa.array([""] * n), zone_field)
    nested = pc.if_else(
        pa.array(q("nested_extra")),
        pa.array([',"RequestHeaders":{"x-forwarded-proto":"https","cf-ipcountry":"GB"},"Cookies":{}'] * n),
        pa.array([""] * n),
    )
    lines = _join(
        '{"RayID":"',
        ray,
        '","EdgeColoCode":"',
        colo,
        '"',
        zone_field,
        ',"OriginIP":"',
        origin,
        '","ClientIP":"',
        client,
        '","ClientSrcPort":',
        port_val,
        ',"ClientRequestScheme":"https","EdgeStartTimestamp":',
        ts_val,
        ",",
        dur_field,
        ',"EdgeResponseStatus":200,"CacheCacheStatus":"miss"',
        nested,
        "}\n",
    )
    buf = lines.buffers()
    offsets = np.frombuffer(buf[1], dtype=np.int32, count=len(lines) + 1 + lines.offset)[lines.offset :]
    data = memoryview(buf[2])[int(offsets[0]) : int(offsets[-1])]
    with gzip.open(path, "wb", compresslevel=3) as f:
        f.write(data)
        # A job cut off mid-write: the last line is truncated.
        f.write(b'{"RayID":"truncated","EdgeColoCode":"LH')
    return path


def make_table(
    rows: int = 1_000_000, seed: int = 0, *, topology: Any = None, server_column: bool = False
) -> pa.Table:
    """The demo's requests as a typed Arrow table (no quirks): what a Parquet Logpush job holds.
    With ``server_column`` it also has ``EdgeServer``, the sampled ingress server's id (for
    ``columns={"ingress_server": "EdgeServer"}``). Used by ``benchmarks/test_evaluate_bench.py``."""
    datasets = importlib.import_module("aegisfwd.datasets")
    topo = topology if topology is not None else datasets.world(seed)
    req = datasets.requests(topo, rows, seed)
    rng = np.random.default_rng(seed + 1)
    n = len(req)
    first_of_loc = np.array([a for a, _ in topo.location_server_ranges])
    loc_of_server = np.searchsorted(first_of_loc, np.arange(len(topo.server_ids)), side="right") - 1
    zones_of_pool: list[list[str]] = [[] for _ in topo.pools]
    pidx = topo.pool_index
    for z, p in topo.zones.items():
        zones_of_pool[pidx[p]].append(z)
    p = req.pool.astype(np.int64)
    v4 = pc.binary_join_element_wise(
        "100", _u8str(64 + (p >> 16) % 64), _u8str((p >> 8) % 256), _u8str(p % 256), "."
    )
    v6 = pc.binary_join_element_wise(
        "2001:db8:ffff:",
        pc.cast(pa.array(p // 10000), pa.string()),
        "::",
        pc.cast(pa.array(p % 9999 + 1), pa.string()),
        "",
    )
    c = rng.integers(1 << 24, 223 << 24, n, dtype=np.int64)
    client = pc.binary_join_element_wise(
        _u8str((c >> 24) % 256), _u8str((c >> 16) % 256), _u8str((c >> 8) % 256), _u8str(c % 256), "."
    )
    table = pa.table(
        {
            "RayID": pc.utf8_lpad(pc.cast(pa.array(rng.integers(0, 1 << 62, n)), pa.string()), 19, "0"),
            "EdgeColoCode": pa.array(topo.location_ids).take(pa.array(loc_of_server[req.server])),
            "ZoneName": pa.array([zs[0] if zs else None for zs in zones_of_pool]).take(pa.array(req.pool)),
            "OriginIP": pc.if_else(pa.array(req.family == 4), v4, v6),
            "ClientIP": client,
            "ClientSrcPort": pa.array(rng.integers(1024, 65536, n).astype(np.int32)),
            "EdgeStartTimestamp": pa.array(START_NS + np.sort(rng.integers(0, WINDOW_S * 10**9, n))),
            "OriginResponseDurationMs": pa.array(
                np.minimum(rng.lognormal(np.log(80), 1.0, n), 30_000).astype(np.int32)
            ),
        }
    )
    if server_column:
        table = table.append_column("EdgeServer", pa.array(topo.server_ids).take(pa.array(req.server)))
    return table


def run_demo(
    out_dir: str | Path,
    rows: int = 1_000_000,
    seed: int = 0,
    console: Any = None,
    *,
    progress: bool | None = None,
) -> Any:
    """Generate the demo log, evaluate it against ``datasets.world(seed)``, print the summary tables
    and write ``decisions.parquet``, ``rejects.parquet`` and ``report/`` (``report.html`` +
    ``summary.json``) under ``out_dir``. Returns the ``Evaluation``."""
    from rich.console import Console

    import aegisfwd as af

    datasets = importlib.import_module("aegisfwd.datasets")

    con = console or Console()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    topo = datasets.world(seed)
    engine = af.Engine(topo)
    t1 = time.perf_counter()
    log = make_log(out / "http_requests.ndjson.gz", rows, seed, topology=topo)
    t2 = time.perf_counter()
    con.print(
        f"world topology and engine: {t1 - t0:.1f} s; log of {rows:,} rows ({log.stat().st_size / 2**20:.1f} MiB gzip): {t2 - t1:.1f} s"
    )
    ev = af.evaluate(
        log, engine, output=out / "decisions.parquet", rejects=out / "rejects.parquet", progress=progress
    )
    con.print(f"evaluated in {ev.elapsed_s:.1f} s ({ev.rows_per_s:,.0f} rows/s)")
    ev.print(con)
    html = ev.report(out / "report", title=f"aegisfwd demo: {rows:,} Logpush rows on the world topology")
    con.print(f"report: {html}")
    return ev
