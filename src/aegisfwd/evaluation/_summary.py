"""Mergeable summaries of an evaluation.

A ``Summary`` holds full count maps keyed by ids (counts add, distances are kept as sums plus row
counts, concurrency as the connections themselves, see ``_concurrency``), so summaries of the partitions of a log
merge into exactly the summary of the whole log; top-N lists are computed from the full maps only
when asked. ``Accumulator`` builds one during a run with dense numpy counters over one topology's
index spaces and turns them into id-keyed maps once, at the end.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pyarrow as pa

from .. import _core
from .._types import Tier
from ._concurrency import CONNECTION_LIMIT, Concurrency
from ._egress_check import EgressCheck

TIERS: tuple[str, ...] = ("LOCAL", "SAME_DC", "SAME_LOCATION", "REMOTE", "UNAVAILABLE")
N_TIERS = len(TIERS)

# Reasons a row cannot be evaluated (docs/evaluate.md "Rejected rows"), in the order they are tested.
REASONS: tuple[str, ...] = (
    "ok",
    "malformed-json",
    "malformed-csv",
    "missing-colo",
    "unknown-colo",
    "no-ingress-server",
    "missing-server",
    "unknown-server",
    "missing-zone",
    "unknown-zone",
    "missing-pool",
    "unknown-pool",
    "bad-origin-ip",
    "missing-flow-key",
    # Added later: appended so the codes above keep their values.
    "no-origin-connection",
    "missing-origin-ip",
    "zone-id-not-mapped",
)
# A value that is not UTF-8 text (evaluation/_utf8.py) rejects its row under a reason naming the
# field, tested before every other reason; the fields are evaluation/_prepare.py's FIELDS.
UTF8_FIELDS: tuple[str, ...] = (
    "RayID",
    "EdgeColoCode",
    "ZoneName",
    "OriginIP",
    "ClientIP",
    "ClientSrcPort",
    "EdgeStartTimestamp",
    "OriginResponseDurationMs",
    "OriginResponseTime",
    "OriginPort",
    "ClientRequestScheme",
    "EdgeServerIP",
    "ingress_server",
    "pool",
)


def invalid_utf8_reason(field: str) -> str:
    return f"invalid-utf8-{field}"


REASONS += tuple(invalid_utf8_reason(f) for f in UTF8_FIELDS)  # appended: earlier codes keep their values
# What each reason means, for reports (docs/evaluate.md "Rejected rows").
REASON_HELP: dict[str, str] = {
    "malformed-json": "a JSON record that does not parse (or is not an object)",
    "malformed-csv": "a CSV row with the wrong number of fields",
    "missing-colo": "EdgeColoCode null, empty or absent",
    "unknown-colo": "EdgeColoCode is not a location or data-center id of the topology",
    "no-ingress-server": "the colo has no servers",
    "missing-server": "ingress_server column: value null or empty",
    "unknown-server": "ingress_server column: not a server id",
    "missing-zone": "ZoneName null, empty or absent",
    "unknown-zone": "ZoneName is not in the topology's zones",
    "missing-pool": "pool column: value null or empty",
    "unknown-pool": "pool column: not a pool id",
    "bad-origin-ip": "OriginIP is not an IP address",
    "missing-flow-key": "neither a usable ClientIP + ClientSrcPort nor a RayID",
    "no-origin-connection": 'OriginIP "" or null: the request never reached the origin (blocked, cached, redirected)',
    "missing-origin-ip": "the log has no OriginIP column (map one with --map COL=OriginIP)",
    "zone-id-not-mapped": (
        "no ZoneName but a ZoneID: evaluate with --map ZoneID=ZoneName (columns={'ZoneName': "
        "'ZoneID'}) and a topology whose zones map is keyed by zone id"
    ),
    **{
        invalid_utf8_reason(
            f
        ): f"{f} (or the column mapped to it) is not valid UTF-8 text; the row's bytes are corrupt"
        for f in UTF8_FIELDS
    },
}
WARNING_HELP: dict[str, str] = {
    "timestamp-not-epoch": "EdgeStartTimestamp before 2000-01-01 (a tiny number such as 1): not a request time; "
    "left out of concurrency",
    "timestamp-imprecise": "EdgeStartTimestamp in scientific notation or a float beyond 2**53: digits lost; "
    "left out of concurrency",
    "duplicate-rayid": "a RayID seen before in this run: decided again, counted once in concurrency",
}
REASON_CODE: dict[str, int] = {r: k for k, r in enumerate(REASONS)}
REJECT_EXAMPLES = 3  # example rows kept per reject reason


def _add_maps(a: dict[Any, Any], b: dict[Any, Any]) -> dict[Any, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0) + v
    return out


def iso_ns(ns: int | None) -> str | None:
    if ns is None:
        return None
    secs, frac = divmod(int(ns), 10**9)
    return datetime.fromtimestamp(secs, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


# ---------------------------------------------------------------------------------------------
# Summary
# ---------------------------------------------------------------------------------------------
@dataclass
class Summary:
    """What an evaluation found. Add two with ``a.merge(b)`` (or ``sum``-style ``Summary.merge_all``)."""

    rows_in: int = 0
    rows_decided: int = 0
    rows_rejected: int = 0
    rejects: dict[str, int] = field(default_factory=dict)
    tiers: dict[str, int] = field(default_factory=dict)
    tiers_by_location: dict[str, dict[str, int]] = field(default_factory=dict)
    tiers_by_pool: dict[str, dict[str, int]] = field(default_factory=dict)
    flows: dict[tuple[str, str], int] = field(default_factory=dict)  # (ingress loc, egress loc) -> rows
    flow_distance: dict[tuple[str, str], float] = field(default_factory=dict)  # sum of distances
    egress_servers: dict[str, int] = field(default_factory=dict)
    egress_ips: dict[str, int] = field(default_factory=dict)
    distance_sum: float = 0.0  # over decided rows with an egress (REMOTE rows carry all of it)
    distance_rows: int = 0
    ingress_fallback_rows: int = 0  # colo had no up server: ingress picked among all its servers
    timed_rows: int = 0  # rows with a start time and an origin duration (used for concurrency)
    time_min_ns: int | None = None
    time_max_ns: int | None = None
    concurrency: Concurrency = field(default_factory=Concurrency)
    distance_unit: str = "km"
    coords: dict[str, tuple[float, float]] = field(default_factory=dict)
    input_errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what reading found and did (a name that lied, ...)
    warnings: dict[str, int] = field(default_factory=dict)  # rows kept but flagged (WARNING_HELP)
    files: dict[str, list[int]] = field(default_factory=dict)  # file -> [rows in, decided, rejected]
    given: dict[str, str] = field(default_factory=dict)  # file -> the directory given that holds it
    reject_examples: dict[str, list[str]] = field(default_factory=dict)  # reason -> a few rows, as text
    duplicate_rayids: int = 0  # rows whose RayID was seen before in the run
    duplicate_examples: list[str] = field(default_factory=list)
    egress_check: EgressCheck = field(default_factory=EgressCheck)  # EdgeServerIP against the prediction

    # ---- merging ----------------------------------------------------------------------------
    def merge(self, other: Summary) -> Summary:
        """A new summary of both (counts add; concurrency connections merge)."""
        return Summary.merge_all([self, other])

    @staticmethod
    def merge_all(
        summaries: Iterable[Summary], *, spill_dir: str | os.PathLike[str] | None = None
    ) -> Summary:
        """One summary of every part: counts add, and the parts' connections go into one
        ``Concurrency`` (spilling to ``spill_dir``, default the first part's). Parts are consumed
        one at a time (pass a generator and each can be freed once merged), each read once: a long
        list of Dask partitions costs one pass."""
        out = Summary()
        conc: Concurrency | None = None
        for part in summaries:
            if conc is None:
                conc = Concurrency(part.concurrency.resolution_ms, spill_dir or part.concurrency.spill_dir)
                out.distance_unit = part.distance_unit
            out._absorb(part)
            conc.merge(part.concurrency)
        if conc is not None:
            out.concurrency = conc
        return out

    def _absorb(self, other: Summary) -> None:
        """Add every count of ``other`` into this one, in place (not the concurrency)."""
        if other.rows_in and not self.rows_in:
            self.distance_unit = other.distance_unit  # the first part with rows names the unit
        for name in (
            "rows_in",
            "rows_decided",
            "rows_rejected",
            "distance_sum",
            "distance_rows",
            "ingress_fallback_rows",
            "timed_rows",
            "duplicate_rayids",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in (
            "rejects",
            "tiers",
            "flows",
            "flow_distance",
            "egress_servers",
            "egress_ips",
            "warnings",
        ):
            mine = getattr(self, name)
            for k, v in getattr(other, name).items():
                mine[k] = mine.get(k, 0) + v
        for name in ("tiers_by_location", "tiers_by_pool"):
            mine = getattr(self, name)
            for k, v in getattr(other, name).items():
                row = mine.setdefault(k, {})
                for t, c in v.items():
                    row[t] = row.get(t, 0) + c
        tmin = [x for x in (self.time_min_ns, other.time_min_ns) if x is not None]
        tmax = [x for x in (self.time_max_ns, other.time_max_ns) if x is not None]
        self.time_min_ns = min(tmin) if tmin else None
        self.time_max_ns = max(tmax) if tmax else None
        self.coords = {**other.coords, **self.coords}
        self.input_errors = self.input_errors + other.input_errors
        self.notes = self.notes + [n for n in other.notes if n not in self.notes]
        for f, c in other.files.items():
            mine_f = self.files.setdefault(f, [0, 0, 0])
            for k in range(3):
                mine_f[k] += c[k]
        self.given = {**self.given, **other.given}
        for r, ex in other.reject_examples.items():
            have = self.reject_examples.setdefault(r, [])
            have.extend(ex[: max(0, REJECT_EXAMPLES - len(have))])
        self.duplicate_examples = (self.duplicate_examples + other.duplicate_examples)[:5]
        self.egress_check = self.egress_check.merge(other.egress_check)

    def counts_equal(self, other: Summary) -> bool:
        """Every count map and total equal (distances compared to 1e-6 relative); for tests."""
        same = (
            self.rows_in == other.rows_in
            and self.rows_decided == other.rows_decided
            and self.rows_rejected == other.rows_rejected
            and self.rejects == other.rejects
            and self.tiers == other.tiers
            and self.tiers_by_location == other.tiers_by_location
            and self.tiers_by_pool == other.tiers_by_pool
            and self.flows == other.flows
            and self.egress_servers == other.egress_servers
            and self.egress_ips == other.egress_ips
            and self.distance_rows == other.distance_rows
            and self.timed_rows == other.timed_rows
            and self.ingress_fallback_rows == other.ingress_fallback_rows
            and self.concurrency.peaks() == other.concurrency.peaks()
        )
        return same and math.isclose(self.distance_sum, other.distance_sum, rel_tol=1e-9, abs_tol=1e-6)

    # ---- derived views ------------------------------------------------------------------------
    @property
    def mean_distance(self) -> float:
        """Mean ingress-to-egress distance over rows that egress somewhere (NaN when none)."""
        return self.distance_sum / self.distance_rows if self.distance_rows else math.nan

    @property
    def forwarded_rows(self) -> int:
        """Rows that leave from another server than the ingress (SAME_DC, SAME_LOCATION, REMOTE)."""
        return sum(self.tiers.get(t, 0) for t in ("SAME_DC", "SAME_LOCATION", "REMOTE"))

    def tier_share(self) -> dict[str, float]:
        total = self.rows_decided
        return {t: (self.tiers.get(t, 0) / total if total else 0.0) for t in TIERS}

    def top_flows(self, n: int = 20) -> list[dict[str, Any]]:
        """Forwarding flows between locations (ingress != egress location), most rows first."""
        items = [(k, v) for k, v in self.flows.items() if k[0] != k[1]]
        items.sort(key=lambda kv: (-kv[1], kv[0]))
        return [
            {
                "ingress_location": a,
                "egress_location": b,
                "rows": v,
                "distance": (self.flow_distance.get((a, b), 0.0) / v) if v else math.nan,
                "added_distance": self.flow_distance.get((a, b), 0.0),
            }
            for (a, b), v in items[:n]
        ]

    def top_locations(self, n: int = 20) -> list[tuple[str, dict[str, int]]]:
        items = sorted(self.tiers_by_location.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
        return items[:n]

    def top_pools(self, n: int = 20) -> list[tuple[str, dict[str, int]]]:
        items = sorted(self.tiers_by_pool.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
        return items[:n]

    @staticmethod
    def _top(counts: dict[str, int], n: int) -> list[tuple[str, int]]:
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:n]

    def top_egress_servers(self, n: int = 20) -> list[tuple[str, int]]:
        return self._top(self.egress_servers, n)

    def top_egress_ips(self, n: int = 20) -> list[tuple[str, int]]:
        return self._top(self.egress_ips, n)

    def load_stats(self, counts: dict[str, int]) -> dict[str, float]:
        if not counts:
            return {"count": 0, "min": 0, "p50": 0, "p90": 0, "p99": 0, "max": 0, "max_over_mean": math.nan}
        v = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
        return {
            "count": int(v.shape[0]),
            "min": float(v.min()),
            "p50": float(np.percentile(v, 50)),
            "p90": float(np.percentile(v, 90)),
            "p99": float(np.percentile(v, 99)),
            "max": float(v.max()),
            "max_over_mean": float(v.max() / v.mean()),
        }

    def to_dict(self, top: int = 20) -> dict[str, Any]:
        """A JSON-ready document: totals, full count maps and the top-N views (``summary.json``)."""
        conc_keys, conc_over = self.concurrency.counts()
        return {
            "rows_in": self.rows_in,
            "rows_decided": self.rows_decided,
            "rows_rejected": self.rows_rejected,
            "rejects": dict(sorted(self.rejects.items())),
            "tiers": {t: self.tiers.get(t, 0) for t in TIERS},
            "tier_share": self.tier_share(),
            "forwarded_rows": self.forwarded_rows,
            "distance_unit": self.distance_unit,
            "distance_sum": self.distance_sum,
            "distance_rows": self.distance_rows,
            "mean_distance": None if math.isnan(self.mean_distance) else self.mean_distance,
            "ingress_fallback_rows": self.ingress_fallback_rows,
            "timed_rows": self.timed_rows,
            "time_min": iso_ns(self.time_min_ns),
            "time_max": iso_ns(self.time_max_ns),
            "input_errors": list(self.input_errors),
            "notes": list(self.notes),
            "warnings": dict(sorted(self.warnings.items())),
            "duplicate_rayids": self.duplicate_rayids,
            "duplicate_examples": list(self.duplicate_examples),
            "files": [
                {
                    "file": f,
                    "given": self.given.get(f, f),
                    "rows_in": c[0],
                    "rows_decided": c[1],
                    "rows_rejected": c[2],
                }
                for f, c in self.files.items()
            ],
            "reject_examples": {k: list(v) for k, v in sorted(self.reject_examples.items())},
            "top_flows": self.top_flows(top),
            "egress_server_load": self.load_stats(self.egress_servers),
            "egress_ip_load": self.load_stats(self.egress_ips),
            "top_egress_servers": self.top_egress_servers(top),
            "top_egress_ips": self.top_egress_ips(top),
            "concurrency": {
                "limit_per_egress_ip_per_origin": CONNECTION_LIMIT,
                "resolution_ms": self.concurrency.resolution_ms,
                "keys": conc_keys,
                "over_limit": conc_over,
                "top": self.concurrency.peaks(top),
            },
            "tiers_by_location": {k: dict(v) for k, v in sorted(self.tiers_by_location.items())},
            "tiers_by_pool": {k: dict(v) for k, v in sorted(self.tiers_by_pool.items())},
            "flows": [
                {
                    "ingress_location": a,
                    "egress_location": b,
                    "rows": v,
                    "distance_sum": self.flow_distance.get((a, b), 0.0),
                }
                for (a, b), v in sorted(self.flows.items())
            ],
            "egress_servers": dict(sorted(self.egress_servers.items())),
            "egress_ips": dict(sorted(self.egress_ips.items())),
            "egress_check": self.egress_check.to_dict(),
        }


# ---------------------------------------------------------------------------------------------
# Accumulator: dense counters over one topology during a run
# ---------------------------------------------------------------------------------------------
class Accumulator:
    """Counts for one model, added batch by batch in numpy; ``finish()`` gives the ``Summary``."""

    _DENSE_FLOWS_MAX = 2048  # locations; beyond, flows are counted sparsely

    def __init__(
        self, model: Any, resolution_ms: int = 1, spill_dir: str | os.PathLike[str] | None = None
    ) -> None:
        self.m = model
        L, P = len(model.location_ids), len(model.pool_ids)
        self.L = L
        self.rows_in = 0
        self.rejects = np.zeros(len(REASONS), dtype=np.int64)
        self.tier_loc = np.zeros(L * N_TIERS, dtype=np.int64)
        self.tier_pool = np.zeros(P * N_TIERS, dtype=np.int64)
        self.dense_flows = L <= self._DENSE_FLOWS_MAX
        self.flows_dense = np.zeros(L * L if self.dense_flows else 0, dtype=np.int64)
        self.flows_sparse: Counter[int] = Counter()
        self.egress_server = np.zeros(len(model.server_ids), dtype=np.int64)
        self.egress_ip = np.zeros(len(model.ip_ids), dtype=np.int64)
        self.distance_sum = 0.0
        self.distance_rows = 0
        self.fallback = 0
        self.timed = 0
        self.tmin: int | None = None
        self.tmax: int | None = None
        self.concurrency = Concurrency(resolution_ms, spill_dir)
        self._pairs = _core.logeval.PairIndex()
        self._ip_objects = np.array(model.ip_ids, dtype=object)
        self._origin_index: dict[str, int] = {}
        self._origin_text: list[str] = []
        self._last_origins: tuple[pa.Array, np.ndarray] | None = None
        self.input_errors: list[str] = []
        self.notes: list[str] = []
        self.warnings: Counter[str] = Counter()
        self.files: dict[str, list[int]] = {}
        self.given: dict[str, str] = {}
        self.reject_examples: dict[str, list[str]] = {}
        from ._duplicates import RayIdSet

        self.rayids = RayIdSet()

    def add_file(self, source: str, rows: int, decided: int, rejected: int) -> None:
        c = self.files.setdefault(source, [0, 0, 0])
        c[0] += rows
        c[1] += decided
        c[2] += rejected

    def observe(
        self, common: Any, source: str, row_numbers: Any, reason: np.ndarray, ok: np.ndarray
    ) -> np.ndarray:
        """Per-batch bookkeeping beyond the counts: the file's rows in / decided / rejected, a few
        example rows per reject reason, timestamp warnings, and duplicate RayIDs. Returns the mask,
        over the decided rows ``ok``, of those repeating a RayID seen before (left out of
        concurrency). ``row_numbers(positions)`` gives record numbers within the source."""
        n = common.n
        self.add_file(source, n, int(ok.shape[0]), n - int(ok.shape[0]))
        if common.warnings:
            self.warnings.update(common.warnings)
        if ok.shape[0] != n:
            for code in np.unique(reason[reason != 0]).tolist():
                name = REASONS[code]
                if not self.wants_examples(name):
                    continue
                rows = np.flatnonzero(reason == code)[:REJECT_EXAMPLES]
                for pos, number in zip(rows.tolist(), row_numbers(rows).tolist(), strict=True):
                    self.add_example(name, f"{source} row {number}: " + _row_text(common.cols, pos))
        dup = self.rayids.check(common.cols.get("RayID"), np.arange(n))  # every row read counts
        return dup if ok.shape[0] == n else dup[ok]

    def wants_examples(self, reason: str) -> bool:
        return len(self.reject_examples.get(reason, ())) < REJECT_EXAMPLES

    def add_example(self, reason: str, text: str) -> None:
        have = self.reject_examples.setdefault(reason, [])
        if len(have) < REJECT_EXAMPLES:
            have.append(text)

    def add_rejects(self, reasons: np.ndarray) -> None:
        self.rejects += np.bincount(reasons, minlength=len(REASONS))[: len(REASONS)]

    def add_reason(self, reason: str, count: int) -> None:
        self.rejects[REASON_CODE[reason]] += count

    def add_decisions(
        self,
        ingress_loc: np.ndarray,
        pool: np.ndarray,
        tier: np.ndarray,
        egress_server: np.ndarray,
        egress_loc: np.ndarray,
        egress_ip: np.ndarray,
        distance: np.ndarray,
    ) -> None:
        t = tier.astype(np.int64)
        ok = t < N_TIERS  # INVALID cannot happen (inputs are checked) but must not corrupt counts
        if not ok.all():
            t, ingress_loc, pool = t[ok], ingress_loc[ok], pool[ok]
            egress_server, egress_loc, egress_ip, distance = (
                egress_server[ok],
                egress_loc[ok],
                egress_ip[ok],
                distance[ok],
            )
        self.tier_loc += np.bincount(
            ingress_loc.astype(np.int64) * N_TIERS + t, minlength=self.tier_loc.shape[0]
        )
        self.tier_pool += np.bincount(pool.astype(np.int64) * N_TIERS + t, minlength=self.tier_pool.shape[0])
        has = egress_server >= 0
        if has.any():
            self.egress_server += np.bincount(egress_server[has], minlength=self.egress_server.shape[0])
            self.egress_ip += np.bincount(egress_ip[has], minlength=self.egress_ip.shape[0])
            pair = ingress_loc[has].astype(np.int64) * self.L + egress_loc[has]
            if self.dense_flows:
                self.flows_dense += np.bincount(pair, minlength=self.flows_dense.shape[0])
            else:
                u, c = np.unique(pair, return_counts=True)
                self.flows_sparse.update(dict(zip(u.tolist(), c.tolist(), strict=True)))
            d = distance[has]
            fin = np.isfinite(d)
            self.distance_sum += float(d[fin].sum())
            self.distance_rows += int(fin.sum())

    def add_timing(self, start_ns: np.ndarray) -> None:
        if start_ns.shape[0]:
            lo, hi = int(start_ns.min()), int(start_ns.max())
            self.tmin = lo if self.tmin is None else min(self.tmin, lo)
            self.tmax = hi if self.tmax is None else max(self.tmax, hi)

    def add_concurrency(
        self,
        egress_ip: np.ndarray,
        origin_dict: pa.Array,
        origin_idx: np.ndarray,
        port: np.ndarray,
        start_ns: np.ndarray,
        duration_ns: np.ndarray,
    ) -> None:
        """Rows given are decided with an egress IP and valid timing (so a non-null origin).

        A connection's key is (egress IP, origin text, origin port). Origins get run-wide ids (one
        dictionary lookup per distinct origin text; the last batch's are reused when the batch
        shares its dictionary), and the compiled ``PairIndex`` gives every (origin id, IP and port)
        pair its key id in order of first appearance, the order ``Concurrency.key_ids`` numbers
        them: only keys never seen before are built as Python tuples."""
        n = egress_ip.shape[0]
        if n == 0:
            return
        self.timed += n
        gids = self._origin_ids(origin_dict)
        a = gids[origin_idx]
        b = (egress_ip.astype(np.uint64) << np.uint64(16)) | port.astype(np.uint64)
        ids, fresh = self._pairs.index(a, b)
        if fresh.shape[0]:
            # New keys, in id order: (egress IP id, origin text, port) tuples built in bulk.
            text = self._origin_text
            keys = list(
                zip(
                    self._ip_objects[egress_ip[fresh]].tolist(),
                    [text[g] for g in a[fresh].tolist()],
                    port[fresh].tolist(),
                    strict=False,
                )
            )
            first = self.concurrency.add_new_keys(keys)
            if first != int(ids[fresh[0]]):  # pragma: no cover - a numbering bug
                raise AssertionError("concurrency key ids out of step with the pair index")
        self.concurrency.add_events(ids, start_ns, duration_ns)

    def _origin_ids(self, origin_dict: pa.Array) -> np.ndarray:
        """uint64 run-wide id of every entry of a batch's origin dictionary (null entries: 2**64-1,
        never used: decided rows have an origin)."""
        last = self._last_origins
        if last is not None and last[0].equals(origin_dict):
            return last[1]
        index, text = self._origin_index, self._origin_text
        values = origin_dict.to_pylist()
        new = [v for v in dict.fromkeys(values) if v is not None and v not in index]
        if new:
            index.update(zip(new, range(len(text), len(text) + len(new)), strict=True))
            text.extend(new)
        none = 2**64 - 1
        out = np.array([none if v is None else index[v] for v in values], dtype=np.uint64)
        self._last_origins = (origin_dict, out)
        return out

    def finish(self) -> Summary:
        m = self.m
        L = self.L
        rej = {REASONS[k]: int(v) for k, v in enumerate(self.rejects.tolist()) if v and k}
        tl = self.tier_loc.reshape(L, N_TIERS)
        tp = self.tier_pool.reshape(-1, N_TIERS)
        tiers = tl.sum(axis=0)
        by_loc = _by_tier(tl, m.location_ids)
        by_pool = _by_tier(tp, m.pool_ids)
        if self.dense_flows:
            nz = np.flatnonzero(self.flows_dense)
            counts = self.flows_dense[nz]
        else:
            nz = np.fromiter(self.flows_sparse.keys(), dtype=np.int64, count=len(self.flows_sparse))
            counts = np.fromiter(self.flows_sparse.values(), dtype=np.int64, count=len(self.flows_sparse))
        a, b = np.divmod(nz, L)
        # count * distance in float64, as float(c) * float(d) would be; 0 within a location
        dist = np.where(a != b, counts.astype(np.float64) * m.location_distance[a, b], 0.0)
        loc = np.array(m.location_ids, dtype=object)
        keys = list(zip(loc[a].tolist(), loc[b].tolist(), strict=True))
        flows: dict[tuple[str, str], int] = dict(zip(keys, counts.tolist(), strict=True))
        flow_distance: dict[tuple[str, str], float] = dict(zip(keys, dist.tolist(), strict=True))
        decided = int(tiers.sum())
        rejected = int(sum(rej.values()))
        return Summary(
            rows_in=decided + rejected,
            rows_decided=decided,
            rows_rejected=rejected,
            rejects=rej,
            tiers={TIERS[t]: int(tiers[t]) for t in range(N_TIERS) if tiers[t]},
            tiers_by_location=by_loc,
            tiers_by_pool=by_pool,
            flows=flows,
            flow_distance=flow_distance,
            egress_servers=_nonzero(self.egress_server, m.server_ids),
            egress_ips=_nonzero(self.egress_ip, m.ip_ids),
            distance_sum=self.distance_sum,
            distance_rows=self.distance_rows,
            ingress_fallback_rows=self.fallback,
            timed_rows=self.timed,
            time_min_ns=self.tmin,
            time_max_ns=self.tmax,
            concurrency=self.concurrency,
            distance_unit=m.distance_unit,
            coords=dict(m.coords),
            input_errors=list(self.input_errors),
            notes=list(self.notes) + self._duplicate_note(),
            warnings=dict(self.warnings)
            | ({"duplicate-rayid": self.rayids.duplicates} if self.rayids.duplicates else {}),
            files={k: list(v) for k, v in self.files.items()},
            given=dict(self.given),
            reject_examples={k: list(v) for k, v in self.reject_examples.items()},
            duplicate_rayids=self.rayids.duplicates,
            duplicate_examples=list(self.rayids.examples),
        )

    def _duplicate_note(self) -> list[str]:
        if self.rayids.stopped_at is None:
            return []
        return [
            (
                f"duplicate RayIDs were checked over the first {self.rayids.stopped_at:,} RayIDs only "
                "(the bound that keeps the check's memory under 128 MiB)"
            )
        ]


def _row_text(cols: dict[str, Any], pos: int) -> str:
    """One row's fields as compact JSON (the values as the log had them, as text)."""
    import json

    from ._arrow import to_string

    rec = {}
    for f, arr in cols.items():
        if arr is not None:
            v = to_string(arr.slice(pos, 1)).to_pylist()[0]
            rec[f] = v
    return json.dumps(rec, separators=(",", ":"))


def _nonzero(counts: np.ndarray, ids: list[str]) -> dict[str, int]:
    """{id: count} for the non-zero counts, in index order."""
    nz = np.flatnonzero(counts)
    return dict(zip(np.array(ids, dtype=object)[nz].tolist(), counts[nz].tolist(), strict=True))


def _by_tier(table: np.ndarray, ids: list[str]) -> dict[str, dict[str, int]]:
    """{id: {tier: count}} for the rows of a (ids x tiers) count table that have any, in index order."""
    rows = np.flatnonzero(table.any(axis=1))
    return {
        ids[i]: {t: c for t, c in zip(TIERS, counts, strict=False) if c}
        for i, counts in zip(rows.tolist(), table[rows].tolist(), strict=True)
    }


TIER_CODES = {t.name: int(t) for t in Tier}
