"""Request-log evaluation: where every request in a log would egress, and what that means.

    import aegisfwd as af
    ev = af.evaluate("logs/", "topology.yaml", output="decisions.parquet")
    ev.print()                  # rich tables
    ev.report("report/")        # report/summary.json + report/report.html
    cmp = af.compare("logs/", "placement-a.yaml", "placement-b.yaml")

One job per module: ``_read`` (sources), ``_prepare`` (columns, parsing, resolving ids), ``_model``
(the engine a run decides with), ``_stages`` (background stages, read-ahead, progress), ``_run``
(evaluate and compare), ``_batches`` (Arrow batch iterators for Spark and Ray), ``_dask`` (one task
per file on a Dask cluster), ``_summary`` / ``_concurrency`` / ``_compare`` (what is counted),
``_output`` and ``_report`` (what is written).

See ``docs/evaluate.md`` for the columns read, the flow-key derivation, reject reasons and formats.
"""

from __future__ import annotations

from ._batches import EVALUATE_BATCHES_SCHEMA, evaluate_batches, summarize_batches
from ._compare import CompareSummary
from ._prepare import DEFAULT_COLUMNS, FIELDS, KEY_FIELDS
from ._run import (
    DEFAULT_BATCH_ROWS,
    DEFAULT_KEEP_ROWS,
    Comparison,
    Evaluation,
    compare,
    evaluate,
)
from ._summary import CONNECTION_LIMIT, REASONS, Concurrency, Summary

__all__ = [
    "CONNECTION_LIMIT",
    "DEFAULT_BATCH_ROWS",
    "DEFAULT_COLUMNS",
    "DEFAULT_KEEP_ROWS",
    "EVALUATE_BATCHES_SCHEMA",
    "FIELDS",
    "KEY_FIELDS",
    "REASONS",
    "CompareSummary",
    "Comparison",
    "Concurrency",
    "Evaluation",
    "Summary",
    "compare",
    "evaluate",
    "evaluate_batches",
    "summarize_batches",
]
