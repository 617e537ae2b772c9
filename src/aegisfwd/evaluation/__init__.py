"""Request-log evaluation: where every request in a log would egress, and what that means.

    import aegisfwd as af
    ev = af.evaluate("logs/", "topology.yaml", output="decisions.parquet")
    ev.print()                  # rich tables
    ev.report("report/")        # report/summary.json + report/report.html
    cmp = af.compare("logs/", "placement-a.yaml", "placement-b.yaml")

See ``docs/evaluate.md`` for the columns read, the flow-key derivation, reject reasons and formats.
"""

from __future__ import annotations

from ._compare import CompareSummary
from ._prepare import DEFAULT_COLUMNS, FIELDS, KEY_FIELDS
from ._run import (
    DEFAULT_BATCH_ROWS,
    DEFAULT_KEEP_ROWS,
    EVALUATE_BATCHES_SCHEMA,
    Comparison,
    Evaluation,
    compare,
    evaluate,
    evaluate_batches,
    summarize_batches,
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
