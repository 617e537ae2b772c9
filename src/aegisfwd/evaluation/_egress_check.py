"""Predicted against actual egress: the log's ``EdgeServerIP`` compared with the predicted egress IP.

Logpush documents ``EdgeServerIP`` as "IP of the edge server making a request to the origin", empty
when there was no origin request. Whether it is the dedicated egress IP for Aegis zones is not
documented; where a log carries it, each decided row falls in one of four outcomes, counted per
pool and predicted tier:

* ``agree``: it is the predicted egress IP (for an IPv6 prefix, an address inside it);
* ``other-pool-ip``: a dedicated IP of the row's pool, but not the predicted one;
* ``not-pool-ip``: not a dedicated IP of the pool (another pool's, a non-dedicated address, or
  text that is not an address): the origin's firewall, allowing only the pool's IPs, would have
  refused the connection; the most important number;
* ``no-origin-request``: empty or null (served from cache, blocked, ...).

Rows of the last three kinds but the fourth can be written to a file (``mismatches=``).
"""

from __future__ import annotations

import contextlib
import ipaddress
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from . import _arrow as ar

OUTCOMES = ("agree", "other-pool-ip", "not-pool-ip", "no-origin-request")
TIER_NAMES = ("LOCAL", "SAME_DC", "SAME_LOCATION", "REMOTE", "UNAVAILABLE")
FIELD = "EdgeServerIP"

MISMATCH_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("row", pa.int64()),
        ("RayID", pa.string()),
        ("EdgeColoCode", pa.string()),
        ("ZoneName", pa.string()),
        ("pool", pa.string()),
        ("ingress_server", pa.string()),
        ("tier", pa.string()),
        ("predicted_ip", pa.string()),
        ("EdgeServerIP", pa.string()),
        ("outcome", pa.string()),
    ]
)


