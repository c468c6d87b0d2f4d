"""Customer features: velocity, amount profile, recency, novelty and travel, online and offline.

Windows (``t`` is the transaction's time; only the customer's earlier transactions count, in the
order defined in :mod:`stream_app.features.offline`):

* ``1h`` and ``24h`` are sliding and exact: transactions with time in ``(t - w, t]``; one exactly
  ``w`` before ``t`` is out.
* ``7d`` and ``30d`` are calendar windows over UTC days: transactions from the start of the UTC
  day ``6`` (resp. ``29``) days before ``t``'s day up to ``t``. So "7d" spans 6 to 7 days
  depending on the time of day. Online they come from per-day totals, which keep the state small.

Amounts are in US dollars (:func:`core.usd_rate`), aggregated as integer cents.

First-seen flags (device, merchant, region) are 1.0 unless the value is in the customer's set of
remembered values. A set admits values in order of first use until it holds ``*_CAPACITY``
values of its kind and then stops growing, so for a customer past the cap every further new
value, including repeats of values that were not admitted, reads as first seen. Values are
compared by a 30-bit CRC tag (:func:`core.tag`), not as strings, in both paths.

``seconds_since_device_first_seen``: seconds from the customer's first transaction on this
device to this one, for a device in the remembered set; 0.0 otherwise, like the flag's 1.0
("first seen" and "first used now" are the same event, including past the cap); MISSING for a
device remembered by a snapshot format older than the first-use times
(:mod:`stream_app.features.customer_state`), whose first use is unknown.

Online state is built for time-ordered input per customer (the transactions topic is keyed by
customer): a transaction arriving after a later one of the same customer is scored on the state
as it is.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from functools import lru_cache

from stream_app import geo
from stream_app.features import core
from stream_app.features.core import US_PER_DAY, US_PER_HOUR, Event
from stream_app.features.customer_state import (
    CustomerState,
    decode_first_use,
    encode_first_use,
    int_array,
)

DEVICE_CAPACITY = 16
MERCHANT_CAPACITY = 64
REGION_CAPACITY = 16
_CAPACITY = {
    core.DEVICE_KIND: DEVICE_CAPACITY,
    core.MERCHANT_KIND: MERCHANT_CAPACITY,
    core.REGION_KIND: REGION_CAPACITY,
}
_SMALLEST_CAPACITY = min(_CAPACITY.values())
WEEK_DAYS = 7
MONTH_DAYS = 30
# The floor on the 30-day standard deviation: a customer who always pays the same amount would
# otherwise turn a one-cent difference into an enormous z-score.
MIN_STD_CENTS = 100.0

CUSTOMER_FEATURES: tuple[str, ...] = (
    "cust_txn_count_1h",
    "cust_amount_sum_1h",
    "cust_amount_mean_1h",
    "cust_txn_count_24h",
    "cust_amount_sum_24h",
    "cust_amount_mean_24h",
    "cust_txn_count_7d",
    "cust_amount_sum_7d",
    "cust_amount_mean_7d",
    "cust_txn_count_30d",
    "cust_amount_sum_30d",
    "cust_amount_mean_30d",
    "amount_to_mean_30d",
    "amount_zscore_30d",
    "seconds_since_prev_txn",
    "device_first_seen",
    "seconds_since_device_first_seen",
    "merchant_first_seen",
    "region_first_seen",
    "region_changed",
    "distance_km_from_prev",
    "speed_kmh_from_prev",
)

_DAY_SHIFT = 32
# Up to this many day buckets, the calendar windows are summed by a scan, not by bisection.
_SCANNED_DAYS = 6
_COUNT_MASK = (1 << _DAY_SHIFT) - 1


# ---------------------------------------------------------------------------------------------
# Online: features from the state before the transaction, then the state update.


def customer_features(state: CustomerState, event: Event) -> list[float]:
    """Values of :data:`CUSTOMER_FEATURES` for ``event`` from ``state`` (not modified).

    Written flat on purpose: this runs once per transaction on the worker's hot path.
    """
    t = event.t_us
    missing = core.MISSING
    count_1h, cents_1h, count_24h, cents_24h = _exact_windows(state.recent, t)
    count_7d, cents_7d, count_30d, cents_30d, squares_30d = _day_windows(
        state.days, t // US_PER_DAY
    )
    seen = state.seen
    return [
        float(count_1h),
        cents_1h / 100.0,
        cents_1h / 100.0 / count_1h if count_1h else missing,
        float(count_24h),
        cents_24h / 100.0,
        cents_24h / 100.0 / count_24h if count_24h else missing,
        float(count_7d),
        cents_7d / 100.0,
        cents_7d / 100.0 / count_7d if count_7d else missing,
        float(count_30d),
        cents_30d / 100.0,
        cents_30d / 100.0 / count_30d if count_30d else missing,
        *_amount_profile(event, count_30d, cents_30d, squares_30d),
        missing if state.last_us is None else max(t - state.last_us, 0) / 1e6,
        *_device_novelty(seen, event),
        0.0 if event.merchant_tag in seen else 1.0,
        0.0 if event.region_tag in seen else 1.0,
        *_travel(state, event),
    ]


def _device_novelty(seen: array[int], event: Event) -> tuple[float, float]:
    """``device_first_seen`` and ``seconds_since_device_first_seen``. A device tag in ``seen``
    is followed by its first-use time (two words of kind 0, which no tag lookup matches)."""
    device = event.device_tag
    if device not in seen:
        return 1.0, 0.0
    index = seen.index(device)
    first_us = decode_first_use(seen[index + 1], seen[index + 2])
    if first_us is None:
        return 0.0, core.MISSING
    return 0.0, max(event.t_us - first_us, 0) / 1e6


def _exact_windows(recent: array[int], t: int) -> tuple[int, int, int, int]:
    hour_start, day_start = t - US_PER_HOUR, t - US_PER_DAY
    count_1h = cents_1h = count_24h = cents_24h = 0
    for index in range(0, len(recent), 2):
        moment = recent[index]
        if day_start < moment <= t:
            count_24h += 1
            cents_24h += recent[index + 1]
            if moment > hour_start:
                count_1h += 1
                cents_1h += recent[index + 1]
    return count_1h, cents_1h, count_24h, cents_24h


def _day_windows(days: array[int], today: int) -> tuple[int, int, int, int, int]:
    """Totals of the day buckets in both calendar windows.

    Buckets are sorted by day and a header is ``day << 32 | count``, so headers sort by day,
    window bounds are found by bisection, and the counts of a range of buckets are the low 32
    bits of the sum of their headers (a window never holds 2**32 transactions).
    """
    if len(days) <= _SCANNED_DAYS * 3:
        return _day_windows_scanned(days, today)
    headers = days[::3]
    first = bisect_left(headers, (today - MONTH_DAYS + 1) << _DAY_SHIFT)
    stop = bisect_left(headers, (today + 1) << _DAY_SHIFT)
    week = max(bisect_left(headers, (today - WEEK_DAYS + 1) << _DAY_SHIFT), first)
    cents = days[1::3]
    return (
        sum(headers[week:stop]) & _COUNT_MASK,
        sum(cents[week:stop]),
        sum(headers[first:stop]) & _COUNT_MASK,
        sum(cents[first:stop]),
        core.wrap_int64(sum(days[2::3][first:stop])),
    )


def _day_windows_scanned(days: array[int], today: int) -> tuple[int, int, int, int, int]:
    """:func:`_day_windows` for a few buckets: one pass from the newest, no slices. Most
    customers have paid on only a few of the last 30 days, and three slices, three bisections
    and five sums cost more than walking a handful of buckets. Same integers, same result."""
    week_first, month_first = today - WEEK_DAYS + 1, today - MONTH_DAYS + 1
    count_7d = cents_7d = count_30d = cents_30d = squares_30d = 0
    for index in range(len(days) - 3, -1, -3):
        header = days[index]
        day = header >> _DAY_SHIFT
        if day > today:
            continue
        if day < month_first:
            break
        count, cents = header & _COUNT_MASK, days[index + 1]
        count_30d += count
        cents_30d += cents
        squares_30d += days[index + 2]
        if day >= week_first:
            count_7d += count
            cents_7d += cents
    # The bisecting version's counts are the low 32 bits of a sum of headers.
    return (
        count_7d & _COUNT_MASK,
        cents_7d,
        count_30d & _COUNT_MASK,
        cents_30d,
        core.wrap_int64(squares_30d),
    )


def _amount_profile(event: Event, count: int, cents: int, squares: int) -> tuple[float, float]:
    """Amount over the 30-day mean (undefined if that mean is zero) and its z-score."""
    if not count:
        return core.MISSING, 0.0
    mean_usd = cents / 100.0 / count
    mean_cents = float(cents) / count
    variance = float(squares) / count - mean_cents * mean_cents
    std = max(math.sqrt(max(variance, 0.0)), MIN_STD_CENTS)
    ratio = event.amount_usd / mean_usd if cents else core.MISSING
    return ratio, (event.cents - mean_cents) / std


def _travel(state: CustomerState, event: Event) -> tuple[float, float, float]:
    if state.last_us is None or state.last_region is None:
        return core.MISSING, core.MISSING, core.MISSING
    distance = distance_km(state.last_region, event.region)
    if distance is None:
        return float(state.last_region != event.region), core.MISSING, core.MISSING
    hours = max(float(max(event.t_us - state.last_us, 0)) / US_PER_HOUR, core.MIN_TRAVEL_HOURS)
    return float(state.last_region != event.region), distance, distance / hours


@lru_cache(maxsize=8192)
def distance_km(previous: str, current: str) -> float | None:
    """``geo.haversine_km``, memoised: the worker sees the same few region pairs again and again."""
    return geo.haversine_km(previous, current)


def observe_customer(state: CustomerState, event: Event) -> None:
    """Add a scored transaction to the customer's state and forget what no window needs."""
    t, cents = event.t_us, event.cents
    recent = state.recent
    if recent and recent[0] <= t - US_PER_DAY:
        _drop_until(recent, t - US_PER_DAY)
    recent.extend((t, cents))
    days = state.days
    day = t // US_PER_DAY
    if days and days[-3] >> _DAY_SHIFT == day:  # another payment today: the common case
        days[-3] += 1
        days[-2] += cents
        days[-1] = core.wrap_int64(days[-1] + cents * cents)
    else:
        _add_to_day(days, day, cents)
    seen = state.seen
    for tagged in (event.device_tag, event.merchant_tag, event.region_tag):
        if tagged not in seen:
            _admit(seen, tagged, t)
    state.last_us = t
    state.last_region = event.region


