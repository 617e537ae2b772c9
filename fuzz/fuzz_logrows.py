"""Fuzz target: log rows (NDJSON bytes) through evaluate's parser and evaluator.

The bytes are one block of NDJSON lines, parsed by ``NdjsonBlockParser`` (Arrow's reader, the
quoting retry, the line-by-line fallback) and decided by ``evaluate_batches`` against a small
topology. Invariants: no exception but an ``AegisError``; every line becomes a row or a malformed
record, never both and never more; the output has one row per parsed row; a row is either rejected
(a reason, no decision) or decided, and a decided row's egress server holds its egress IP; every
text of the answer is valid UTF-8 (a value that is not is an ``invalid-utf8-<field>`` reject).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import main

import aegisfwd as af
from aegisfwd.evaluation._batches import evaluate_batches
from aegisfwd.evaluation._prepare import column_names, resolve_columns
from aegisfwd.evaluation._read import NdjsonBlockParser

TOPO = af.load_topology(Path(__file__).resolve().parent / "data" / "logs-topology.yaml")
CT = TOPO.compile()
NAMES = column_names(resolve_columns(None))
SERVER = CT.server_index
IP = {ip: k for k, ip in enumerate(CT.ips)}


def test_one_input(data: bytes) -> None:
    block = data if data.endswith(b"\n") or not data else data + b"\n"
    lines = block.count(b"\n")
    try:
        table, malformed, rows = NdjsonBlockParser(NAMES).parse(block, 0)
    except af.AegisError:
        return
    parsed = 0 if table is None else table.num_rows
    if parsed + len(malformed) > lines:
        raise AssertionError(f"{lines} lines gave {parsed} rows and {len(malformed)} malformed records")
    if rows is not None and len(rows) != parsed:
        raise AssertionError("record numbers do not match the rows")
    if table is None or parsed == 0:
        return
    try:
        out = list(evaluate_batches(iter([table]), TOPO))
    except af.AegisError:
        return
    if sum(b.num_rows for b in out) != parsed:
        raise AssertionError("evaluate_batches did not answer one row per input row")
    for b in out:
        b.validate(full=True)  # every text of the answer is UTF-8 (a corrupt value is a reject reason)
    holders = CT.arrays
    for b in out:
        d = b.to_pydict()
        for tier, server, ip, reason in zip(
            d["tier"], d["egress_server"], d["egress_ip"], d["reject_reason"], strict=True
        ):
            if (tier is None) == (reason is None):
                raise AssertionError(f"a row is both or neither rejected and decided: {tier!r} {reason!r}")
            if tier in (None, "UNAVAILABLE"):
                if server is not None or ip is not None:
                    raise AssertionError("an undecided row names an egress")
                continue
            s, i = SERVER[server], IP[ip]
            ranges = holders["ip_holder_ranges"][
                holders["ip_holder_start"][i] : holders["ip_holder_start"][i + 1]
            ]
            if not any(lo <= s < hi for lo, hi in ranges.tolist()):
                raise AssertionError(f"egress server {server} does not hold egress IP {ip}")


if __name__ == "__main__":
    main(test_one_input)
