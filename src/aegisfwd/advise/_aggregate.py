"""Logs -> the counts placement advice works on: rows per (ingress server, pool, family).

The log is read, parsed and resolved exactly as ``af.evaluate`` does it (same readers, column
mapping, flow keys, ingress choice and reject reasons: ``evaluation._prepare``), so the counts
describe the same decided rows. What the tier, egress location and distance of a row are depends
only on its (ingress server, pool, family) under a placement (the flow only picks a server and an
IP among equals), so these counts are all a placement objective needs. For the concurrency figures
the timed IPv4 rows of the scope are also kept (flow, origin, start, duration), to be re-decided
under a changed placement with the compiled engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from ..evaluation._prepare import column_names, dictionary_columns, parse_common, resolve, resolve_columns
from ..evaluation._read import open_source
from ..evaluation._run import DEFAULT_BATCH_ROWS, model_for
from ..evaluation._stages import prefetch
from ..evaluation._summary import REASONS

# Compact the distinct (group, flow) pairs when this many are pending (16 bytes each).
_FLOW_COMPACT = 4_000_000


@dataclass
class Connections:
    """Timed IPv4 rows of the scope: enough to re-decide each one and fold its concurrency."""

    group: np.ndarray  # int64 index into Counts' groups
    flow: np.ndarray  # uint64
    origin: np.ndarray  # int64 index into ``origins``
    start_ns: np.ndarray
    duration_ns: np.ndarray
    origins: list[tuple[str, int]] = field(default_factory=list)  # (origin IP text, port)

    def __len__(self) -> int:
        return int(self.group.shape[0])


@dataclass
class Counts:
    """Decided rows of a log per (ingress server, pool, family): the groups a placement acts on.

    ``server``/``pool`` index ``server_ids``/``pool_ids`` (the topology the log was resolved with;
    moving addresses changes neither list). ``flows`` is the number of distinct flow keys of the
    group (only counted with ``count_flows=True``, else zeros), ``sample_flow`` one of its flows.
    """

    server: np.ndarray  # int32
    pool: np.ndarray  # int32
    family: np.ndarray  # uint8
    rows: np.ndarray  # int64
    flows: np.ndarray  # int64
    sample_flow: np.ndarray  # uint64
    server_ids: list[str]
    pool_ids: list[str]
    rows_in: int = 0
    rows_rejected: dict[str, int] = field(default_factory=dict)
    rows_out_of_scope: int = 0
    flows_counted: bool = False
    connections: Connections | None = None
    # Rows per (egress IP, egress location) under the topology the log was read with.
    egress_rows: dict[tuple[str, str], int] = field(default_factory=dict)
    source: str = ""
    input_errors: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.server.shape[0])

    @property
    def rows_decided(self) -> int:
        return int(self.rows.sum())

    def weights(self, by: str) -> np.ndarray:
        """Per-group weight: ``"requests"`` (rows) or ``"flows"`` (distinct flow keys)."""
        if by == "requests":
            return self.rows
        if by == "flows":
            if not self.flows_counted:
                raise ValueError("distinct flows were not counted: aggregate with count_flows=True")
            return self.flows
        raise ValueError(f"weight must be 'requests' or 'flows', got {by!r}")


def _group_key(server: np.ndarray, pool: np.ndarray, family: np.ndarray, n_pools: int) -> np.ndarray:
    return (server.astype(np.int64) * n_pools + pool.astype(np.int64)) * 2 + (family == 6)


def aggregate(
    source: Any,
    topology: Any,
    *,
    pools: Iterable[str] | None = None,
    columns: Mapping[str, str | None] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    count_flows: bool = False,
    connections: bool = True,
    threads: int | None = None,
) -> Counts:
    """Read ``source`` like ``af.evaluate`` and count its decided rows per (ingress server, pool, family).

    ``pools``: the pool ids in scope (``None``: every pool); rows of other pools are only counted in
    ``rows_out_of_scope`` and never go through the ingress choice. ``count_flows`` also counts
    distinct flow keys per group (exact; costs a sort of the pairs); ``connections`` keeps the timed
    IPv4 rows for the concurrency figures.
    """
    model = model_for(topology)
    cols = resolve_columns(columns)
    n_pools = max(len(model.pool_ids), 1)
    scope: np.ndarray | None = None
    if pools is not None:
        wanted = list(pools)
        unknown = [p for p in wanted if p not in model.pool_lookup]
        if unknown:
            from ..errors import UnknownIdError

            raise UnknownIdError("pool", unknown[0])
        scope = np.zeros(len(model.pool_ids), dtype=bool)
        scope[[model.pool_lookup[p] for p in wanted]] = True

    src = open_source(source, column_names(cols), batch_rows, dictionary=dictionary_columns(cols))
    keys: list[np.ndarray] = []
    rows: list[np.ndarray] = []
    samples: list[np.ndarray] = []
    pairs: list[np.ndarray] = []
    pending_pairs = 0
    reasons = np.zeros(len(REASONS), dtype=np.int64)
    rows_in = 0
    out_of_scope = 0
    conn_parts: list[tuple[np.ndarray, ...]] = []
    origin_ids: dict[tuple[str, int], int] = {}
    egress = np.zeros((max(len(model.ip_ids), 1), max(len(model.location_ids), 1)), dtype=np.int64)
    states = model.states()
    for chunk in prefetch(src.chunks):  # the next batches are read (GIL released) meanwhile
        n_bad = len(chunk.malformed)
        rows_in += n_bad
        if n_bad:
            reasons[REASONS.index(chunk.malformed_reason)] += n_bad
        batch = chunk.batch
        if batch is None or batch.num_rows == 0:
            continue
        rows_in += batch.num_rows
        if scope is not None:
            batch, skipped = _in_scope(batch, cols, model, scope)
            out_of_scope += skipped
            if batch.num_rows == 0:
                continue
        common = parse_common(batch, cols)
        res = resolve(common, model, states, threads)
        ok = np.flatnonzero(res.reason == 0)
        if not res.all_ok:
            reasons += np.bincount(res.reason[res.reason != 0], minlength=len(REASONS))[: len(REASONS)]
        if ok.shape[0] == 0:
            continue
        server, pool, family, flow = res.server[ok], res.pool[ok], common.family[ok], common.flows[ok]
        key = _group_key(server, pool, family, n_pools)
        uniq, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        keys.append(uniq)
        rows.append(np.bincount(inverse, minlength=uniq.shape[0]).astype(np.int64))
        samples.append(flow[first])
        # Where each decided row egresses under this topology (for the holders that served nothing).
        r = model.decide(server, pool, family, flow, threads)
        has = r.ip >= 0
        np.add.at(egress, (r.ip[has], r.location[has]), 1)
        if count_flows:
            pair = np.empty(ok.shape[0], dtype=[("k", "<i8"), ("f", "<u8")])
            pair["k"], pair["f"] = key, flow
            pairs.append(np.unique(pair))
            pending_pairs += pairs[-1].shape[0]
            if pending_pairs > _FLOW_COMPACT:
                pairs = [np.unique(np.concatenate(pairs))]
                pending_pairs = pairs[0].shape[0]
        if connections:
            timed = common.timed[ok] & (family == 4)
            if timed.any():
                sel = ok[timed]
                origin = _origin_codes(
                    common.origin_dict, common.origin_idx[sel], common.port[sel], origin_ids
                )
                conn_parts.append(
                    (key[timed], flow[timed], origin, common.start_ns[sel], common.duration_ns[sel])
                )

    if keys:
        all_keys = np.concatenate(keys)
        uniq, first, inverse = np.unique(all_keys, return_index=True, return_inverse=True)
        total = np.bincount(inverse, weights=np.concatenate(rows), minlength=uniq.shape[0]).astype(np.int64)
        sample = np.concatenate(samples)[first]
    else:
        uniq = np.empty(0, np.int64)
        total = np.empty(0, np.int64)
        sample = np.empty(0, np.uint64)
    flows = np.zeros(uniq.shape[0], dtype=np.int64)
    if count_flows and pairs:
        distinct = np.unique(np.concatenate(pairs))
        flows = np.bincount(np.searchsorted(uniq, distinct["k"]), minlength=uniq.shape[0]).astype(np.int64)
    family_out = np.where(uniq % 2 == 1, 6, 4).astype(np.uint8)
    pool_out = ((uniq // 2) % n_pools).astype(np.int32)
    server_out = (uniq // 2 // n_pools).astype(np.int32)

    conns = None
    if connections:
        if conn_parts:
            ck, cf, co, cs, cd = (np.concatenate(x) for x in zip(*conn_parts, strict=True))
        else:
            ck = co = cs = cd = np.empty(0, np.int64)
            cf = np.empty(0, np.uint64)
        conns = Connections(np.searchsorted(uniq, ck).astype(np.int64), cf, co, cs, cd, list(origin_ids))

    ip_rows, loc_rows = np.nonzero(egress)
    egress_rows = {
        (model.ip_ids[i], model.location_ids[j]): int(egress[i, j])
        for i, j in zip(ip_rows.tolist(), loc_rows.tolist(), strict=True)
    }
    return Counts(
        server=server_out,
        pool=pool_out,
        family=family_out,
        rows=total,
        flows=flows,
        sample_flow=sample,
        server_ids=model.server_ids,
        pool_ids=model.pool_ids,
        rows_in=rows_in,
        rows_rejected={REASONS[k]: int(v) for k, v in enumerate(reasons.tolist()) if v},
        rows_out_of_scope=out_of_scope,
        flows_counted=count_flows,
        connections=conns,
        egress_rows=egress_rows,
        source=src.description,
        input_errors=list(src.errors),
    )


def _in_scope(
    batch: pa.RecordBatch, cols: Mapping[str, str | None], model: Any, scope: np.ndarray
) -> tuple[pa.RecordBatch, int]:
    """The rows of ``batch`` whose pool is in scope (rows without a known pool are out of scope:
    their reject reason belongs to whichever pool they were meant for)."""
    from ..evaluation._prepare import _col

    n = batch.num_rows
    if cols["pool"] is not None:
        codes = model.pool_codes(_col(batch, cols["pool"]), n)
    else:
        codes = model.zone_codes(_col(batch, cols["ZoneName"]), n)
    keep = (codes >= 0) & scope[np.maximum(codes, 0)]
    if keep.all():
        return batch, 0
    return batch.filter(pa.array(keep)), int(n - keep.sum())


def _origin_codes(
    origin_dict: pa.Array, idx: np.ndarray, port: np.ndarray, ids: dict[tuple[str, int], int]
) -> np.ndarray:
    """Run-wide id per (origin IP text, port); only distinct pairs go through Python."""
    values = origin_dict.to_pylist()
    pair = idx.astype(np.int64) * 65536 + port.astype(np.int64)
    uniq, inverse = np.unique(pair, return_inverse=True)
    codes = np.empty(uniq.shape[0], dtype=np.int64)
    for k, p in enumerate(uniq.tolist()):
        i, prt = divmod(p, 65536)
        text = (values[i] or "").strip() if i >= 0 else ""
        codes[k] = ids.setdefault((text, prt), len(ids))
    return codes[inverse]
