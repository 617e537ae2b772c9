"""Write examples/logs/: two Logpush ``http_requests`` batches for examples/edge-topology.yaml.

They look like what a Logpush job delivers (the fields a default job has, in its order) and carry
what real jobs carry: requests answered from cache or blocked (``OriginIP: ""``), one job using
RFC 3339 timestamps and the other Unix nanoseconds, a colo the topology does not know, a zone it
does not map, a record an exporter repeated, and a batch cut off mid-record. Deterministic:
``python examples/make_sample_logs.py`` rewrites the same bytes.
"""

from __future__ import annotations

import gzip
import json
import random
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).parent
START_NS = 1_714_564_800_000_000_000  # 2024-05-01T12:00:00Z

# (colo, share of traffic)
COLOS = [("LHR", 0.22), ("AMS", 0.12), ("FRA", 0.12), ("CDG", 0.08), ("IAD", 0.18), ("ORD", 0.1),
         ("SIN", 0.1), ("NRT", 0.08)]
ZONES = [("shop.acme.example", "198.18.0.10", 0.35), ("api.acme.example", "2001:db8:ffff::10", 0.2),
         ("globex.example", "198.18.1.20", 0.3), ("initech.example", "198.18.2.30", 0.15)]
URIS = ["/", "/api/v2/orders", "/static/app.js", "/login", "/api/v2/cart", "/images/hero.webp"]


def record(rng: random.Random, i: int, ts_ns: int, rfc3339: bool) -> dict[str, object]:
    colo = rng.choices([c for c, _ in COLOS], [w for _, w in COLOS])[0]
    zone, origin, _ = rng.choices(ZONES, [w for _, _, w in ZONES])[0]
    cached = rng.random() < 0.18  # served from cache or blocked: Logpush leaves OriginIP empty
    status = 200 if rng.random() < 0.93 else rng.choice([301, 304, 403, 404, 502])
    dur = 0 if cached else int(min(rng.lognormvariate(4.2, 0.9), 30_000))
    if rfc3339:
        secs, frac = divmod(ts_ns, 10**9)
        start: object = datetime.fromtimestamp(secs, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"
    else:
        start = ts_ns
    v6 = rng.random() < 0.15
    client = f"2001:db8:{rng.randrange(1, 0xffff):x}::{rng.randrange(1, 0xffff):x}" if v6 else \
        f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    return {
        "ClientIP": client,
        "ClientRequestHost": zone,
        "ClientRequestMethod": rng.choice(["GET", "GET", "GET", "POST"]),
        "ClientRequestURI": rng.choice(URIS),
        "ClientRequestScheme": "https",
        "ClientSrcPort": rng.randrange(1024, 65536),
        "EdgeColoCode": colo,
        "EdgeEndTimestamp": (ts_ns + dur * 10**6 + 2_000_000) if not rfc3339 else start,
        "EdgeResponseBytes": rng.randrange(300, 90_000),
        "EdgeResponseStatus": status,
        "EdgeStartTimestamp": start,
        "CacheCacheStatus": "hit" if cached else rng.choice(["miss", "dynamic", "expired"]),
        "OriginIP": "" if cached else origin,
        "OriginResponseDurationMs": dur,
        "OriginResponseStatus": 0 if cached else status,
        "RayID": f"{rng.getrandbits(64):016x}"[:16],
        "ZoneName": zone,
    }


def main() -> None:
    rng = random.Random(20240501)
    out = HERE / "logs"
    out.mkdir(exist_ok=True)
    # Batch 1: Unix nanoseconds, gzip, like Logpush's default.
    lines = []
    for i in range(300):
        rec = record(rng, i, START_NS + i * 1_000_000_000 + rng.randrange(10**9), rfc3339=False)
        if i == 17:
            rec["EdgeColoCode"] = "XXX"  # a colo the topology does not have
        if i == 41:
            rec["ZoneName"] = "unmapped.example"  # a zone nobody mapped to a pool
        lines.append(json.dumps(rec, separators=(",", ":")))
    lines.append(lines[120])  # an exporter that repeated a record
    with gzip.GzipFile(out / "20240501T120000Z_20240501T120500Z_a1b2c3d4.log.gz", "wb", mtime=0) as f:
        f.write(("\n".join(lines) + "\n").encode())
    # Batch 2: RFC 3339 timestamps, plain NDJSON, cut off mid-record at the end.
    lines = [json.dumps(record(rng, i, START_NS + (300 + i) * 1_000_000_000, rfc3339=True), separators=(",", ":"))
             for i in range(200)]
    text = "\n".join(lines) + "\n" + lines[0][:57]
    (out / "20240501T120500Z_20240501T121000Z_e5f6a7b8.log").write_text(text)


if __name__ == "__main__":
    main()
