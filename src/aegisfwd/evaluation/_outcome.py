"""What a command line run of ``evaluate`` tells its caller beyond the tables: notes and input errors
on stderr, and failure when not one row could be decided (so a pipeline notices)."""

from __future__ import annotations

from typing import Any

from ..errors import LogInputError
from ._summary import REASON_HELP, Summary

TOP_REASONS = 3


def stderr_lines(summary: Summary) -> list[str]:
    """``note: …`` and ``input error: …`` lines, for stderr (stdout keeps the tables)."""
    return [f"note: {n}" for n in summary.notes] + [f"input error: {e}" for e in summary.input_errors]


def top_reasons(summary: Summary, n: int = TOP_REASONS) -> str:
    rej = sorted(summary.rejects.items(), key=lambda kv: (-kv[1], kv[0]))[:n]
    total = max(summary.rows_in, 1)
    return "; ".join(f"{k} {v:,} ({100 * v / total:.0f}%: {REASON_HELP.get(k, k)})" for k, v in rej)


def check_decided(summary: Summary, source: Any = None) -> None:
    """Raise ``LogInputError`` when no row was decided: the top reject reasons, or the input
    errors when nothing could be read at all."""
    if summary.rows_decided:
        return
    where = f" of {source}" if source else ""
    if summary.rows_in == 0:
        why = "; ".join(summary.input_errors) or "the log holds no records"
        raise LogInputError(f"no row{where} could be read: {why}")
    raise LogInputError(
        f"none of the {summary.rows_in:,} rows{where} could be decided; top reasons: {top_reasons(summary)}"
    )
