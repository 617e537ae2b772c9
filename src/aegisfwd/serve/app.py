"""The explorer's web application (aiohttp): one page, its static assets, and a JSON API.

Every change runs on one worker thread (a single-thread executor), so changes are applied in the
order they arrive and the event loop stays free to answer other requests meanwhile. Input errors
(malformed JSON, unknown ids, invalid states, placement moves that break a rule) are answered 400
with ``{"error": message}``; unknown paths 404, wrong methods 405, oversized bodies 413, all as JSON.
The API is documented in docs/serve.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Any

import numpy as np
from aiohttp import web

from ..errors import AegisError, UnknownIdError
from ..land import land_json
from ..topology import STATE_NAMES
from .placement import PlacementMove
from .session import Session
from .summary import summarize

log = logging.getLogger("aegisfwd.serve")

STATIC_FILES = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}
MAX_BODY_BYTES = 1 << 20
TOP_POOLS = 40
SEARCH_LIMIT = 50

SESSION = web.AppKey("session", Session)
EXECUTOR = web.AppKey("executor", ThreadPoolExecutor)
INDEX = web.AppKey("index", dict)


class BadRequest(AegisError, ValueError):
    """A request the API cannot act on (malformed JSON, a wrong field); answered 400."""


def _static(name: str) -> bytes:
    return resources.files("aegisfwd.serve").joinpath("static").joinpath(name).read_bytes()


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        text=json.dumps(data, separators=(",", ":")),
        status=status,
        content_type="application/json",
        headers=headers,
    )


@web.middleware
async def errors_as_json(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _json(
            {"error": exc.reason if exc.text is None or exc.text.startswith(f"{exc.status}:") else exc.text},
            status=exc.status,
        )
    except (AegisError, ValueError, TypeError, KeyError) as exc:
        message = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        return _json({"error": message}, status=400)


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        doc = json.loads(raw or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"malformed JSON body: {exc}") from None
    if not isinstance(doc, dict):
        raise BadRequest("the body must be a JSON object")
    return doc


async def _run(request: web.Request, fn: Callable[[], Any]) -> Any:
    return await asyncio.get_running_loop().run_in_executor(request.app[EXECUTOR], fn)


def _scope(request: web.Request) -> int | None:
    """The pool a request is scoped to: ``?pool=ID`` or ``?zone=NAME``; none means every row."""
    session = request.app[SESSION]
    pool, zone = request.query.get("pool"), request.query.get("zone")
    if pool and zone:
        raise BadRequest("give pool= or zone=, not both")
    if pool:
        index = session.topology.pool_index.get(pool)
        if index is None:
            raise UnknownIdError("pool", pool)
        return index
    if zone:
        pool_id = session.topology.zones.get(zone)
        if pool_id is None:
            raise UnknownIdError("zone", zone)
        return session.topology.pool_index[pool_id]
    return None


def _summary(session: Session, pool: int | None, t0: float) -> dict[str, Any]:
    with session.lock:
        out = summarize(session, pool)
        out["location_states"] = location_states(session)
    out["timings_ms"]["total"] = round((time.perf_counter() - t0) * 1e3, 2)
    return out


def location_states(session: Session) -> dict[str, list[int]]:
    """[up, draining, down] server counts of every location that has a server not up."""
    n_loc = len(session.location_ids)
    counts = np.bincount(
        session.server_location.astype(np.int64) * 3 + session.states, minlength=3 * n_loc
    ).reshape(n_loc, 3)
    rows = np.flatnonzero(counts[:, 1:].sum(axis=1))
    return {session.location_ids[k]: counts[k].tolist() for k in rows.tolist()}


# ---- handlers ----------------------------------------------------------------------------------
async def page(request: web.Request) -> web.Response:
    return web.Response(body=_static("index.html"), content_type="text/html", charset="utf-8")


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in STATIC_FILES:
        raise web.HTTPNotFound(text=f"no static file {name!r}")
    return web.Response(body=_static(name), content_type=STATIC_FILES[name], charset="utf-8")


async def land(request: web.Request) -> web.Response:
    return web.Response(
        text=land_json(), content_type="application/json", headers={"Cache-Control": "max-age=86400"}
    )


async def meta(request: web.Request) -> web.Response:
    session = request.app[SESSION]
    return _json(request.app[INDEX]["meta"] | {"moves": len(session.moves)})


async def location(request: web.Request) -> web.Response:
    session = request.app[SESSION]
    topo = session.topology
    loc = request.match_info["id"]
    if loc not in topo.location_index:
        raise UnknownIdError("location", loc)
    states = session.states
    dcs = []
    for dc in topo.ordered_data_centers:
        if dc.location != loc:
            continue
        a = topo.holder_range(dc.id)[0]
        dcs.append(
            {"id": dc.id, "servers": [[s, STATE_NAMES[int(states[a + k])]] for k, s in enumerate(dc.servers)]}
        )
    info = request.app[INDEX]["locations"][topo.location_index[loc]]
    return _json({"id": loc, "name": info.get("name"), "data_centers": dcs})


async def pools(request: web.Request) -> web.Response:
    index = request.app[INDEX]
    q = request.query.get("q", "").strip().lower()
    try:
        limit = max(1, min(int(request.query.get("limit", SEARCH_LIMIT)), 500))
    except ValueError:
        raise BadRequest("limit must be an integer") from None
    rows = index["pool_rows"]
    if not q:
        return _json({"pools": index["top_pools"][:limit]})
    hits: dict[int, str | None] = {}
    for p, pid in enumerate(request.app[SESSION].pool_ids):
        if q in pid.lower():
            hits.setdefault(p, None)
    for zone, p in index["zone_items"]:
        if q in zone.lower():
            hits.setdefault(p, zone)
    ranked = sorted(hits, key=lambda p: (-int(rows[p]), p))[:limit]
    return _json({"pools": [_pool_brief(index, request.app[SESSION], p, hits[p]) for p in ranked]})


def _pool_brief(index: dict[str, Any], session: Session, p: int, zone: str | None = None) -> dict[str, Any]:
    zones = index["pool_zones"].get(p, [])
    return {
        "id": session.pool_ids[p],
        "rows": int(index["pool_rows"][p]),
        "zone": zone,
        "zones": zones[:5],
        "n_zones": len(zones),
    }


async def pool(request: web.Request) -> web.Response:
    session = request.app[SESSION]
    p = session.topology.pool_index.get(request.match_info["id"])
    if p is None:
        raise UnknownIdError("pool", request.match_info["id"])
    ips = [
        {
            "address": ip.address,
            "family": ip.family,
            "holders": list(ip.holders),
            "locations": list(session.book.holder_locations(ip.holders)),
        }
        for ip in session.topology.pools[p].ips
    ]
    return _json(_pool_brief(request.app[INDEX], session, p) | {"ips": ips})


async def summary(request: web.Request) -> web.Response:
    scope = _scope(request)
    t0 = time.perf_counter()
    session = request.app[SESSION]
    return _json(await _run(request, lambda: _summary(session, scope, t0)))


async def summary_download(request: web.Request) -> web.Response:
    scope = _scope(request)
    session = request.app[SESSION]
    out = await _run(request, lambda: _summary(session, scope, time.perf_counter()))
    out["changed_states"] = await _run(request, session.changed_states)
    return web.Response(
        text=json.dumps(out, indent=1),
        content_type="application/json",
        headers={"Content-Disposition": 'attachment; filename="summary.json"'},
    )


async def set_states(request: web.Request) -> web.Response:
    scope = _scope(request)
    doc = await _body(request)
    states = doc.get("states")
    if set(doc) - {"states"}:
        raise BadRequest(f"unknown field(s): {', '.join(sorted(set(doc) - {'states'}))}")
    session = request.app[SESSION]
    t0 = time.perf_counter()

    def work() -> dict[str, Any]:
        session.set_states(states)  # type: ignore[arg-type]
        return _summary(session, scope, t0)

    return _json(await _run(request, work))


async def placement(request: web.Request) -> web.Response:
    scope = _scope(request)
    doc = await _body(request)
    unknown = set(doc) - {"address", "add", "remove"}
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(sorted(unknown))}")
    move = PlacementMove(doc.get("address"), doc.get("add", []), doc.get("remove", []))  # type: ignore[arg-type]
    session = request.app[SESSION]
    t0 = time.perf_counter()

    def work() -> dict[str, Any]:
        session.move(move)
        return _summary(session, scope, t0)

    return _json(await _run(request, work))


async def reset(request: web.Request) -> web.Response:
    scope = _scope(request)
    session = request.app[SESSION]
    t0 = time.perf_counter()

    def work() -> dict[str, Any]:
        session.reset()
        return _summary(session, scope, t0)

    return _json(await _run(request, work))


async def topology_yaml(request: web.Request) -> web.Response:
    import yaml

    session = request.app[SESSION]

    def work() -> str:
        with session.lock:
            doc = session.topology_now().to_dict()
        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        return str(yaml.dump(doc, Dumper=dumper, sort_keys=False, default_flow_style=None, width=120))

    return web.Response(
        text=await _run(request, work),
        content_type="application/yaml",
        headers={"Content-Disposition": 'attachment; filename="topology.yaml"'},
    )


# ---- assembly ----------------------------------------------------------------------------------
def _index(session: Session, title: str) -> dict[str, Any]:
    """What the page needs once: locations with coordinates, the busiest pools, zones per pool."""
    topo = session.topology
    dcs_of: dict[str, int] = {}
    for dc in topo.data_centers:
        dcs_of[dc.location] = dcs_of.get(dc.location, 0) + 1
    locations = []
    for k, loc in enumerate(topo.locations):
        a, b = topo.location_server_ranges[k]
        locations.append(
            {
                "id": loc.id,
                "name": loc.name,
                "lat": loc.lat,
                "lon": loc.lon,
                "dcs": dcs_of.get(loc.id, 0),
                "servers": b - a,
            }
        )
    rows = session.rows
    pool_rows = np.diff(rows.pool_start)
    pool_zones: dict[int, list[str]] = {}
    zone_items = []
    for zone, pid in topo.zones.items():
        p = topo.pool_index[pid]
        pool_zones.setdefault(p, []).append(zone)
        zone_items.append((zone, p))
    index: dict[str, Any] = {
        "locations": locations,
        "pool_rows": pool_rows,
        "pool_zones": pool_zones,
        "zone_items": zone_items,
    }
    top = np.argsort(-pool_rows, kind="stable")[:TOP_POOLS]
    index["top_pools"] = [_pool_brief(index, session, p) for p in top.tolist() if pool_rows[p] > 0]
    index["meta"] = {
        "title": title,
        "locations": locations,
        "distance_unit": session.compiled.distance_unit,
        "n_servers": len(session.server_ids),
        "n_pools": len(session.pool_ids),
        "n_zones": len(topo.zones),
        "rows": {
            "source": rows.source,
            "rows": len(rows),
            "rows_read": rows.rows_read,
            "rejects": rows.rejects,
            "errors": rows.errors,
            "bytes": rows.nbytes + session.baseline.nbytes + session.current.nbytes,
        },
        "top_pools": index["top_pools"],
    }
    return index


def create_app(session: Session, *, title: str = "aegisfwd explorer") -> web.Application:
    app = web.Application(middlewares=[errors_as_json], client_max_size=MAX_BODY_BYTES)
    app[SESSION] = session
    app[EXECUTOR] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aegisfwd-serve")
    app[INDEX] = _index(session, title)

    async def shutdown(app: web.Application) -> None:
        app[EXECUTOR].shutdown(wait=False, cancel_futures=True)

    app.on_shutdown.append(shutdown)
    app.router.add_get("/", page)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/api/land", land)
    app.router.add_get("/api/meta", meta)
    app.router.add_get("/api/location/{id}", location)
    app.router.add_get("/api/pools", pools)
    app.router.add_get("/api/pool/{id}", pool)
    app.router.add_get("/api/summary", summary)
    app.router.add_get("/api/summary.json", summary_download)
    app.router.add_post("/api/states", set_states)
    app.router.add_post("/api/placement", placement)
    app.router.add_post("/api/reset", reset)
    app.router.add_get("/api/topology.yaml", topology_yaml)
    return app
