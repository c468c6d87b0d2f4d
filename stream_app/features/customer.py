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

Online state is built for time-ordered input per customer (the transactions topic is keyed by
customer): a transaction arriving after a later one of the same customer is scored on the state
as it is.
"""

from __future__ import annotations

import math
import struct
import sys
from array import array
from bisect import bisect_left
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from stream_app import geo
from stream_app.features import core
from stream_app.features.core import US_PER_DAY, US_PER_HOUR, Event
from stream_app.features.offline import FloatArray, IntArray, OfflineEvents, Timeline

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
_STATE_VERSION = 1
# The binary snapshot (the changelog's format): a header, the last region as length-prefixed
# UTF-8, then each array as a count and its little-endian items. About as large as the state in
# memory, a third of the JSON snapshot, and decoded without building a Python int per value.
_BINARY_VERSION = 2
_HEADER = struct.Struct("<BBqB")  # version, flags, last_us, region length
_COUNT = struct.Struct("<I")
_HAS_LAST_US, _HAS_REGION = 1, 2
_LITTLE_ENDIAN = sys.byteorder == "little"


def _int_array(values: Any = ()) -> array[int]:
    return array("q", values)


def _tag_array(values: Any = ()) -> array[int]:
    return array("I", values)


def _transaction_tag_array(values: Any = ()) -> array[int]:
    return array("q", values)


def _little_endian(values: array[int]) -> array[int]:
    """The array in little-endian order (a copy on big-endian machines; itself elsewhere)."""
    if _LITTLE_ENDIAN:
        return values
    swapped = array(values.typecode, values)
    swapped.byteswap()
    return swapped


@dataclass(slots=True)
class CustomerState:
    """One customer's history: just under 1 KB for a customer paying about once a day
    (measured by ``bench/bench_features.py``), whatever the length of the history.

    ``recent``: ``[t_us, cents, ...]`` of the last 24 h of transactions (the exact windows).
    ``days``: ``[day << 32 | count, cents, squared_cents, ...]`` per UTC day with transactions,
    the last 30 days (the calendar windows). ``seen``: first-seen tags, see the module docstring.
    ``transaction_tags``: hashes of the customer's last few transaction ids, oldest first; no
    feature reads them, the worker's duplicate check does (:mod:`stream_app.state`), and they
    live here so that they travel through the changelog with the rest of the customer.
    """

    last_us: int | None = None
    last_region: str | None = None
    recent: array[int] = field(default_factory=_int_array)
    days: array[int] = field(default_factory=_int_array)
    seen: array[int] = field(default_factory=_tag_array)
    transaction_tags: array[int] = field(default_factory=_transaction_tag_array)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible snapshot (for changelog-backed tables)."""
        return {
            "version": _STATE_VERSION,
            "last_us": self.last_us,
            "last_region": self.last_region,
            "recent": self.recent.tolist(),
            "days": self.days.tolist(),
            "seen": self.seen.tolist(),
            "transaction_tags": self.transaction_tags.tolist(),
        }

    def to_bytes(self) -> bytes:
        """The compact binary snapshot: what the worker writes to the changelog."""
        region = b"" if self.last_region is None else self.last_region.encode()
        flags = (_HAS_LAST_US if self.last_us is not None else 0) | (
            _HAS_REGION if self.last_region is not None else 0
        )
        parts = [_HEADER.pack(_BINARY_VERSION, flags, self.last_us or 0, len(region)), region]
        for values in (self.recent, self.days, self.seen, self.transaction_tags):
            parts.append(_COUNT.pack(len(values)))
            parts.append(_little_endian(values).tobytes())
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> CustomerState:
        """Inverse of :meth:`to_bytes`; ValueError for anything it did not write."""
        try:
            version, flags, last_us, region_length = _HEADER.unpack_from(data)
            if version != _BINARY_VERSION:
                raise ValueError(f"unsupported state version {version!r}")
            position = _HEADER.size + region_length
            region = data[_HEADER.size : position].decode() if flags & _HAS_REGION else None
            arrays = []
            for make in (_int_array, _int_array, _tag_array, _transaction_tag_array):
                (count,) = _COUNT.unpack_from(data, position)
                values = make()
                end = position + _COUNT.size + count * values.itemsize
                if end > len(data):
                    raise ValueError("customer state is truncated")
                values.frombytes(data[position + _COUNT.size : end])
                arrays.append(_little_endian(values))
                position = end
        except struct.error as exc:  # too short for a header or a count
            raise ValueError(f"customer state is truncated: {exc}") from exc
        if position != len(data):
            raise ValueError("customer state has trailing bytes")
        recent, days, seen, transaction_tags = arrays
        if len(recent) % 2 or len(days) % 3:
            raise ValueError("customer state arrays have the wrong length")
        return cls(
            last_us=last_us if flags & _HAS_LAST_US else None,
            last_region=None if region is None else sys.intern(region),
            recent=recent,
            days=days,
            seen=seen,
            transaction_tags=transaction_tags,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CustomerState:
        if data.get("version") != _STATE_VERSION:
            raise ValueError(f"unsupported state version {data.get('version')!r}")
        state = cls(
            last_us=data["last_us"],
            last_region=None if data["last_region"] is None else sys.intern(data["last_region"]),
            recent=_int_array(data["recent"]),
            days=_int_array(data["days"]),
            seen=_tag_array(data["seen"]),
            # absent from states written before duplicates were checked: nothing remembered
            transaction_tags=_transaction_tag_array(data.get("transaction_tags", ())),
        )
        if len(state.recent) % 2 or len(state.days) % 3:
            raise ValueError("customer state arrays have the wrong length")
        return state


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
        0.0 if event.device_tag in seen else 1.0,
        0.0 if event.merchant_tag in seen else 1.0,
        0.0 if event.region_tag in seen else 1.0,
        *_travel(state, event),
    ]


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
    distance = _distance_km(state.last_region, event.region)
    if distance is None:
        return float(state.last_region != event.region), core.MISSING, core.MISSING
    hours = max(float(max(event.t_us - state.last_us, 0)) / US_PER_HOUR, core.MIN_TRAVEL_HOURS)
    return float(state.last_region != event.region), distance, distance / hours


