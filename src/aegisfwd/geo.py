"""Great-circle distance and the rounding every implementation compares on (docs/decision.md, "Distances and ties")."""

from __future__ import annotations

import math

import numpy as np

EARTH_RADIUS_KM = 6371.0088
DISTANCE_DECIMALS = 3


def round_distance(value: float) -> float:
    """Round a distance to three decimals, so that every implementation sees the same ties."""
    return round(float(value), DISTANCE_DECIMALS)


def round_distances(values: np.ndarray) -> np.ndarray:
    """``round_distance`` of every element, bit for bit, vectorised.

    Python's ``round`` is correctly rounded (the double nearest to the decimal nearest to the exact
    value), and so is ``rint(x * 1000) / 1000`` whenever ``x * 1000`` rounds to the same integer
    as the exact product would. It can only differ when the product lies within a rounding error
    of a half (or is too large for a float to hold its fraction): those few elements take
    ``round_distance`` itself.
    """
    scale = float(10**DISTANCE_DECIMALS)
    values = np.asarray(values, dtype=np.float64)
    scaled = values * scale
    out = np.rint(scaled) / scale
    with np.errstate(invalid="ignore"):
        risky = (np.abs(scaled - np.floor(scaled) - 0.5) < 1e-3) | (np.abs(scaled) >= 2.0**52)
    flat_out, flat_in = out.reshape(-1), values.reshape(-1)
    for k in np.flatnonzero(risky.reshape(-1) & np.isfinite(flat_in)).tolist():
        flat_out[k] = round_distance(flat_in[k])
    return out


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km (haversine, Earth radius 6371.0088 km), not rounded."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2.0 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))
