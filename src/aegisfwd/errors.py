"""Exceptions. Every input error is a ``ValueError`` subclass that names the bad value."""

from __future__ import annotations

from typing import NamedTuple


class AegisError(Exception):
    """Base class of every aegisfwd-specific error."""


class TopologyIssue(NamedTuple):
    """One problem found in a topology file: a stable code, the path to the entry, a message."""

    code: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message} [{self.code}]" if self.path else f"{self.message} [{self.code}]"


class TopologyError(AegisError, ValueError):
    """A topology is invalid; ``.errors`` lists every problem found, not just the first."""

    def __init__(self, errors: list[TopologyIssue], source: str | None = None) -> None:
        self.errors = list(errors)
        self.source = source
        where = f" in {source}" if source else ""
        lines = [f"{len(self.errors)} error(s){where}:"] + [f"  {e}" for e in self.errors]
        super().__init__("\n".join(lines))


class UnknownIdError(AegisError, ValueError):
    """A server, DC, location, pool or zone id (or index) that the topology does not have."""

    def __init__(self, kind: str, value: object) -> None:
        self.kind = kind
        self.value = value
        super().__init__(f"unknown {kind}: {value!r}")


class InvalidFamilyError(AegisError, ValueError):
    """An address family other than 4 or 6."""

    def __init__(self, value: object) -> None:
        self.value = value
        super().__init__(f"invalid address family {value!r}: expected 4 or 6")


class InvalidFlowError(AegisError, ValueError):
    """A flow key that is not an integer in [0, 2**64)."""


class BatchInputError(AegisError, ValueError):
    """A batch argument with the wrong dtype, shape or length."""


class CompiledFileError(AegisError, ValueError):
    """A compiled topology file or buffer that is truncated, corrupt or of another version."""


class SpillError(AegisError, OSError):
    """The concurrency analysis could not write or read back its spill file (disk full, a directory
    it may not write, the file removed while in use); the message names the file."""


class SharedEngineError(AegisError, RuntimeError):
    """A shared engine segment that is missing, foreign, truncated, unfinished, built from another
    compiled topology, already existing (on create), or closed."""


class LogInputError(AegisError, ValueError):
    """A request log that cannot be read as one (empty, binary, a CSV without a header, an empty
    directory, an unreachable Dask scheduler); the message names the file and what is wrong."""
