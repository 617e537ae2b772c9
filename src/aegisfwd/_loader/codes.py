"""Every code a ``TopologyIssue`` from the loader can carry (documented in docs/topology-format.md)."""

from __future__ import annotations

__all__ = ["ERROR_CODES"]

#: Every code a ``TopologyIssue`` from this module can carry (documented in docs/topology-format.md).
ERROR_CODES: frozenset[str] = frozenset(
    {
        # reading the file
        "unsupported-extension",
        "file-not-found",
        "read-error",
        "parse-error",
        "duplicate-key",
        # shape
        "wrong-type",
        "missing-field",
        "unknown-field",
        "empty-id",
        "unsupported-version",
        "bad-coordinate",
        "bad-distance-unit",
        # cross references
        "duplicate-id",
        "server-in-two-dcs",
        "unknown-location",
        "duplicate-pool",
        "unknown-holder",
        "invalid-address",
        "ipv4-prefix",
        "host-bits-set",
        "ipv6-zone-id",
        "ipv4-mapped",
        "duplicate-address",
        "overlapping-prefix",
        "missing-coordinates",
        "bad-distance",
        "incomplete-matrix",
        "unknown-state-target",
        "unknown-state",
        "unknown-pool",
    }
)