def _drop_until(recent: array[int], cutoff: int) -> None:
    stop = 0
    while stop < len(recent) and recent[stop] <= cutoff:
        stop += 2
    del recent[:stop]


def _add_to_day(days: array[int], day: int, cents: int) -> None:
    index = _bucket_index(days, day)
    if index < len(days) and days[index] >> _DAY_SHIFT == day:
        days[index] += 1
        days[index + 1] += cents
        days[index + 2] = core.wrap_int64(days[index + 2] + cents * cents)
    else:
        days[index:index] = int_array((day << _DAY_SHIFT | 1, cents, cents * cents))
    oldest_kept = day - MONTH_DAYS + 1
    while days and days[0] >> _DAY_SHIFT < oldest_kept:
        del days[:3]


def _bucket_index(days: array[int], day: int) -> int:
    """Index of ``day``'s bucket, or where it goes; scans from the end (usually the last)."""
    index = len(days)
    while index and days[index - 3] >> _DAY_SHIFT >= day:
        index -= 3
    return index


def _admit(seen: array[int], tagged: int, t_us: int) -> None:
    """Remember a new tag unless the set is full for its kind; a device with its first use.

    The first-use words have kind 0, so :func:`_count_kind` does not count them, and
    ``len(seen) < _SMALLEST_CAPACITY`` still implies that no kind is full.
    """
    kind = core.tag_kind(tagged)
    if len(seen) < _SMALLEST_CAPACITY or _count_kind(seen, kind) < _CAPACITY[kind]:
        seen.append(tagged)
        if kind == core.DEVICE_KIND:
            seen.extend(encode_first_use(t_us))


def _count_kind(seen: array[int], kind: int) -> int:
    return sum(1 for value in seen if core.tag_kind(value) == kind)
