"""Customer features offline: the values of :mod:`stream_app.features.customer` for every row
of a frame at once, in numpy over the whole history (training, backtests, the parity tests).

The definitions (windows, amount profile, first-seen capacities) are those of the online module
and are imported from it, so that one place says what a feature means; this module only says how
to compute it for all rows without per-row state.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from stream_app.features import core
from stream_app.features.core import US_PER_DAY, US_PER_HOUR
from stream_app.features.customer import (
    CUSTOMER_FEATURES,
    DEVICE_CAPACITY,
    MERCHANT_CAPACITY,
    MIN_STD_CENTS,
    MONTH_DAYS,
    REGION_CAPACITY,
    WEEK_DAYS,
    distance_km,
)
from stream_app.features.offline import BoolArray, FloatArray, IntArray, OfflineEvents, Timeline


def customer_columns(events: OfflineEvents) -> dict[str, FloatArray]:
    """Values of :data:`CUSTOMER_FEATURES` for every transaction (input row order)."""
    timeline = Timeline.build(events.customer, events.t_us, events.sorted_times)
    t, cents = events.t_us, events.cents
    prefix_cents = timeline.prefix_sums(cents)
    today = t // US_PER_DAY
    bounds = {
        "1h": t - US_PER_HOUR,
        "24h": t - US_PER_DAY,
        "7d": (today - WEEK_DAYS + 1) * US_PER_DAY - 1,
        "30d": (today - MONTH_DAYS + 1) * US_PER_DAY - 1,
    }
    columns: dict[str, FloatArray] = {}
    for name, bound in bounds.items():
        start = timeline.window_start(bound)
        count = timeline.count(start)
        total = timeline.total(prefix_cents, start) / 100.0
        columns[f"cust_txn_count_{name}"] = count.astype(np.float64)
        columns[f"cust_amount_sum_{name}"] = total
        columns[f"cust_amount_mean_{name}"] = _mean(total, count)
    columns.update(
        _amount_profile_columns(
            events,
            count,
            timeline.total(prefix_cents, start),
            timeline.total(timeline.prefix_sums(cents * cents), start),
        )
    )
    columns.update(_recency_and_travel_columns(events, timeline))
    columns.update(_first_seen_columns(events, timeline))
    return {name: columns[name] for name in CUSTOMER_FEATURES}


def _mean(total: FloatArray, count: IntArray) -> FloatArray:
    return np.where(count > 0, total / np.maximum(count, 1), core.MISSING)


def _amount_profile_columns(
    events: OfflineEvents, count: IntArray, cents: IntArray, squares: IntArray
) -> dict[str, FloatArray]:
    divisor = np.maximum(count, 1)
    mean_usd = cents / 100.0 / divisor
    mean_cents = cents / divisor
    variance = squares / divisor - mean_cents * mean_cents
    std = np.maximum(np.sqrt(np.maximum(variance, 0.0)), MIN_STD_CENTS)
    has_mean = (count > 0) & (cents != 0)
    ratio = events.amount_usd / np.where(has_mean, mean_usd, 1.0)
    return {
        "amount_to_mean_30d": np.where(has_mean, ratio, core.MISSING),
        "amount_zscore_30d": np.where(count > 0, (events.cents - mean_cents) / std, 0.0),
    }


def _recency_and_travel_columns(events: OfflineEvents, timeline: Timeline) -> dict[str, FloatArray]:
    has_previous, previous = timeline.previous_row()
    elapsed = events.t_us - events.t_us[previous]
    distance = _distances(events, previous)
    known = has_previous & ~np.isnan(distance)
    hours = np.maximum(elapsed / float(US_PER_HOUR), core.MIN_TRAVEL_HOURS)
    changed = (events.region != events.region[previous]).astype(np.float64)
    return {
        "seconds_since_prev_txn": np.where(has_previous, elapsed / 1e6, core.MISSING),
        "region_changed": np.where(has_previous, changed, core.MISSING),
        "distance_km_from_prev": np.where(known, distance, core.MISSING),
        "speed_kmh_from_prev": np.where(known, distance / hours, core.MISSING),
    }


def _distances(events: OfflineEvents, previous: IntArray) -> FloatArray:
    """``geo.haversine_km`` per row, called once per distinct (previous, current) region pair."""
    regions, names = len(events.region_names), events.region_names
    inverse, pairs = pd.factorize(events.region[previous] * regions + events.region)
    distances = [
        distance_km(str(names[pair // regions]), str(names[pair % regions]))
        for pair in pairs.tolist()
    ]
    table = np.array([math.nan if km is None else km for km in distances], dtype=np.float64)
    result: FloatArray = table[inverse]
    return result


def _first_seen_columns(events: OfflineEvents, timeline: Timeline) -> dict[str, FloatArray]:
    device_seen, device_first_us = _first_seen(
        timeline, events.device_tag, events.t_us, DEVICE_CAPACITY
    )
    elapsed = events.t_us - device_first_us
    return {
        "device_first_seen": np.where(device_seen, 0.0, 1.0),
        # Rows are in event order within the customer, so the first use is never later.
        "seconds_since_device_first_seen": np.where(device_seen, elapsed / 1e6, 0.0),
        "merchant_first_seen": _first_seen_flag(timeline, events.merchant_tag, MERCHANT_CAPACITY),
        "region_first_seen": _first_seen_flag(timeline, events.region_tag, REGION_CAPACITY),
    }


def _first_seen_flag(timeline: Timeline, tags: IntArray, capacity: int) -> FloatArray:
    seen, _ = _first_seen(timeline, tags, np.zeros(len(tags), dtype=np.int64), capacity)
    return np.where(seen, 0.0, 1.0)


def _first_seen(
    timeline: Timeline, tags: IntArray, t_us: IntArray, capacity: int
) -> tuple[BoolArray, IntArray]:
    """Per input row: whether an earlier transaction of the customer used the tag and it was
    admitted (the flag is 0.0 then), and the time of the pair's first transaction.

    In sorted order, a (customer, tag) pair's first row admits the tag if fewer than
    ``capacity`` distinct tags of the customer came before it; later rows of the pair are seen
    exactly when the first one was admitted. Online that first row's time is what the state
    stores with the tag.
    """
    pair_keys = timeline.entity[timeline.order] * (1 << 32) + tags[timeline.order]
    pair_codes = pd.factorize(pair_keys, sort=False)[0].astype(np.int64)
    earlier_max = np.maximum.accumulate(np.concatenate(([-1], pair_codes[:-1])))
    is_first = pair_codes > earlier_max
    firsts = np.concatenate(([0], np.cumsum(is_first)))
    sorted_start = timeline.entity_start()
    distinct_before = firsts[:-1] - firsts[sorted_start]
    admitted = (distinct_before < capacity)[is_first]
    # Codes number the pairs in order of their first rows, so code k's first row is the k-th.
    first_us = t_us[timeline.order][is_first][pair_codes]
    seen = np.empty(len(tags), dtype=np.bool_)
    seen[timeline.order] = ~is_first & admitted[pair_codes]
    first = np.empty(len(tags), dtype=np.int64)
    first[timeline.order] = first_us
    return seen, first
