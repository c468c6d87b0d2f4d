"""Regions the simulator uses (ISO 3166-2 codes) with coordinates, time zones and currencies.

Transactions carry only a region code in ``geo_location``; features such as "distance from the
previous transaction" or "impossible travel" need coordinates for it. This table is the single
source for both the simulator and the feature code. Regions outside it are legitimate input (any
client may produce to the topic), so every lookup here answers "unknown" (None or NaN) for them
instead of raising.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

EARTH_RADIUS_KM = 6371.0088


class Region(NamedTuple):
    """One ISO 3166-2 region: a representative city's coordinates and its standard UTC offset."""

    country: str
    name: str
    lat: float
    lon: float
    utc_offset_hours: float


# Coordinates are of the region's main city; UTC offsets ignore daylight saving time, which is
# plenty for time-of-day features and keeps local time a pure function of the region.
REGIONS: dict[str, Region] = {
    "IN-MH": Region("IN", "Maharashtra", 19.076, 72.878, 5.5),
    "IN-DL": Region("IN", "Delhi", 28.614, 77.209, 5.5),
    "IN-KA": Region("IN", "Karnataka", 12.972, 77.595, 5.5),
    "IN-TN": Region("IN", "Tamil Nadu", 13.083, 80.271, 5.5),
    "IN-WB": Region("IN", "West Bengal", 22.573, 88.364, 5.5),
    "IN-TG": Region("IN", "Telangana", 17.385, 78.487, 5.5),
    "IN-GJ": Region("IN", "Gujarat", 23.023, 72.571, 5.5),
    "IN-UP": Region("IN", "Uttar Pradesh", 26.847, 80.947, 5.5),
    "US-CA": Region("US", "California", 34.052, -118.244, -8.0),
    "US-NY": Region("US", "New York", 40.713, -74.006, -5.0),
    "US-TX": Region("US", "Texas", 29.760, -95.370, -6.0),
    "US-FL": Region("US", "Florida", 25.762, -80.192, -5.0),
    "US-IL": Region("US", "Illinois", 41.878, -87.630, -6.0),
    "US-WA": Region("US", "Washington", 47.606, -122.332, -8.0),
    "US-MA": Region("US", "Massachusetts", 42.360, -71.059, -5.0),
    "GB-ENG": Region("GB", "England", 51.507, -0.128, 0.0),
    "GB-SCT": Region("GB", "Scotland", 55.953, -3.189, 0.0),
    "GB-WLS": Region("GB", "Wales", 51.481, -3.179, 0.0),
    "DE-BE": Region("DE", "Berlin", 52.520, 13.405, 1.0),
    "DE-BY": Region("DE", "Bavaria", 48.135, 11.582, 1.0),
    "DE-HH": Region("DE", "Hamburg", 53.551, 9.994, 1.0),
    "DE-NW": Region("DE", "North Rhine-Westphalia", 50.938, 6.960, 1.0),
    "BR-SP": Region("BR", "Sao Paulo", -23.551, -46.633, -3.0),
    "BR-RJ": Region("BR", "Rio de Janeiro", -22.907, -43.173, -3.0),
    "BR-MG": Region("BR", "Minas Gerais", -19.917, -43.935, -3.0),
    "BR-DF": Region("BR", "Distrito Federal", -15.794, -47.882, -3.0),
    "SG-01": Region("SG", "Central Singapore", 1.290, 103.852, 8.0),
    "SG-04": Region("SG", "South East", 1.352, 103.944, 8.0),
    "AE-DU": Region("AE", "Dubai", 25.205, 55.271, 4.0),
    "AE-AZ": Region("AE", "Abu Dhabi", 24.454, 54.377, 4.0),
}

REGION_COORDINATES: dict[str, tuple[float, float]] = {
    code: (region.lat, region.lon) for code, region in REGIONS.items()
}

COUNTRY_CURRENCY: dict[str, str] = {
    "IN": "INR",
    "US": "USD",
    "GB": "GBP",
    "DE": "EUR",
    "BR": "BRL",
    "SG": "SGD",
    "AE": "AED",
}

# Fixed rates, units of currency per US dollar. Amounts on the wire are in the merchant's local
# currency; divide by this to compare amounts across currencies (features, high-value rules).
CURRENCY_PER_USD: dict[str, float] = {
    "USD": 1.0,
    "INR": 83.0,
    "GBP": 0.79,
    "EUR": 0.92,
    "BRL": 5.0,
    "SGD": 1.35,
    "AED": 3.67,
}


def haversine_km(a: str, b: str) -> float | None:
    """Great-circle distance between two regions' cities; None when either region is unknown."""
    first = REGION_COORDINATES.get(a)
    second = REGION_COORDINATES.get(b)
    if first is None or second is None:
        return None
    return _haversine(first[0], first[1], second[0], second[1])


def _haversine(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    half_dphi = (phi2 - phi1) / 2
    half_dlambda = math.radians(lon2 - lon1) / 2
    h = math.sin(half_dphi) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(half_dlambda) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def region_coordinates(
    codes: Sequence[str],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Latitudes and longitudes for many region codes at once, NaN for unknown codes."""
    missing = (math.nan, math.nan)
    pairs = np.array([REGION_COORDINATES.get(code, missing) for code in codes], dtype=np.float64)
    pairs = pairs.reshape(-1, 2)
    return pairs[:, 0], pairs[:, 1]


def haversine_km_many(a: Sequence[str], b: Sequence[str]) -> npt.NDArray[np.float64]:
    """Element-wise distance between two equally long sequences of regions; NaN where unknown."""
    if len(a) != len(b):
        raise ValueError(f"sequences differ in length: {len(a)} != {len(b)}")
    lat1, lon1 = np.radians(region_coordinates(a))
    lat2, lon2 = np.radians(region_coordinates(b))
    h = (
        np.sin((lat2 - lat1) / 2) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    )
    distances: npt.NDArray[np.float64] = 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.minimum(h, 1)))
    return distances