@lru_cache(maxsize=8192)
def _distance_km(previous: str, current: str) -> float | None:
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
            _admit(seen, tagged)
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
        days[index:index] = _int_array((day << _DAY_SHIFT | 1, cents, cents * cents))
    oldest_kept = day - MONTH_DAYS + 1
    while days and days[0] >> _DAY_SHIFT < oldest_kept:
        del days[:3]


def _bucket_index(days: array[int], day: int) -> int:
    """Index of ``day``'s bucket, or where it goes; scans from the end (usually the last)."""
    index = len(days)
    while index and days[index - 3] >> _DAY_SHIFT >= day:
        index -= 3
    return index


def _admit(seen: array[int], tagged: int) -> None:
    """Remember a new tag unless the set is full for its kind."""
    kind = core.tag_kind(tagged)
    if len(seen) < _SMALLEST_CAPACITY or _count_kind(seen, kind) < _CAPACITY[kind]:
        seen.append(tagged)


def _count_kind(seen: array[int], kind: int) -> int:
    return sum(1 for value in seen if core.tag_kind(value) == kind)


# ---------------------------------------------------------------------------------------------
# Offline: the same values for every row of a frame at once.


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
        _distance_km(str(names[pair // regions]), str(names[pair % regions]))
        for pair in pairs.tolist()
    ]
    table = np.array([math.nan if km is None else km for km in distances], dtype=np.float64)
    result: FloatArray = table[inverse]
    return result


def _first_seen_columns(events: OfflineEvents, timeline: Timeline) -> dict[str, FloatArray]:
    return {
        "device_first_seen": _first_seen(timeline, events.device_tag, DEVICE_CAPACITY),
        "merchant_first_seen": _first_seen(timeline, events.merchant_tag, MERCHANT_CAPACITY),
        "region_first_seen": _first_seen(timeline, events.region_tag, REGION_CAPACITY),
    }


def _first_seen(timeline: Timeline, tags: IntArray, capacity: int) -> FloatArray:
    """1.0 unless an earlier transaction of the customer used the tag and it was admitted.

    In sorted order, a (customer, tag) pair's first row admits the tag if fewer than
    ``capacity`` distinct tags of the customer came before it; later rows of the pair are seen
    exactly when the first one was admitted.
    """
    pair_keys = timeline.entity[timeline.order] * (1 << 32) + tags[timeline.order]
    pair_codes = pd.factorize(pair_keys, sort=False)[0].astype(np.int64)
    earlier_max = np.maximum.accumulate(np.concatenate(([-1], pair_codes[:-1])))
    is_first = pair_codes > earlier_max
    firsts = np.concatenate(([0], np.cumsum(is_first)))
    sorted_start = timeline.entity_start()
    distinct_before = firsts[:-1] - firsts[sorted_start]
    admitted = (distinct_before < capacity)[is_first]
    seen = ~is_first & admitted[pair_codes]
    result = np.empty(len(tags), dtype=np.float64)
    result[timeline.order] = np.where(seen, 0.0, 1.0)
    return result
