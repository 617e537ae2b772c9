"""The shipped land outline: present, well-formed, and covering the continents where they are."""

import numpy as np

from aegisfwd.land import land_json, land_rings


def test_rings_are_closed_lon_lat_polygons():
    rings = land_rings()
    assert len(rings) > 200
    for ring in rings:
        assert ring.shape[1] == 2 and len(ring) >= 4
        assert np.all(np.abs(ring[:, 0]) <= 180.0) and np.all(np.abs(ring[:, 1]) <= 90.0)
        assert np.allclose(ring[0], ring[-1])


def test_outline_covers_known_places():
    # A point inside a ring (even-odd rule) for London and none for the mid-Atlantic.
    def on_land(lon: float, lat: float) -> bool:
        inside = False
        for ring in land_rings():
            x, y = ring[:, 0], ring[:, 1]
            x2, y2 = np.roll(x, -1), np.roll(y, -1)
            crosses = (y > lat) != (y2 > lat)
            with np.errstate(divide="ignore", invalid="ignore"):
                at = x + (lat - y) * (x2 - x) / (y2 - y)
            inside ^= bool(np.count_nonzero(crosses & (lon < at)) % 2)
        return inside

    assert on_land(-0.12, 51.5)  # London
    assert on_land(139.7, 35.7)  # Tokyo
    assert not on_land(-35.0, 35.0)  # North Atlantic
    assert "Natural Earth" in land_json()
