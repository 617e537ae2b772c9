"""Great-circle distance and the rounding every implementation compares on (docs/decision.md, "Distances and ties")."""

from __future__ import annotations

import math

EARTH_RADIUS_KM = 6371.0088
DISTANCE_DECIMALS = 3


def round_distance(value: float) -> float:
    """Round a distance to three decimals, so that every implementation sees the same ties."""
    return round(float(value), DISTANCE_DECIMALS)


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km (haversine, Earth radius 6371.0088 km), not rounded."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2.0 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))
