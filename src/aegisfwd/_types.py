"""Value types shared by every engine: the tier enum, one decision, a batch of decisions."""

from __future__ import annotations

import abc
import enum
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow as pa


class Tier(enum.IntEnum):
    """Which rule of the forwarding chain decided (docs/decision.md, "The chain")."""

    LOCAL = 0
    SAME_DC = 1
    SAME_LOCATION = 2
    REMOTE = 3
    UNAVAILABLE = 4
    INVALID = 255


TIER_NAMES: dict[int, str] = {t.value: t.name for t in Tier}


class Decision(metaclass=abc.ABCMeta):  # noqa: B024 - an ABC for register(FastDecision), no abstract API
    """The answer for one request.

    The compiled engine returns its own compact result type (``aegisfwd._fast.FastDecision``) with the
    same attributes; it is registered as a virtual subclass, so ``isinstance(d, Decision)`` holds for
    the answers of every engine.

    Ids are ``None`` (indices -1) when the tier is UNAVAILABLE or INVALID. ``distance`` is 0 for
    the first three tiers, the ingress-to-egress location distance for REMOTE and NaN otherwise.
    """

    __slots__ = (
        "dc",
        "dc_index",
        "distance",
        "ip",
        "ip_index",
        "location",
        "location_index",
        "server",
        "server_index",
        "tier",
    )

    def __init__(
        self,
        tier: Tier,
        server: str | None,
        dc: str | None,
        location: str | None,
        ip: str | None,
        distance: float,
        server_index: int = -1,
        dc_index: int = -1,
        location_index: int = -1,
        ip_index: int = -1,
    ) -> None:
        self.tier = Tier(tier)
        self.server = server
        self.dc = dc
        self.location = location
        self.ip = ip
        self.distance = float(distance)
        self.server_index = server_index
        self.dc_index = dc_index
        self.location_index = location_index
        self.ip_index = ip_index

    def _key(self) -> tuple[Any, ...]:
        d = self.distance
        return (
            int(self.tier),
            self.server,
            self.dc,
            self.location,
            self.ip,
            "nan" if math.isnan(d) else d,
            self.server_index,
            self.dc_index,
            self.location_index,
            self.ip_index,
        )

    def __eq__(self, other: object) -> bool:
        if not hasattr(other, "tier") or not hasattr(other, "ip_index"):
            return NotImplemented
        return self._key() == Decision._key(other)  # type: ignore[arg-type]

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"Decision(tier={Tier(self.tier).name}, server={self.server!r}, dc={self.dc!r}, "
            f"location={self.location!r}, ip={self.ip!r}, distance={self.distance!r})"
        )


class BatchResult:
    """Columns of a batch of decisions, one row per request, in input order.

    ``tier`` is uint8 (``Tier`` values), ``server``/``dc``/``location``/``ip`` are int32 indices into
    the engine's id tables (-1 = none), ``distance`` is float64.
    """

    __slots__ = ("_names", "dc", "distance", "ip", "location", "server", "tier")

    def __init__(
        self,
        tier: np.ndarray,
        server: np.ndarray,
        dc: np.ndarray,
        location: np.ndarray,
        ip: np.ndarray,
        distance: np.ndarray,
        names: IdTables,
    ) -> None:
        self.tier = tier
        self.server = server
        self.dc = dc
        self.location = location
        self.ip = ip
        self.distance = distance
        self._names = names

    def __len__(self) -> int:
        return int(self.tier.shape[0])

    def columns(self) -> dict[str, np.ndarray]:
        return {
            "tier": self.tier,
            "server": self.server,
            "dc": self.dc,
            "location": self.location,
            "ip": self.ip,
            "distance": self.distance,
        }

    def equals(self, other: BatchResult) -> bool:
        """True when every column is identical (NaN distances compare equal)."""
        return all(
            np.array_equal(a, b, equal_nan=(name == "distance"))
            for (name, a), b in zip(self.columns().items(), other.columns().values(), strict=True)
        )

    def decision(self, row: int) -> Decision:
        """Row ``row`` as a ``Decision``."""
        n = self._names
        s, d, loc, ip = (int(self.server[row]), int(self.dc[row]), int(self.location[row]), int(self.ip[row]))
        return Decision(
            Tier(int(self.tier[row])),
            n.servers[s] if s >= 0 else None,
            n.dcs[d] if d >= 0 else None,
            n.locations[loc] if loc >= 0 else None,
            n.ips[ip] if ip >= 0 else None,
            float(self.distance[row]),
            s,
            d,
            loc,
            ip,
        )

    def to_arrow(self) -> pa.Table:
        """An Arrow table with tier names and ids as strings (dictionary-encoded), nulls for none."""
        try:
            import pyarrow as pa
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError('to_arrow() needs pyarrow: pip install "aegisfwd[analysis]"') from exc
        n = self._names

        def ids(indices: np.ndarray, table: Sequence[str]) -> pa.Array:
            dictionary = pa.array(list(table), type=pa.string())
            mask = indices < 0
            return pa.DictionaryArray.from_arrays(pa.array(indices, type=pa.int32(), mask=mask), dictionary)

        tier_dictionary = pa.array([TIER_NAMES.get(i, str(i)) for i in range(256)], type=pa.string())
        tier = pa.DictionaryArray.from_arrays(pa.array(self.tier, type=pa.uint8()), tier_dictionary)
        return pa.table(
            {
                "tier": tier,
                "server": ids(self.server, n.servers),
                "dc": ids(self.dc, n.dcs),
                "location": ids(self.location, n.locations),
                "ip": ids(self.ip, n.ips),
                "distance": pa.array(self.distance, type=pa.float64()),
            }
        )

    def to_pandas(self) -> pd.DataFrame:
        return self.to_arrow().to_pandas()

    def __repr__(self) -> str:
        counts = np.bincount(self.tier, minlength=256)
        mix = ", ".join(f"{TIER_NAMES[t]}={int(counts[t])}" for t in TIER_NAMES if counts[t])
        return f"BatchResult({len(self)} rows: {mix})"


class IdTables:
    """Ids in index order for every kind, as sequences of str (what ``engine.servers`` etc. return)."""

    __slots__ = ("dcs", "ips", "locations", "pools", "servers")

    def __init__(
        self,
        locations: Sequence[str],
        dcs: Sequence[str],
        servers: Sequence[str],
        pools: Sequence[str],
        ips: Sequence[str],
    ) -> None:
        self.locations = locations
        self.dcs = dcs
        self.servers = servers
        self.pools = pools
        self.ips = ips
