"""The explorer page in headless chromium: it draws, and a location set down by clicking in the page
shows the tier mix that af.Engine computes for that state."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("aiohttp")

from cdp import CHROMIUM, browser
from serve_helpers import running

import aegisfwd as af
from aegisfwd.serve import Session, log_rows

LOGS = Path(__file__).parent / "fixtures" / "logs"
TOPOLOGY = LOGS / "topology.yaml"
TIERS = ("LOCAL", "SAME_DC", "SAME_LOCATION", "REMOTE", "UNAVAILABLE")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (Debian package 'chromium': apt-get install -y chromium)"
)


def engine_tiers(session: Session, states: dict[str, str]) -> dict[str, int]:
    engine = af.Engine(af.load_topology(TOPOLOGY))
    for target, state in states.items():
        engine.set_state(target, state)
    rows = session.rows
    ingress = rows.ingress(engine.compiled.arrays["server_key"], engine.states)
    counts = np.bincount(engine.decide_batch(ingress, rows.pool, rows.family, rows.flow).tier, minlength=5)
    return {t: int(counts[i]) for i, t in enumerate(TIERS)}


SHOWN_TIERS = "Object.fromEntries([...document.querySelectorAll('#tiers tbody tr')].map(r => [r.dataset.tier, +r.dataset.rows]))"


def test_click_a_location_down(tmp_path):
    topo = af.load_topology(TOPOLOGY)
    engine = af.Engine(topo)
    session = Session(topo, log_rows(LOGS / "basic.csv", engine.compiled), engine=engine, threads=1)
    before, after = engine_tiers(session, {}), engine_tiers(session, {"JFK": "down"})
    assert before != after  # the check below can tell them apart

    async def drive(base: str) -> None:
        async with browser(base + "/", tmp_path / "profile") as page:
            await page.open()
            assert await page.js(SHOWN_TIERS) == before
            assert await page.js("document.querySelectorAll('#locs circle').length") == 3
            assert await page.js("document.getElementById('land').getAttribute('d').length") > 10_000
            version = int(await page.js("document.body.dataset.version"))
            await page.click('#locs circle[data-loc="JFK"]')
            await page.wait_for(
                "!document.getElementById('loc-card').hidden && "
                "document.getElementById('loc-name').textContent.startsWith('JFK')"
            )
            await page.click("#loc-down")
            await page.wait_for(
                f"+document.body.dataset.version > {version} && document.body.dataset.pending === '0'"
            )
            assert await page.js(SHOWN_TIERS) == after
            assert await page.js(
                "document.querySelector('#locs circle[data-loc=\"JFK\"]').classList.contains('down')"
            )
            assert await page.js("document.querySelector('#loc-down').classList.contains('active')")
            await page.screenshot(tmp_path / "explorer.png")
        assert (tmp_path / "explorer.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    with running(session) as base:
        asyncio.run(asyncio.wait_for(drive(base), 120))
    assert session.changed_states() == {"jfk01-s1": "down", "jfk01-s2": "down"}
