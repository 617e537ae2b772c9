"""Arrow batch iterators for other engines (Spark ``mapInArrow``, Ray ``map_batches``, ...).

``evaluate_batches`` yields one decision row per input row with a fixed schema;
``summarize_batches`` yields one row holding the pickled ``Summary`` of its partition.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from ._prepare import KEY_FIELDS, column_names, parse_common, resolve, resolve_columns
from ._read import Chunk
from ._run import Runner, model_for

__all__ = ["EVALUATE_BATCHES_SCHEMA", "evaluate_batches", "summarize_batches"]


def evaluate_batches(
    batches: Any,
    topology: Any,
    *,
    columns: Mapping[str, str | None] | None = None,
    threads: int | None = None,
) -> Iterator[pa.RecordBatch]:
    """Decisions for an iterator of Arrow record batches, one output row per input row, in order.

    Output columns: the key columns (``RayID``, ``EdgeColoCode``, ``ZoneName``, ``OriginIP``, as
    text, null where absent), then ``ingress_server``, ``tier``, ``egress_server``, ``egress_dc``,
    ``egress_location``, ``egress_ip`` (plain strings), ``distance`` and ``reject_reason`` (null for
    decided rows; the decision columns are null for rejected rows). Plain types only, so the schema
    is fixed (``EVALUATE_BATCHES_SCHEMA``), as Spark's ``mapInArrow`` wants.
    """
    model = model_for(topology)
    cols = resolve_columns(columns)
    wanted = column_names(cols)
    from ._summary import REASONS

    reasons = pa.array(list(REASONS), pa.string())
    for batch in batches:
        if isinstance(batch, pa.Table):
            parts = batch.to_batches()
        else:
            parts = [batch]
        for b in parts:
            b = b.select([c for c in wanted if c in b.schema.names])
            common = parse_common(b, cols)
            res = resolve(common, model, model.states(), threads)
            ok = np.flatnonzero(res.reason == 0)
            r = model.decide(res.server[ok], res.pool[ok], common.family[ok], common.flows[ok], threads)
            n = b.num_rows
            full = {}
            for name, idx, table in (
                ("ingress_server", res.server[ok], model.server_ids),
                ("egress_server", r.server, model.server_ids),
                ("egress_dc", r.dc, model.dc_ids),
                ("egress_location", r.location, model.location_ids),
                ("egress_ip", r.ip, model.ip_ids),
            ):
                v = np.full(n, -1, dtype=np.int64)
                v[ok] = idx
                full[name] = _ids_column(v, table)
            tier = np.full(n, -1, dtype=np.int64)
            tier[ok] = r.tier
            dist = np.full(n, np.nan)
            dist[ok] = r.distance
            from ._output import TIER_DICTIONARY, key_columns

            keys = key_columns(common.cols, np.arange(n), KEY_FIELDS)
            tier_names = TIER_DICTIONARY.take(
                pa.array(np.where(tier >= 0, np.minimum(tier, 5), 0))
            ).to_pylist()
            reason = reasons.take(pa.array(res.reason.astype(np.int64)))
            yield pa.record_batch(
                {
                    **keys,
                    "ingress_server": full["ingress_server"],
                    "tier": pa.array(
                        [t if k >= 0 else None for t, k in zip(tier_names, tier.tolist(), strict=True)],
                        pa.string(),
                    ),
                    "egress_server": full["egress_server"],
                    "egress_dc": full["egress_dc"],
                    "egress_location": full["egress_location"],
                    "egress_ip": full["egress_ip"],
                    "distance": pa.array(dist, pa.float64()),
                    "reject_reason": pc_if_else(res.reason == 0, reason),
                },
                schema=EVALUATE_BATCHES_SCHEMA,
            )


def _ids_column(idx: np.ndarray, table: Any) -> pa.Array:
    d = pa.array(list(table), pa.string())
    mask = idx < 0
    return (
        d.take(pa.array(np.where(mask, 0, idx), mask=mask if mask.any() else None))
        if len(d)
        else pa.nulls(len(idx), pa.string())
    )


def pc_if_else(is_null: np.ndarray, values: pa.Array) -> pa.Array:
    import pyarrow.compute as pc

    return pc.if_else(pa.array(is_null), pa.scalar(None, pa.string()), values)


EVALUATE_BATCHES_SCHEMA = pa.schema(
    [(f, pa.string()) for f in KEY_FIELDS]
    + [
        (c, pa.string())
        for c in ("ingress_server", "tier", "egress_server", "egress_dc", "egress_location", "egress_ip")
    ]
    + [("distance", pa.float64()), ("reject_reason", pa.string())]
)


def summarize_batches(
    batches: Any,
    topology: Any,
    *,
    columns: Mapping[str, str | None] | None = None,
    threads: int | None = None,
    concurrency_resolution_ms: int = 1,
) -> Iterator[pa.RecordBatch]:
    """The ``Summary`` of an iterator of Arrow record batches, as one row ``{"summary": pickled bytes}``:
    for engines that return rows per partition (Spark ``mapInArrow``); merge on the driver with
    ``Summary.merge_all(pickle.loads(b) for b in ...)``."""
    import pickle

    model = model_for(topology)
    cols = resolve_columns(columns)
    runner = Runner(model, cols, threads=threads, concurrency_resolution_ms=concurrency_resolution_ms)
    row = 0
    for batch in batches:
        for b in batch.to_batches() if isinstance(batch, pa.Table) else [batch]:
            runner.process(
                Chunk(b.select([c for c in column_names(cols) if c in b.schema.names]), "<batch>", row)
            )
            row += b.num_rows
    yield pa.record_batch({"summary": pa.array([pickle.dumps(runner.finish())], pa.binary())})
