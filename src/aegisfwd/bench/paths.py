"""What is measured: each path prepared on a workload, ready to be timed, and how its answer is checked.

A ``Prepared`` path holds a ``run`` callable (the timed work: it decides ``rows`` requests of the
workload and returns whatever the path returns) and ``columns`` (untimed: turns that return value into
result columns for the agreement check). ``Bench`` builds paths and caches what they share per topology
(the compiled engine, the reference engine, the peers), so workloads on the same topology reuse them.

Paths (``path`` names in records):

* ``engine.decide_batch``: ``af.Engine.decide_batch(..., threads=t)`` on all rows;
* ``engine.decide[cython]``, ``engine.decide_indices[cython]``, ``engine.decide[pybind11]``: one call
  per row from Python through each scalar binding (``scalar_backends``), on the first ``scalar_rows``
  rows;
* ``shared.decide_batch`` and ``shared.decide[cython]``: the same calls on an ``af.SharedEngine``
  attached to a segment built from the workload's topology (derived tables and states in shared
  memory, as a worker process of a multi-process proxy would run it);
* ``reference.decide``: ``af.ReferenceEngine.decide`` per row, same rows;
* ``peer.python`` (full decision, per row, same rows), ``peer.numpy`` (full, vectorised, all rows),
  ``peer.numpy[tier+location]`` and ``peer.duckdb`` (tier + location, all rows; DuckDB on ``t``
  threads);
* ``evaluate``: ``af.evaluate`` end to end, from a Parquet log of the workload's requests
  (``log_table``) to a Parquet decisions file, on ``t`` threads.

Every path takes the workload's index columns (int32 server and pool, uint8 family, uint64 flow);
per-row paths get them as Python ints (converted before timing).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from .workloads import Workload

__all__ = [
    "FULL_COLUMNS",
    "TIER_LOCATION_COLUMNS",
    "Bench",
    "Prepared",
    "Unavailable",
    "all_cores",
    "compare_columns",
    "peers_package",
    "scalar_backends",
]

FULL_COLUMNS = ("tier", "server", "dc", "location", "ip", "distance")
TIER_LOCATION_COLUMNS = ("tier", "location", "distance")
Columns = dict[str, np.ndarray]


def all_cores() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def compared_columns(computes: str) -> tuple[str, ...]:
    return FULL_COLUMNS if computes == "full" else TIER_LOCATION_COLUMNS


def compare_columns(result: Columns, expected: Columns, computes: str, rows: int | None = None) -> bool:
    """True when ``result`` equals ``expected`` on the columns ``computes`` covers (first ``rows`` rows of
    both; NaN distances compare equal)."""
    for name in compared_columns(computes):
        a = np.asarray(result[name])
        b = np.asarray(expected[name])
        if rows is not None:
            a, b = a[:rows], b[:rows]
        if a.shape != b.shape or not np.array_equal(a, b, equal_nan=(name == "distance")):
            return False
    return True


def peers_package() -> ModuleType:
    """The peers package: ``benchmarks/peers`` of the source checkout this package runs from (so edits
    count without a rebuild), else the copy installed as ``aegisfwd._peers``."""
    name = "aegisfwd._peers"
    if name in sys.modules:
        return sys.modules[name]
    source = Path(__file__).resolve().parents[3] / "benchmarks" / "peers" / "__init__.py"
    if source.is_file():
        spec = importlib.util.spec_from_file_location(
            name, source, submodule_search_locations=[str(source.parent)]
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(name)


def peer_module(name: str) -> ModuleType:
    """``aegisfwd._peers.<name>`` (``pure_python``, ``numpy_peer``, ``duckdb_peer``)."""
    return importlib.import_module(f"{peers_package().__name__}.{name}")


def scalar_backends(engine: Any) -> dict[str, Callable[[int, int, int, int], Any]]:
    """The engine's scalar decision paths by path name, as callables on indices.

    * ``engine.decide[cython]``: ``engine.decide``, the public scalar call (``aegisfwd._fast``,
      returns a decision object);
    * ``engine.decide_indices[cython]``: ``engine.decide_indices``, the same call returning a plain
      tuple of indices (where the engine has it);
    * ``engine.decide[pybind11]``: ``decide`` of the pybind11 class ``aegisfwd._core.engine.Engine`` built on
      the same compiled arrays, states and kernel (returns a tuple of indices).

    An engine offering ``scalar_backends()`` answers for itself; one without a compiled core (the
    reference backend) offers its ``decide`` as ``engine.decide[reference]``.
    """
    backends = getattr(engine, "scalar_backends", None)
    if callable(backends):
        return {f"engine.decide[{k}]": f for k, f in backends().items()}
    if getattr(engine, "backend", None) != "compiled":
        return {"engine.decide[reference]": engine.decide}
    from .. import _core

    core = _core.engine.Engine(
        engine.compiled.arrays, np.ascontiguousarray(engine.states, np.uint8), engine.isa
    )
    out = {"engine.decide[cython]": engine.decide}
    if hasattr(engine, "decide_indices"):
        out["engine.decide_indices[cython]"] = engine.decide_indices
    out["engine.decide[pybind11]"] = core.decide
    return out


def _decisions_to_columns(answers: Sequence[Any]) -> Columns:
    """Columns from per-row answers: ``Decision`` objects or ``(tier, server, dc, location, ip, distance)``
    tuples of indices."""
    n = len(answers)
    out: Columns = {
        "tier": np.empty(n, np.uint8),
        **{k: np.empty(n, np.int32) for k in ("server", "dc", "location", "ip")},
        "distance": np.empty(n, np.float64),
    }
    for i, a in enumerate(answers):
        if isinstance(a, tuple):
            row = a
        else:
            row = (a.tier, a.server_index, a.dc_index, a.location_index, a.ip_index, a.distance)
        for name, v in zip(FULL_COLUMNS, row, strict=True):
            out[name][i] = v
    return out


def _strings(column: Any) -> Any:
    """A (possibly chunked, possibly dictionary-encoded) Arrow string column as one plain string array."""
    import pyarrow as pa

    return column.combine_chunks().cast(pa.string())


def pc_contains(column: Any, needle: str) -> np.ndarray:
    import pyarrow.compute as pc

    return np.asarray(pc.match_substring(_strings(column), needle).to_numpy(zero_copy_only=False), dtype=bool)


def _lookup(column: Any, index: dict[str, int]) -> np.ndarray:
    """int32 ``index[value]`` for every value of a (possibly dictionary-encoded) Arrow string column."""
    import pyarrow as pa

    encoded = column.combine_chunks()
    if not pa.types.is_dictionary(encoded.type):
        encoded = encoded.dictionary_encode()
    table = np.array([index[v] for v in encoded.dictionary.to_pylist()], np.int32)
    return table[encoded.indices.to_numpy(zero_copy_only=False)]


def log_table(w: Workload) -> Any:
    """The workload as a Logpush-style ``http_requests`` table (pyarrow) for ``af.evaluate``.

    ``EdgeColoCode`` is the location of the request's ingress server (the evaluator picks a server
    there), ``ZoneName`` the pool's first zone, ``OriginIP`` an address of the request's family,
    ``RayID`` the flow key in hex; timestamps one microsecond apart, response times up to 500 ms.
    """
    import pyarrow as pa

    t = w.topology
    r = w.requests
    n = len(w)
    first_zone: dict[str, str] = {}
    for zone, pool in t.zones.items():
        first_zone.setdefault(pool, zone)
    missing = [p for p in t.pool_ids if p not in first_zone]
    if missing:
        raise Unavailable(f"evaluate: pool {missing[0]!r} has no zone, so a log cannot name it")
    zones = pa.array([first_zone[p] for p in t.pool_ids], pa.string())
    location_of = np.repeat(
        np.arange(len(t.locations), dtype=np.int32),
        [b - a for a, b in t.location_server_ranges],
    )
    origins = pa.array(
        [f"198.51.100.{k + 1}" for k in range(250)] + [f"2001:db8:ffff::{k + 1:x}" for k in range(250)]
    )
    origin = (r.flow % np.uint64(250)).astype(np.int32) + np.where(r.family == 6, 250, 0).astype(np.int32)
    nibbles = (r.flow[:, None] >> (np.arange(60, -4, -4, dtype=np.uint64))[None, :]) & np.uint64(15)
    ray = np.frombuffer(b"0123456789abcdef", np.uint8)[nibbles.astype(np.intp)]
    return pa.table(
        {
            "RayID": pa.array(ray.reshape(-1).view("S16"), pa.binary(16)).cast(pa.string()),
            "EdgeColoCode": pa.DictionaryArray.from_arrays(location_of[r.server], pa.array(t.location_ids)),
            "ZoneName": pa.DictionaryArray.from_arrays(r.pool.astype(np.int32), zones),
            "OriginIP": pa.DictionaryArray.from_arrays(origin, origins),
            "EdgeStartTimestamp": pa.array(1_767_225_600_000_000_000 + 1000 * np.arange(n, dtype=np.int64)),
            "OriginResponseDurationMs": pa.array(
                ((r.flow >> np.uint64(32)) % np.uint64(500)).astype(np.int64)
            ),
        }
    )


class Unavailable(Exception):
    """A path that cannot run in this installation (the message says why)."""


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    import inspect

    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return True


@dataclass
class Prepared:
    """One path, ready to time on ``rows`` rows of ``workload``.

    ``columns`` turns what ``run`` returns into result columns, compared with the reference and the
    engine on the workload's requests. A path whose inputs are not the workload's columns (``evaluate``
    reads a log and derives them) brings its own ``check`` instead: result -> agrees.
    """

    path: str
    computes: str
    threads: int
    rows: int
    run: Callable[[], Any]
    columns: Callable[[Any], Columns] = field(default=lambda r: r)
    check: Callable[[Any], bool] | None = None


class Bench:
    """Builds paths on workloads; engines and peers are built once per topology and reused."""

    def __init__(self) -> None:
        self._cache: dict[tuple[int, str], Any] = {}
        self._topologies: dict[int, Any] = {}  # keep topologies alive so ids stay unique

    def shared(self, workload: Workload, what: str, build: Callable[[], Any]) -> Any:
        key = (id(workload.topology), what)
        if key not in self._cache:
            self._topologies[id(workload.topology)] = workload.topology
            self._cache[key] = build()
        return self._cache[key]

    # ---- shared objects ------------------------------------------------------------------------
    def engine(self, w: Workload) -> Any:
        import aegisfwd as af

        return self.shared(w, "engine", lambda: af.Engine(w.topology))

    def shared_engine(self, w: Workload) -> Any:
        """An ``af.SharedEngine`` attached to a segment of ``w``'s topology; the owner (kept with it)
        removes the segment when the ``Bench`` is dropped or the process exits."""
        import aegisfwd as af

        def build() -> Any:
            compiled = w.topology.compile()
            owner = af.SharedEngine.create(compiled)
            return owner, af.SharedEngine.attach(owner.name, compiled)

        return self.shared(w, "shared-engine", build)[1]

    def reference(self, w: Workload) -> Any:
        import aegisfwd as af

        return self.shared(w, "reference", lambda: af.ReferenceEngine(w.topology))

    def peer(self, w: Workload, kind: str) -> Any:
        """``python``, ``numpy``, ``numpy[tier+location]`` or ``duckdb``."""
        if kind == "python":
            return self.shared(w, kind, lambda: peer_module("pure_python").PurePythonPeer(w.topology))
        if kind == "numpy":
            return self.shared(w, kind, lambda: peer_module("numpy_peer").NumpyPeer(w.topology))
        if kind == "numpy[tier+location]":
            full = self.peer(w, "numpy")
            return self.shared(w, kind, lambda: full.with_computes("tier+location"))
        if kind == "duckdb":
            return self.shared(w, kind, lambda: peer_module("duckdb_peer").DuckDBPeer(w.topology))
        raise ValueError(f"unknown peer {kind!r}")

    # ---- expected answers --------------------------------------------------------------------
    def reference_columns(self, w: Workload, rows: int) -> Columns:
        """``ReferenceEngine.decide_batch`` on the first ``rows`` requests."""
        h = w.head(rows)
        return self.reference(w).decide_batch(*h.columns).columns()

    # ---- paths ---------------------------------------------------------------------------------
    def batch(self, w: Workload, threads: int) -> Prepared:
        engine = self.engine(w)
        cols = w.columns
        kwargs = {"threads": threads}
        if not _accepts(engine.decide_batch, "threads"):
            if threads != 1:
                raise Unavailable(f"{type(engine).__name__}.decide_batch has no threads argument")
            kwargs = {}

        def run() -> Any:
            return engine.decide_batch(*cols, **kwargs)

        return Prepared("engine.decide_batch", "full", threads, len(w), run, lambda r: r.columns())

    def shared_batch(self, w: Workload, threads: int) -> Prepared:
        engine = self.shared_engine(w)
        cols = w.columns

        def run() -> Any:
            return engine.decide_batch(*cols, threads=threads)

        return Prepared("shared.decide_batch", "full", threads, len(w), run, lambda r: r.columns())

    def shared_scalar(self, w: Workload, rows: int) -> Prepared:
        h = w.head(rows)
        args = list(zip(*(c.tolist() for c in h.columns), strict=True))
        decide = self.shared_engine(w).decide

        def run() -> list[Any]:
            return [decide(s, p, f, h) for s, p, f, h in args]

        return Prepared("shared.decide[cython]", "full", 1, len(h), run, _decisions_to_columns)

    def scalar(self, w: Workload, rows: int) -> list[Prepared]:
        """Every scalar path of the engine (``scalar_backends``), then ``reference.decide``."""
        h = w.head(rows)
        args = list(zip(*(c.tolist() for c in h.columns), strict=True))
        out = []
        named = list(scalar_backends(self.engine(w)).items())
        named.append(("reference.decide", self.reference(w).decide))
        for name, decide in named:

            def run(decide: Callable[..., Any] = decide) -> list[Any]:
                return [decide(s, p, f, h) for s, p, f, h in args]

            out.append(Prepared(name, "full", 1, len(h), run, _decisions_to_columns))
        return out

    def scalar_path(self, w: Workload, rows: int, name: str) -> Prepared:
        """One of ``scalar``'s paths by name; ``Unavailable`` when the engine has no such backend."""
        for p in self.scalar(w, rows):
            if p.path == name:
                return p
        offered = ", ".join(scalar_backends(self.engine(w)))
        raise Unavailable(f"{name}: {type(self.engine(w)).__name__} offers the scalar paths: {offered}")

    def evaluate(self, w: Workload, folder: Path, threads: int, check_rows: int) -> Prepared:
        """``af.evaluate`` end to end: a Parquet request log (``log_table``) in, a Parquet decisions file out.

        The engine is built beforehand (as a service would hold it); the timed call reads the log,
        parses it, picks ingress servers, decides and writes the decisions. The check reads the output
        back and compares every row with the engine's batch answer on the inputs the evaluator derived
        (ingress server from the output, pool from ZoneName, family from OriginIP, flow key from RayID
        as docs/evaluate.md defines it), and the first ``check_rows`` rows with ``ReferenceEngine``.
        """
        try:
            import pyarrow.parquet as pq

            import aegisfwd as af
            from aegisfwd.evaluation._arrow import flow_keys
        except ImportError as exc:
            raise Unavailable(f"evaluate: {exc} (pip install 'aegisfwd[analysis]')") from None
        engine = self.engine(w)
        log = folder / f"{w.name}-{len(w)}-log.parquet"
        out = folder / f"{w.name}-{len(w)}-{threads}t-decisions.parquet"
        if not log.exists():
            pq.write_table(log_table(w), log)

        def run() -> Any:
            return af.evaluate(str(log), engine, output=str(out), threads=threads, progress=False)

        def check(ev: Any) -> bool:

            got = ev.decisions
            n = got.num_rows
            if ev.summary.rows_in != len(w) or n != len(w):
                return False
            ray = _strings(got.column("RayID"))
            if not ray.equals(_strings(pq.read_table(log, columns=["RayID"]).column("RayID"))):
                return False  # not in input order
            server_of = {sid: k for k, sid in enumerate(engine.servers)}
            pool_of = {pid: k for k, pid in enumerate(engine.pools)}
            zone_pool = {z: pool_of[p] for z, p in w.topology.zones.items()}
            server = _lookup(got.column("ingress_server"), server_of)
            pool = _lookup(got.column("ZoneName"), zone_pool)
            family = np.where(pc_contains(got.column("OriginIP"), ":"), 6, 4).astype(np.uint8)
            flow, ok = flow_keys(None, None, ray, n)
            if not ok.all():
                return False
            want = engine.decide_batch(server, pool, family, flow).to_arrow()
            head = min(n, check_rows)
            ref = (
                self.reference(w)
                .decide_batch(server[:head], pool[:head], family[:head], flow[:head])
                .to_arrow()
            )
            pairs = (
                ("tier", "tier"),
                ("egress_server", "server"),
                ("egress_dc", "dc"),
                ("egress_location", "location"),
                ("egress_ip", "ip"),
            )
            for mine, theirs in pairs:
                a = _strings(got.column(mine))
                if not a.equals(_strings(want.column(theirs))):
                    return False
                if not a.slice(0, head).equals(_strings(ref.column(theirs))):
                    return False
            d = got.column("distance").to_numpy()
            return np.array_equal(d, want.column("distance").to_numpy(), equal_nan=True) and np.array_equal(
                d[:head], ref.column("distance").to_numpy(), equal_nan=True
            )

        return Prepared("evaluate", "full", threads, len(w), run, check=check)

    def python_peer(self, w: Workload, rows: int) -> Prepared:
        peer = self.peer(w, "python")
        h = w.head(rows)
        return Prepared("peer.python", peer.computes, 1, len(h), lambda: peer.decide_batch(*h.columns))

    def numpy_peer(self, w: Workload, computes: str = "full") -> Prepared:
        kind = "numpy" if computes == "full" else "numpy[tier+location]"
        peer = self.peer(w, kind)
        cols = w.columns
        return Prepared(f"peer.{kind}", peer.computes, 1, len(w), lambda: peer.decide_batch(*cols))

    def duckdb_peer(self, w: Workload, threads: int) -> Prepared:
        peer = self.peer(w, "duckdb")
        cols = w.columns

        def run() -> Columns:
            peer.set_threads(threads)
            return peer.decide_batch(*cols)

        return Prepared("peer.duckdb", peer.computes, threads, len(w), run)
