"""The offline world land outline that the report and the browser explorer draw their maps on.

One small public-domain file (Natural Earth 1:110m, see ``data/land/README.md``) ships with the
package, so a map never needs the network.
"""

from __future__ import annotations

import functools
import json
from importlib import resources

import numpy as np

LAND_RESOURCE = "ne_110m_land.json"


def land_json() -> str:
    """The outline file's text, as shipped (for pages that draw it in the browser)."""
    return resources.files("aegisfwd").joinpath("data").joinpath("land").joinpath(LAND_RESOURCE).read_text(encoding="utf-8")


@functools.lru_cache(maxsize=1)
def land_rings() -> tuple[np.ndarray, ...]:
    """Every land polygon ring as a read-only ``(n, 2)`` float array of (longitude, latitude) degrees."""
    rings = []
    for flat in json.loads(land_json())["rings"]:
        ring = np.asarray(flat, dtype=np.float64).reshape(-1, 2)
        ring.setflags(write=False)
        rings.append(ring)
    return tuple(rings)
