"""Features of the transaction alone: amount, local calendar and categorical codes.

Calendar features use the region's local standard time (``geo.REGIONS`` offsets; UTC for
unknown regions): "3 a.m." means the same thing to a customer in Mumbai and one in Texas.
``day_of_week`` is 0 for Monday; ``is_weekend`` is Saturday or Sunday. Category codes index the
fixed vocabularies in :mod:`stream_app.features.core`, 0 ("other") for anything unlisted.
"""

from __future__ import annotations

import numpy as np

from stream_app.features.core import US_PER_DAY, US_PER_HOUR, Event
from stream_app.features.offline import FloatArray, IntArray, OfflineEvents

CONTEXT_FEATURES: tuple[str, ...] = (
    "amount",
    "amount_usd",
    "hour_of_day",
    "day_of_week",
    "is_weekend",
    "merchant_category_code",
    "transaction_type_code",
)
_HOURS_PER_DAY = 24
_DAYS_PER_WEEK = 7
# 1970-01-01 was a Thursday: day 0 is weekday 3 with Monday as 0.
_EPOCH_WEEKDAY = 3
_SATURDAY = 5


def context_features(event: Event) -> list[float]:
    """Values of :data:`CONTEXT_FEATURES` for one transaction."""
    local = event.t_us + event.utc_offset_us
    weekday = (local // US_PER_DAY + _EPOCH_WEEKDAY) % _DAYS_PER_WEEK
    return [
        event.amount,
        event.amount_usd,
        float(local // US_PER_HOUR % _HOURS_PER_DAY),
        float(weekday),
        1.0 if weekday >= _SATURDAY else 0.0,
        float(event.category_code),
        float(event.type_code),
    ]


def context_columns(events: OfflineEvents) -> dict[str, FloatArray]:
    """Values of :data:`CONTEXT_FEATURES` for every transaction (input row order)."""
    local: IntArray = events.t_us + events.utc_offset_us
    weekday = (local // US_PER_DAY + _EPOCH_WEEKDAY) % _DAYS_PER_WEEK
    return {
        "amount": events.amount,
        "amount_usd": events.amount_usd,
        "hour_of_day": (local // US_PER_HOUR % _HOURS_PER_DAY).astype(np.float64),
        "day_of_week": weekday.astype(np.float64),
        "is_weekend": (weekday >= _SATURDAY).astype(np.float64),
        "merchant_category_code": events.category_code.astype(np.float64),
        "transaction_type_code": events.type_code.astype(np.float64),
    }