@dataclass
class EgressCheck:
    """Rows per (pool, predicted tier, outcome); mergeable (counts add)."""

    counts: dict[tuple[str, str, str], int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(self.counts.values())

    def merge(self, other: EgressCheck) -> EgressCheck:
        out = dict(self.counts)
        for k, v in other.counts.items():
            out[k] = out.get(k, 0) + v
        return EgressCheck(out)

    def totals(self) -> dict[str, int]:
        out = dict.fromkeys(OUTCOMES, 0)
        for (_, _, o), v in self.counts.items():
            out[o] += v
        return out

    def by_tier(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (_, t, o), v in self.counts.items():
            row = out.setdefault(t, dict.fromkeys(OUTCOMES, 0))
            row[o] += v
        return {t: out[t] for t in TIER_NAMES if t in out}

    def by_pool(self) -> dict[str, dict[str, dict[str, int]]]:
        out: dict[str, dict[str, dict[str, int]]] = {}
        for (p, t, o), v in sorted(self.counts.items()):
            out.setdefault(p, {}).setdefault(t, dict.fromkeys(OUTCOMES, 0))[o] += v
        return out

    def worst_pools(self, n: int = 20) -> list[tuple[str, dict[str, int]]]:
        """Pools by rows whose EdgeServerIP is not one of their dedicated IPs, then other-IP rows."""
        per: dict[str, dict[str, int]] = {}
        for (p, _, o), v in self.counts.items():
            row = per.setdefault(p, dict.fromkeys(OUTCOMES, 0))
            row[o] += v
        items = sorted(per.items(), key=lambda kv: (-kv[1]["not-pool-ip"], -kv[1]["other-pool-ip"], kv[0]))
        return items[:n]

    def to_dict(self) -> dict[str, Any]:
        return {
            "field": FIELD,
            "rows": self.rows,
            "outcomes": self.totals(),
            "by_tier": self.by_tier(),
            "by_pool": self.by_pool(),
        }


class EgressChecker:
    """Compares batches of one run with the log's EdgeServerIP; optionally writes the mismatches."""

    def __init__(self, model: Any, writer: Any = None) -> None:
        """``writer``: where mismatching rows go (a ``TableWriter`` opened with ``MISMATCH_SCHEMA``)."""
        self.model = model
        self.n_pools = max(len(model.pool_ids), 1)
        self.table = np.zeros(self.n_pools * len(TIER_NAMES) * len(OUTCOMES), dtype=np.int64)
        self.writer = writer
        self._lookup: tuple[dict[str, int], dict[tuple[int, int], list[int]], list[int]] | None = None
        self._last: tuple[pa.Array, np.ndarray, np.ndarray, list[list[int]]] | None = None

    def _tables(self) -> tuple[dict[str, int], dict[tuple[int, int], list[int]], list[int]]:
        """Address -> IP index lookups, built when a log first shows the field (a world topology
        has tens of thousands of addresses; logs without the field never pay for them)."""
        if self._lookup is None:
            v4: dict[str, int] = {}
            v6: dict[tuple[int, int], list[int]] = {}
            for k, text in enumerate(self.model.ip_ids):
                if ":" not in text:  # canonical IPv4 text already (docs/topology-format.md)
                    v4[text] = k
                else:
                    net = ipaddress.IPv6Network(text)
                    v6.setdefault((net.prefixlen, int(net.network_address)), []).append(k)
            self._lookup = (v4, v6, sorted({p for p, _ in v6}))
        return self._lookup

    def _classify_values(self, values: list[str | None]) -> tuple[np.ndarray, np.ndarray, list[list[int]]]:
        """Per distinct text: the single IP index containing it (-1 none, -2 several), its pool
        (-1 none, -3 empty), and the containing IP indices."""
        v4, v6, v6_lengths = self._tables()
        ip_pool = np.asarray(self.model.compiled.arrays["ip_pool"], dtype=np.int64)
        single = np.full(len(values), -1, dtype=np.int64)
        pool = np.full(len(values), -1, dtype=np.int64)
        sets: list[list[int]] = [[] for _ in values]
        for j, v in enumerate(values):
            text = (v or "").strip()
            if not text:
                pool[j] = -3
                continue
            try:
                addr = ipaddress.ip_address(text)
            except ValueError:
                continue
            if addr.version == 4:
                k = v4.get(str(addr))
                found = [] if k is None else [k]
            else:
                found = []
                x = int(addr)
                for length in v6_lengths:
                    net = x >> (128 - length) << (128 - length) if length else 0
                    found += v6.get((length, net), [])
            sets[j] = found
            if found:
                single[j] = found[0] if len(found) == 1 else -2
                pool[j] = ip_pool[found[0]]  # prefixes of different pools never overlap
        return single, pool, sets

    def add(self, common: Any, chunk: Any, res: Any, r: Any, ok: np.ndarray) -> None:
        col = common.cols.get(FIELD)
        if col is None or ok.shape[0] == 0:
            return
        enc = ar.as_dictionary(col)
        dictionary = enc.dictionary
        if self._last is not None and self._last[0].equals(dictionary):
            single, vpool, sets = self._last[1], self._last[2], self._last[3]
        else:
            single, vpool, sets = self._classify_values(ar.to_string(dictionary).to_pylist())
            self._last = (dictionary, single, vpool, sets)
        idx = np.asarray(ar.dictionary_indices(enc), dtype=np.int64)
        # a null row reads the extra entry: empty
        single = np.append(single, -1)
        vpool = np.append(vpool, -3)
        v = idx[ok]
        pred = np.asarray(r.ip, dtype=np.int64)
        pool = np.asarray(res.pool, dtype=np.int64)[ok]
        tier = np.minimum(np.asarray(r.tier, dtype=np.int64), 4)
        agree = (single[v] == pred) & (pred >= 0)
        several = np.flatnonzero((single[v] == -2) & (pred >= 0))
        for i in several.tolist():
            agree[i] = int(pred[i]) in sets[int(v[i])]
        outcome = np.where(vpool[v] == -3, 3, np.where(agree, 0, np.where(vpool[v] == pool, 1, 2)))
        code = (pool * len(TIER_NAMES) + tier) * len(OUTCOMES) + outcome
        self.table += np.bincount(code, minlength=self.table.shape[0])
        if self.writer is not None:
            bad = np.flatnonzero((outcome == 1) | (outcome == 2))
            if bad.shape[0]:
                self.writer.write(self._mismatch_table(common, chunk, res, r, ok, bad, outcome))

    def _mismatch_table(
        self, common: Any, chunk: Any, res: Any, r: Any, ok: np.ndarray, bad: np.ndarray, outcome: np.ndarray
    ) -> pa.Table:
        rows = ok[bad]
        m = self.model

        def text(f: str) -> pa.Array:
            c = common.cols.get(f)
            if c is None:
                return pa.nulls(rows.shape[0], pa.string())
            return ar.to_string(c.take(pa.array(rows)))

        def ids(table: list[str], idx: np.ndarray) -> pa.Array:
            arr = np.asarray(idx, dtype=np.int64)
            return pa.array([table[i] if i >= 0 else None for i in arr.tolist()], pa.string())

        tiers = np.minimum(np.asarray(r.tier, dtype=np.int64)[bad], 4)
        return pa.table(
            {
                "source": pa.array([chunk.source] * rows.shape[0], pa.string()),
                "row": pa.array(chunk.rows_of(rows), pa.int64()),
                "RayID": text("RayID"),
                "EdgeColoCode": text("EdgeColoCode"),
                "ZoneName": text("ZoneName"),
                "pool": ids(m.pool_ids, np.asarray(res.pool)[rows]),
                "ingress_server": ids(m.server_ids, np.asarray(res.server)[rows]),
                "tier": pa.array([TIER_NAMES[t] for t in tiers.tolist()], pa.string()),
                "predicted_ip": ids(m.ip_ids, np.asarray(r.ip)[bad]),
                "EdgeServerIP": text(FIELD),
                "outcome": pa.array([OUTCOMES[o] for o in outcome[bad].tolist()], pa.string()),
            },
            schema=MISMATCH_SCHEMA,
        )

    def finish(self) -> EgressCheck:
        if self.writer is not None:
            self.writer.close(MISMATCH_SCHEMA)
        nz = np.flatnonzero(self.table)
        counts = {}
        for c, v in zip(nz.tolist(), self.table[nz].tolist(), strict=True):
            rest, o = divmod(c, len(OUTCOMES))
            p, t = divmod(rest, len(TIER_NAMES))
            counts[(self.model.pool_ids[p], TIER_NAMES[t], OUTCOMES[o])] = v
        return EgressCheck(counts)

    def close(self) -> None:
        if self.writer is not None:
            with contextlib.suppress(Exception):  # only after another error, which the caller reports
                self.writer.close(MISMATCH_SCHEMA)


# ---- presentation (the summary's report and terminal hooks) ------------------------------------
_NOTE = (
    "<p>The log's <code>EdgeServerIP</code> (documented: the IP of the edge server making the request "
    "to the origin; empty when there was no origin request; <em>not</em> documented to be the dedicated "
    "egress IP of Aegis zones) against the predicted egress IP. <b>not-pool-ip</b> rows reached the "
    "origin from an address that is not one of the pool's dedicated IPs: an origin firewall that allows "
    "only those would have refused them.</p>"
)


def html_section(check: EgressCheck, top: int, table: Any) -> tuple[str, str, str] | None:
    """The report section (id, title, HTML) or None when the log had no EdgeServerIP."""
    if not check.rows:
        return None
    totals = check.totals()
    n = max(check.rows, 1)
    content = _NOTE + table(["outcome", "rows", "share"], [[o, totals[o], totals[o] / n] for o in OUTCOMES])
    content += table(
        ["predicted tier", *OUTCOMES], [[t, *(v[o] for o in OUTCOMES)] for t, v in check.by_tier().items()]
    )
    content += table(["pool", *OUTCOMES], [[p, *(v[o] for o in OUTCOMES)] for p, v in check.worst_pools(top)])
    return ("egress-check", "Predicted vs. actual egress IP (EdgeServerIP)", content)


def print_check(check: EgressCheck, console: Any, top: int, rich_table: Any) -> None:
    if not check.rows:
        return
    totals = check.totals()
    console.print(
        rich_table(
            f"Predicted vs. actual egress IP (EdgeServerIP, {check.rows:,} rows)",
            ["outcome", "rows", "share"],
            [[o, totals[o], totals[o] / max(check.rows, 1)] for o in OUTCOMES],
        )
    )
    console.print(
        rich_table(
            "EdgeServerIP per predicted tier",
            ["tier", *OUTCOMES],
            [[t, *(v[o] for o in OUTCOMES)] for t, v in check.by_tier().items()],
        )
    )
    if totals["not-pool-ip"] or totals["other-pool-ip"]:
        console.print(
            rich_table(
                f"Pools with the most mismatches (top {top})",
                ["pool", *OUTCOMES],
                [[p, *(v[o] for o in OUTCOMES)] for p, v in check.worst_pools(top)],
            )
        )
