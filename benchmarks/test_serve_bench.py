"""The explorer's latency, measured from its HTTP API on loopback (what the page waits for), and the
page's time to first paint in headless chromium.

* ``serve | state change``: ``POST /api/states`` setting a location down, then up again (alternating
  rounds), on the built-in world with ``AEGISFWD_BENCH_EVAL_N`` loaded rows (1,000,000 timed): apply,
  re-choose the ingress of the touched colos, re-decide the touched rows, summarise, answer.
* ``serve | placement move``: ``POST /api/placement`` adding, then removing, a location as holder of
  an IPv4 address of the busiest pool (compile the moved pool against the cached skeleton, re-decide
  its rows, summarise, answer).
* ``serve | first paint``: navigation to the page until the map, lines and tier mix are drawn
  (``performance.mark('aegisfwd-drawn')``), and the browser's first contentful paint.

Every answer is checked (tier counts add up to the loaded rows; the change is visible in them).
``AEGISFWD_SERVE_SCREENSHOT=path.png`` also saves a screenshot of the page with a location down, a
pool picked and the baseline comparison on (how docs/serve.png is made).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("aiohttp")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from cdp import CHROMIUM, browser
from serve_helpers import running

import aegisfwd as af
from aegisfwd.serve import Session, sample_rows

LOCATION = "FRA"


def _post(base: str, path: str, body: dict) -> dict:
    req = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def served(sizes):
    world = af.datasets.world(seed=0)
    engine = af.Engine(world)
    session = Session(world, sample_rows(world, engine.compiled, sizes.eval_n), engine=engine, threads=2)
    with running(session, title="aegisfwd explorer: built-in world") as base:
        yield base, session


def _check(summary: dict, rows: int) -> None:
    assert sum(summary["tiers"].values()) == rows == summary["scope"]["rows"]


def test_state_change(benchmark, served, sizes):
    base, session = served
    rows = len(session.rows)
    flip = {"n": 0}

    def change() -> dict:
        flip["n"] += 1
        return _post(base, "/api/states", {"states": {LOCATION: "down" if flip["n"] % 2 else "up"}})

    benchmark.group = f"serve | state change | {rows:,} rows"
    s = benchmark.pedantic(change, rounds=max(sizes.rounds, 1) * 10, iterations=1, warmup_rounds=1)
    _check(s, rows)
    _post(base, "/api/reset", {})
    down = _post(base, "/api/states", {"states": {LOCATION: "down"}})
    assert down["location_states"][LOCATION][0] == 0 and down["changed"]["rows_changed_egress"] > 0
    benchmark.extra_info["server_timings_ms"] = down["timings_ms"]
    _post(base, "/api/reset", {})


def _movable(session: Session) -> tuple[str, str, list[str]]:
    """(pool, IPv4 address, locations it is not in) in the busiest pool whose address sits in < 4 locations."""
    start = session.rows.pool_start
    for p in sorted(range(len(session.pool_ids)), key=lambda p: -(start[p + 1] - start[p])):
        for ip in session.topology.pools[p].ips:
            locs = session.book.holder_locations(ip.holders)
            if ip.family == 4 and len(locs) < 4:
                return (
                    session.pool_ids[p],
                    ip.address,
                    [loc for loc in session.location_ids if loc not in locs],
                )
    raise AssertionError("no movable address")


def test_placement_move(benchmark, served, sizes):
    """Each timed move adds a location never tried before (a compile); the previous one is taken back
    untimed in between."""
    base, session = served
    rows = len(session.rows)
    pool, address, spare = _movable(session)
    state = {"i": 0, "added": None}

    def setup() -> None:
        if state["added"] is not None:
            _post(base, "/api/placement", {"address": address, "remove": [state["added"]]})
        state["added"] = spare[state["i"] % len(spare)]
        state["i"] += 1

    def move() -> dict:
        return _post(base, "/api/placement", {"address": address, "add": [state["added"]]})

    benchmark.group = f"serve | placement move | {rows:,} rows"
    s = benchmark.pedantic(move, setup=setup, rounds=max(sizes.rounds, 1) * 5, iterations=1)
    _check(s, rows)
    assert s["timings_ms"]["compiled"] == 1.0
    p = session.pool_ids.index(pool)
    benchmark.extra_info["pool_rows"] = int(session.rows.pool_start[p + 1] - session.rows.pool_start[p])
    benchmark.extra_info["server_timings_ms"] = s["timings_ms"]
    _post(base, "/api/reset", {})


def test_placement_move_again(benchmark, served, sizes):
    """The same move taken back and made again: the moved-pools engines of recent placements are kept."""
    base, session = served
    rows = len(session.rows)
    _, address, spare = _movable(session)
    flip = {"n": 0}

    def move() -> dict:
        flip["n"] += 1
        return _post(
            base, "/api/placement", {"address": address, ("add" if flip["n"] % 2 else "remove"): [spare[0]]}
        )

    benchmark.group = f"serve | placement move | {rows:,} rows"
    s = benchmark.pedantic(move, rounds=max(sizes.rounds, 1) * 10, iterations=1, warmup_rounds=2)
    _check(s, rows)
    assert s["timings_ms"]["compiled"] == 0.0
    benchmark.extra_info["server_timings_ms"] = s["timings_ms"]
    _post(base, "/api/reset", {})


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian package 'chromium')")
def test_first_paint(benchmark, served, tmp_path):
    base, session = served
    marks: list[dict] = []

    async def paint() -> None:
        async with browser(base + "/", tmp_path / "profile") as page:
            await page.open()
            marks.append(
                await page.js(
                    "({drawn: performance.getEntriesByName('aegisfwd-drawn')[0].startTime,"
                    " fcp: (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime})"
                )
            )
            shot = os.environ.get("AEGISFWD_SERVE_SCREENSHOT")
            if shot:
                await screenshot(page, session, Path(shot))

    benchmark.group = "serve | first paint"
    benchmark.pedantic(lambda: asyncio.run(asyncio.wait_for(paint(), 180)), rounds=1, iterations=1)
    assert marks and marks[0]["drawn"] > 0
    benchmark.extra_info["drawn_ms"] = round(marks[0]["drawn"], 1)
    benchmark.extra_info["first_contentful_paint_ms"] = round(marks[0]["fcp"] or 0, 1)
    print(
        f"\nfirst paint: map drawn {marks[0]['drawn']:.0f} ms, first contentful paint {marks[0]['fcp']:.0f} ms"
    )


async def screenshot(page, session: Session, path: Path) -> None:
    """The page as docs/serve.md shows it: a pool picked, a location down, compared with the baseline."""
    pool = session.topology.pools[0]
    await page.js(
        f"document.getElementById('scope').value = {json.dumps(pool.id)};"
        "document.getElementById('scope').dispatchEvent(new Event('change'))"
    )
    await page.wait_for(f"document.getElementById('scope-info').textContent.includes({json.dumps(pool.id)})")
    loc = session.book.holder_locations(pool.ips[0].holders)[0]
    await page.click(f'#locs circle[data-loc="{loc}"]')
    await page.wait_for("!document.getElementById('loc-card').hidden")
    version = int(await page.js("document.body.dataset.version"))
    await page.click("#loc-down")
    await page.wait_for(
        f"+document.body.dataset.version > {version} && document.body.dataset.pending === '0'"
    )
    await page.click("#compare")
    await asyncio.sleep(0.3)
    await page.screenshot(path)
