"""What the evaluator needs from a topology: the engine, id lookups and the tables of the colo map."""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._types import BatchResult
from ._prepare import Lookup


class Model:
    """An engine plus the lookups that turn log values into engine inputs.

    ``topology`` may be a ``Topology``, a ``CompiledTopology``, an engine (``af.Engine`` or
    ``af.ReferenceEngine``) or a path to a topology file (YAML/JSON/TOML) or a saved compiled file.
    ``cache``: take a topology file's compiled tables from the compiled-file cache (``_file_cache``;
    the command line does, unless ``--no-cache``).
    """

    def __init__(self, topology: Any, *, cache: bool = False) -> None:
        import aegisfwd as af

        from .._file_cache import open_compiled

        source = topology
        if isinstance(topology, (str, os.PathLike)):
            topology = open_compiled(Path(topology), cache=cache)

        if hasattr(topology, "decide_batch"):
            engine = topology
        else:
            engine = af.Engine(topology)
        self.engine = engine
        compiled = getattr(engine, "compiled", None)
        if compiled is None and isinstance(topology, af.CompiledTopology):
            compiled = topology
        if compiled is None:
            topo = getattr(engine, "topology", None)
            if topo is None:
                raise TypeError(f"cannot find the tables of {type(engine).__name__}: pass a Topology")
            compiled = topo.compile()
        self.compiled = compiled
        a = compiled.arrays
        self.location_ids: list[str] = list(compiled.locations)
        self.dc_ids: list[str] = list(compiled.dcs)
        self.server_ids: list[str] = list(compiled.servers)
        self.pool_ids: list[str] = list(compiled.pools)
        self.ip_ids: list[str] = list(compiled.ips)
        self.zone_ids: list[str] = list(compiled.zones)
        # What the report and the printed tables call the topology: the file, or for an object in
        # memory its kind and size (its class name alone, "Engine", told a reader nothing).
        self.source = (
            str(source)
            if isinstance(source, (str, os.PathLike))
            else f"{type(source).__name__} in memory: {len(self.location_ids):,} locations, "
            f"{len(self.server_ids):,} servers, {len(self.pool_ids):,} pools"
        )
        self.server_key = np.ascontiguousarray(a["server_key"], dtype=np.uint64)
        self.server_location = np.asarray(a["server_location"], dtype=np.int32)
        self.location_server_start = np.asarray(a["location_server_start"], dtype=np.int32)
        self.dc_server_start = np.asarray(a["dc_server_start"], dtype=np.int32)
        self.dc_location = np.asarray(a["dc_location"], dtype=np.int32)
        self.zone_pool = np.asarray(a["zone_pool"], dtype=np.int32)
        self.location_distance = np.asarray(a["location_distance"], dtype=np.float64)
        self.distance_unit: str = str(getattr(compiled, "distance_unit", "km"))
        self.zone_lookup: dict[str, int] = {z: int(self.zone_pool[k]) for k, z in enumerate(self.zone_ids)}
        self.pool_lookup: dict[str, int] = {p: k for k, p in enumerate(self.pool_ids)}
        self.server_lookup: dict[str, int] = {s: k for k, s in enumerate(self.server_ids)}

        # Colo codes: a location or a DC id -> (first server, end server, location). Exact id first;
        # a code matching no id exactly is tried upper-cased against upper-cased ids when that is
        # unambiguous (logs write "LHR", a hand-made topology may say "lhr").
        colo: dict[str, tuple[int, int, int]] = {}
        ls = self.location_server_start
        for k, loc in enumerate(self.location_ids):
            colo[loc] = (int(ls[k]), int(ls[k + 1]), k)
        ds = self.dc_server_start
        for k, dc in enumerate(self.dc_ids):
            colo.setdefault(dc, (int(ds[k]), int(ds[k + 1]), int(self.dc_location[k])))
        upper: dict[str, tuple[int, int, int] | None] = {}
        for key, val in colo.items():
            u = key.upper()
            upper[u] = val if u not in upper else None
        self.colo_lookup = colo
        self.colo_upper = {k: v for k, v in upper.items() if v is not None}
        # The same as codes: colo k is colo_first/colo_end/colo_location[k]; one sentinel entry more
        # (an empty range with no location) for rows whose colo is missing or unknown.
        colo_index = {c: k for k, c in enumerate(colo)}
        rows = list(colo.values()) + [(0, 0, -1)]
        self.colo_first = np.array([r[0] for r in rows], dtype=np.int32)
        self.colo_end = np.array([r[1] for r in rows], dtype=np.int32)
        self.colo_location = np.array([r[2] for r in rows], dtype=np.int32)
        self.colo_sentinel = len(colo)
        upper_all: dict[str, int | None] = {}
        for key, k in colo_index.items():
            u = key.upper()
            upper_all[u] = k if u not in upper_all else None
        upper_index = {u: k for u, k in upper_all.items() if k is not None}
        zone_lower: dict[str, int] = {}
        for z, p in self.zone_lookup.items():
            zone_lower.setdefault(z.lower(), p)
        self.colo_codes = Lookup(colo_index, lambda v: upper_index.get(v.upper()))
        self.zone_codes = Lookup(self.zone_lookup, lambda v: zone_lower.get(v.lower().rstrip(".")))
        self.server_codes = Lookup(self.server_lookup)
        self.pool_codes = Lookup(self.pool_lookup)

        # Coordinates for the flow map, where the topology model is at hand.
        topo_model = getattr(engine, "topology", None) or getattr(compiled, "topology", None)
        self.coords: dict[str, tuple[float, float]] = {}
        if topo_model is not None and hasattr(topo_model, "locations"):
            for loc in topo_model.locations:
                if loc.lat is not None and loc.lon is not None:
                    self.coords[loc.id] = (float(loc.lat), float(loc.lon))

        try:
            params = inspect.signature(engine.decide_batch).parameters
            self._takes_threads = "threads" in params or any(
                p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
            )
        except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
            self._takes_threads = True

    # ------------------------------------------------------------------------------------------
    def states(self) -> np.ndarray:
        st = getattr(self.engine, "states", None)
        if st is None:
            return np.asarray(self.compiled.arrays["server_initial_state"], dtype=np.uint8)
        return np.asarray(st, dtype=np.uint8)

    def decide(
        self,
        servers: np.ndarray,
        pools: np.ndarray,
        families: np.ndarray,
        flows: np.ndarray,
        threads: int | None,
    ) -> BatchResult:
        kwargs: dict[str, Any] = {"errors": "mark"}
        if self._takes_threads and threads is not None:
            kwargs["threads"] = threads
        return self.engine.decide_batch(servers, pools, families, flows, **kwargs)
