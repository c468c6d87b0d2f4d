"""Merchant features: volume from transactions and risk from matured labels, online and offline.

* Volume ``merchant_txn_count_{1h,24h}``: the merchant's transactions (any customer, any
  partition) with time in ``(t - L - w, t - L]``, the counts "as of ``L`` before ``t``" with
  ``L`` = :data:`VOLUME_LAG_US` (1 s). The lag is what makes the feature independent of the
  partitioning: a worker scoring ``t`` only needs every partition read past ``t - L``, which
  :mod:`stream_app.worker.merchant_volume_reader` waits for, and the transaction itself (or any
  other at the same instant) never counts, so the order inside a batch does not matter. It is
  a constant, not a setting, because it is part of the feature's definition: a model trained
  with one lag must be served with the same one.
* Risk ``merchant_{labels,frauds,fraud_rate}_{7d,30d}``: labels of the merchant's transactions
  with ``labeled_at`` from the start of the UTC day ``6`` (resp. ``29``) days before ``t``'s day
  up to and including ``t``. A label counts once it has matured (``labeled_at <= t``), whenever
  the labelled transaction happened. Each label message counts once, so a transaction labelled
  twice counts twice. The rate is ``frauds / labels``, :data:`core.MISSING` without labels.
  Transactions and labels without a merchant belong to the merchant "unknown".

Online, labels of the two newest UTC days (by the merchant's clock: the newest day among its
transactions and labels) are kept with exact ``labeled_at``; older ones are folded into per-day
counts. A transaction scored more than a day behind that clock (a lagging transaction stream)
therefore does not see the labels of its own day, the conservative side of point-in-time.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from stream_app.features import core
from stream_app.features.core import US_PER_DAY, US_PER_HOUR
from stream_app.features.offline import (
    FloatArray,
    LabelIndex,
    OfflineEvents,
    Timeline,
    merchant_keys,
    micros,
)
from stream_app.schemas import Label

MERCHANT_FEATURES: tuple[str, ...] = (
    "merchant_txn_count_1h",
    "merchant_txn_count_24h",
    "merchant_labels_7d",
    "merchant_frauds_7d",
    "merchant_fraud_rate_7d",
    "merchant_labels_30d",
    "merchant_frauds_30d",
    "merchant_fraud_rate_30d",
)
LABEL_WINDOW_DAYS = (7, 30)
# Per-day label counts are kept a few days past the longest window, so a transaction stream
# that runs a little behind the label stream still finds the days it needs.
_KEPT_LABEL_DAYS = 33
# Expired transaction times are dropped in chunks: deleting from the front of an array moves
# the rest, and queries ignore expired entries anyway.
_DROP_CHUNK = 64
_STATE_VERSION = 1
VOLUME_LAG_US = 1_000_000
# How far behind the newest time a query can need: the 24 h window before the lag.
VOLUME_KEPT_US = US_PER_DAY + VOLUME_LAG_US


def _int_array(values: Any = ()) -> array[int]:
    return array("q", values)


@dataclass(slots=True)
class MerchantState:
    """One merchant's recent transactions and labels.

    ``txn_times``: sorted times of the last 24 h of transactions. ``label_times`` and
    ``fraud_times``: sorted ``labeled_at`` of all resp. fraud labels of the two newest days.
    ``label_days``: ``[day, labels, frauds, ...]`` for older days. ``clock_day``: the newest UTC
    day seen in either stream.
    """

    txn_times: array[int] = field(default_factory=_int_array)
    label_times: array[int] = field(default_factory=_int_array)
    fraud_times: array[int] = field(default_factory=_int_array)
    label_days: array[int] = field(default_factory=_int_array)
    clock_day: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible snapshot (for changelog-backed tables)."""
        return {
            "version": _STATE_VERSION,
            "txn_times": self.txn_times.tolist(),
            "label_times": self.label_times.tolist(),
            "fraud_times": self.fraud_times.tolist(),
            "label_days": self.label_days.tolist(),
            "clock_day": self.clock_day,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MerchantState:
        if data.get("version") != _STATE_VERSION:
            raise ValueError(f"unsupported state version {data.get('version')!r}")
        state = cls(
            txn_times=_int_array(data["txn_times"]),
            label_times=_int_array(data["label_times"]),
            fraud_times=_int_array(data["fraud_times"]),
            label_days=_int_array(data["label_days"]),
            clock_day=data["clock_day"],
        )
        if len(state.label_days) % 3:
            raise ValueError("merchant state label_days has the wrong length")
        return state


# ---------------------------------------------------------------------------------------------
# Online.


def merchant_features(state: MerchantState, t_us: int) -> list[float]:
    """Values of :data:`MERCHANT_FEATURES` at time ``t_us`` from ``state`` (not modified)."""
    times = state.txn_times
    as_of = t_us - VOLUME_LAG_US
    until = bisect_right(times, as_of)
    labels_7d, frauds_7d, labels_30d, frauds_30d = _label_counts(state, t_us)
    return [
        float(until - bisect_right(times, as_of - US_PER_HOUR)),
        float(until - bisect_right(times, as_of - US_PER_DAY)),
        float(labels_7d),
        float(frauds_7d),
        _rate(frauds_7d, labels_7d),
        float(labels_30d),
        float(frauds_30d),
        _rate(frauds_30d, labels_30d),
    ]


def _label_counts(state: MerchantState, t_us: int) -> tuple[int, int, int, int]:
    """Matured labels in both windows: folded days before today, then exact times up to t."""
    today = t_us // US_PER_DAY
    week_first, month_first = today - LABEL_WINDOW_DAYS[0] + 1, today - LABEL_WINDOW_DAYS[1] + 1
    labels_7d = frauds_7d = labels_30d = frauds_30d = 0
    buckets = state.label_days
    for index in range(0, len(buckets), 3):
        day = buckets[index]
        if month_first <= day < today:
            labels_30d += buckets[index + 1]
            frauds_30d += buckets[index + 2]
            if day >= week_first:
                labels_7d += buckets[index + 1]
                frauds_7d += buckets[index + 2]
    label_times, fraud_times = state.label_times, state.fraud_times
    if label_times:
        labels_until = bisect_right(label_times, t_us)
        frauds_until = bisect_right(fraud_times, t_us)
        labels_7d += labels_until - bisect_left(label_times, week_first * US_PER_DAY)
        frauds_7d += frauds_until - bisect_left(fraud_times, week_first * US_PER_DAY)
        labels_30d += labels_until - bisect_left(label_times, month_first * US_PER_DAY)
        frauds_30d += frauds_until - bisect_left(fraud_times, month_first * US_PER_DAY)
    return labels_7d, frauds_7d, labels_30d, frauds_30d


def _rate(frauds: int, labels: int) -> float:
    return float(frauds) / labels if labels else core.MISSING


def observe_merchant_transaction(state: MerchantState, t_us: int) -> None:
    """Count a scored transaction towards the merchant's volume and advance its clock (a worker
    without the all-partitions reader, and the tests: its own transactions are all it sees)."""
    count_merchant_volume(state, t_us)
    # Its own transactions, scored in time order per merchant: older ones are not needed again.
    expire_merchant_volume(state, state.txn_times[-1] - VOLUME_KEPT_US)
    observe_merchant_scored(state, t_us)


def count_merchant_volume(state: MerchantState, t_us: int) -> None:
    """Count one transaction of the merchant (from any partition) towards its volume."""
    times = state.txn_times
    if times and t_us < times[-1]:
        insort(times, t_us)
    else:
        times.append(t_us)


def expire_merchant_volume(state: MerchantState, until_us: int) -> None:
    """Forget volume times at or before ``until_us``, which no query will need again."""
    times = state.txn_times
    if times and times[0] <= until_us:
        expired = bisect_right(times, until_us)
        if expired >= _DROP_CHUNK or 2 * expired >= len(times):
            del times[:expired]


def observe_merchant_scored(state: MerchantState, t_us: int) -> None:
    """A transaction of the merchant was scored at ``t_us``: move the label clock (which only
    scored transactions and labels move, never the all-partitions reader, which reads ahead)."""
    day = t_us // US_PER_DAY
    if state.clock_day is None or day > state.clock_day:
        _advance_clock(state, day)


def observe_label(merchant: MerchantState, label: Label) -> None:
    """Record a label of one of the merchant's transactions (the caller routes by merchant).

    Only ``labeled_at`` and ``is_fraud`` are used: risk windows run on label time.
    """
    labeled_us = core.to_micros(label.labeled_at)
    day = labeled_us // US_PER_DAY
    if day < _advance_clock(merchant, day) - 1:
        _add_to_bucket(merchant.label_days, day, 1, int(label.is_fraud))
        return
    insort(merchant.label_times, labeled_us)
    if label.is_fraud:
        insort(merchant.fraud_times, labeled_us)


def _advance_clock(state: MerchantState, day: int) -> int:
    """Move the clock to ``day`` if that is newer, folding what stops being exact; the clock."""
    if state.clock_day is not None and day <= state.clock_day:
        return state.clock_day
    state.clock_day = day
    exact_from = (day - 1) * US_PER_DAY
    _fold(state.label_days, state.label_times, bisect_left(state.label_times, exact_from), 1, 0)
    _fold(state.label_days, state.fraud_times, bisect_left(state.fraud_times, exact_from), 0, 1)
    buckets = state.label_days
    while buckets and buckets[0] < day - _KEPT_LABEL_DAYS:
        del buckets[:3]
    return day


def _fold(buckets: array[int], times: array[int], stop: int, labels: int, frauds: int) -> None:
    for moment in times[:stop]:
        _add_to_bucket(buckets, moment // US_PER_DAY, labels, frauds)
    del times[:stop]


def _add_to_bucket(buckets: array[int], day: int, labels: int, frauds: int) -> None:
    index = len(buckets)
    while index and buckets[index - 3] >= day:
        index -= 3
    if index < len(buckets) and buckets[index] == day:
        buckets[index + 1] += labels
        buckets[index + 2] += frauds
    else:
        buckets[index:index] = _int_array((day, labels, frauds))


# ---------------------------------------------------------------------------------------------
# Offline.


def merchant_columns(events: OfflineEvents, labels: pd.DataFrame | None) -> dict[str, FloatArray]:
    """Values of :data:`MERCHANT_FEATURES` for every transaction (input row order)."""
    timeline = Timeline.build(events.merchant, events.t_us, events.sorted_times)
    t = events.t_us
    columns: dict[str, FloatArray] = {}
    # Events of the row's merchant with time <= t - L, minus those with time <= t - L - w.
    until = timeline.window_start(t - VOLUME_LAG_US)
    for name, width in (("1h", US_PER_HOUR), ("24h", US_PER_DAY)):
        count = (until - timeline.window_start(t - VOLUME_LAG_US - width))[timeline.position]
        columns[f"merchant_txn_count_{name}"] = count.astype(np.float64)
    index = _label_index(events, labels)
    for days in LABEL_WINDOW_DAYS:
        lower = (t // US_PER_DAY - days + 1) * US_PER_DAY
        counts, frauds = index.counts(timeline, lower, t)
        columns[f"merchant_labels_{days}d"] = counts.astype(np.float64)
        columns[f"merchant_frauds_{days}d"] = frauds.astype(np.float64)
        columns[f"merchant_fraud_rate_{days}d"] = np.where(
            counts > 0, frauds / np.maximum(counts, 1), core.MISSING
        )
    return columns


def _label_index(events: OfflineEvents, labels: pd.DataFrame | None) -> LabelIndex:
    """Labels of the frame's merchants; labels of other merchants cannot affect any row."""
    if labels is None or labels.empty:
        empty = np.zeros(0, dtype=np.int64)
        return LabelIndex.build(empty, empty, np.zeros(0, dtype=np.bool_))
    missing = [name for name in ("is_fraud", "labeled_at") if name not in labels.columns]
    if missing:
        raise ValueError(f"labels frame lacks columns {missing}")
    if "merchant_id" in labels.columns:
        keys = merchant_keys(labels["merchant_id"])
    else:
        keys = pd.Series(core.UNKNOWN_MERCHANT, index=labels.index)
    merchant = pd.Index(events.merchant_names).get_indexer(pd.Index(keys)).astype(np.int64)
    known = merchant >= 0
    return LabelIndex.build(
        merchant[known],
        micros(labels["labeled_at"])[known],
        labels["is_fraud"].to_numpy(dtype=np.bool_)[known],
    )
