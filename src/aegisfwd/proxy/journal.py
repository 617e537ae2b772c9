"""Per-process journals: one JSON line per connection, flushed as written.

The load test and the demo reconcile these with the origin's log and the clients' own records, so
each line says everything that connection's outcome depended on (the state epoch included). A
process killed with SIGKILL loses nothing already written: lines are flushed one by one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TextIO


class Journal:
    def __init__(self, path: str | Path | None) -> None:
        self._f: TextIO | None = None
        if path is not None:
            self._f = open(path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - lives as long as the process

    def write(self, record: dict[str, Any]) -> None:
        if self._f is not None:
            self._f.write(json.dumps(record, separators=(",", ":")) + "\n")

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


def read_journal(path: str | Path) -> list[dict[str, Any]]:
    """Every complete line of a journal (a process killed mid-write leaves at most a partial last line)."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.endswith("\n"):
                out.append(json.loads(line))
    return out
