"""Vectorised building blocks for the offline path: prepared columns and per-entity timelines.

Order of events (the definition both paths follow): an entity's transactions are ordered by
timestamp, and transactions with the same timestamp by arrival, which offline is their row order
in the input frame (a stable sort). A transaction's features see exactly the transactions before
it in that order, which is what the worker sees when it consumes a customer's transactions in
timestamp order and updates the state after scoring each one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from stream_app.features import core

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

TRANSACTION_COLUMNS = (
    "customer_id",
    "amount",
    "merchant_category",
    "transaction_type",
    "device_id",
    "geo_location",
    "timestamp",
)
LABEL_COLUMNS = ("is_fraud", "labeled_at")


@dataclass(frozen=True)
class OfflineEvents:
    """The transactions frame as plain arrays, in input row order, with the online encodings."""

    t_us: IntArray
    cents: IntArray
    amount: FloatArray
    amount_usd: FloatArray
    customer: IntArray
    merchant: IntArray
    merchant_names: npt.NDArray[np.object_]
    region: IntArray
    region_names: npt.NDArray[np.object_]
    device_tag: IntArray
    merchant_tag: IntArray
    region_tag: IntArray
    category_code: IntArray
    type_code: IntArray
    utc_offset_us: IntArray
    sorted_times: IntArray

    def __len__(self) -> int:
        return len(self.t_us)


def micros(column: pd.Series) -> IntArray:
    """UTC microseconds since the epoch, truncating any nanoseconds (the wire carries µs)."""
    stamps = pd.to_datetime(column, utc=True)
    if stamps.isna().any():
        raise ValueError(f"{column.name} has missing timestamps")
    nanos = pd.DatetimeIndex(stamps).as_unit("ns").tz_convert(None).to_numpy().view(np.int64)
    result: IntArray = np.floor_divide(nanos, 1000)
    return result


def prepare_transactions(frame: pd.DataFrame) -> OfflineEvents:
    """Encode the columns exactly as :func:`core.prepare_event` encodes one transaction."""
    missing = [name for name in TRANSACTION_COLUMNS if name not in frame.columns]
    if missing:
        raise ValueError(f"transactions frame lacks columns {missing}")
    amount = frame["amount"].to_numpy(dtype=np.float64)
    if not np.isfinite(amount).all():
        raise ValueError("amount has missing or non-finite values")
    merchant_codes, merchant_names = pd.factorize(_merchant_keys(frame), sort=False)
    region_codes, region_names = pd.factorize(frame["geo_location"].astype(str), sort=False)
    amount_usd = amount / _usd_rates(frame, region_codes, region_names)
    t_us = micros(frame["timestamp"])
    return OfflineEvents(
        t_us=t_us,
        cents=np.rint(amount_usd * 100.0).astype(np.int64),
        amount=amount,
        amount_usd=amount_usd,
        customer=pd.factorize(frame["customer_id"].astype(str))[0].astype(np.int64),
        merchant=merchant_codes.astype(np.int64),
        merchant_names=np.asarray(merchant_names, dtype=object),
        region=region_codes.astype(np.int64),
        region_names=np.asarray(region_names, dtype=object),
        device_tag=_map_unique(frame["device_id"].astype(str), core.DEVICE_KIND),
        merchant_tag=_tags(merchant_codes, merchant_names, core.MERCHANT_KIND),
        region_tag=_tags(region_codes, region_names, core.REGION_KIND),
        category_code=_codes(frame["merchant_category"].astype(str), core.category_code),
        type_code=_codes(frame["transaction_type"].astype(str), core.type_code),
        utc_offset_us=_codes(frame["geo_location"].astype(str), core.utc_offset_us),
        sorted_times=np.sort(t_us),
    )


def _merchant_keys(frame: pd.DataFrame) -> pd.Series:
    if "merchant_id" not in frame.columns:
        return pd.Series(core.UNKNOWN_MERCHANT, index=frame.index, dtype=object)
    return merchant_keys(frame["merchant_id"])


def merchant_keys(column: pd.Series) -> pd.Series:
    """:func:`core.merchant_key` over a column: missing or empty ids become "unknown"."""
    values = column.astype(object)
    present = values.notna() & (values != "")
    return values.where(present, core.UNKNOWN_MERCHANT).astype(str)


def _usd_rates(frame: pd.DataFrame, region_codes: IntArray, regions: pd.Index) -> FloatArray:
    """:func:`core.usd_rate` per row, evaluated once per distinct (currency, region) pair."""
    if "currency" in frame.columns:
        currency_codes, currencies = pd.factorize(frame["currency"], use_na_sentinel=True)
    else:
        currency_codes, currencies = np.full(len(frame), -1, dtype=np.int64), pd.Index([])
    pair_codes, pairs = pd.factorize(
        (currency_codes.astype(np.int64) + 1) * (len(regions) + 1) + region_codes, sort=False
    )
    rates = [
        core.usd_rate(
            _currency(currencies, pair // (len(regions) + 1) - 1),
            str(regions[pair % (len(regions) + 1)]),
        )
        for pair in pairs.tolist()
    ]
    return np.asarray(rates, dtype=np.float64)[pair_codes]


def _currency(currencies: pd.Index, code: int) -> str | None:
    return None if code < 0 else str(currencies[code]) or None


def _tags(codes: IntArray, names: pd.Index, kind: int) -> IntArray:
    tags = np.array([core.tag(kind, str(name)) for name in names], dtype=np.int64)
    return tags[codes].astype(np.int64)


def _map_unique(column: pd.Series, kind: int) -> IntArray:
    codes, names = pd.factorize(column, sort=False)
    return _tags(codes.astype(np.int64), names, kind)


def _codes(column: pd.Series, encode: Callable[[str], int]) -> IntArray:
    codes, names = pd.factorize(column, sort=False)
    values = np.array([encode(str(name)) for name in names], dtype=np.int64)
    return values[codes].astype(np.int64)


@dataclass(frozen=True)
class Timeline:
    """Transactions grouped by one entity (customer or merchant) in event order.

    ``order`` maps sorted position to input row, ``position`` the inverse. ``keys`` are
    ``entity * stride + rank(time)``, ascending in sorted order, so one ``searchsorted`` finds,
    for every row at once, where a time window starts inside that row's own entity. Queries are
    made in sorted order, where they ascend, which keeps the binary searches cache-friendly.
    """

    entity: IntArray
    order: IntArray
    position: IntArray
    keys: IntArray
    times: IntArray
    stride: int

    @classmethod
    def build(cls, entity: IntArray, t_us: IntArray, times: IntArray) -> Timeline:
        """``times`` is ``np.sort(t_us)``, shared by the timelines of one frame."""
        rows = np.arange(len(entity), dtype=np.int64)
        order = np.lexsort((rows, t_us, entity)).astype(np.int64)
        position = np.empty_like(order)
        position[order] = rows
        stride = len(times) + 1
        ranks = np.searchsorted(times, t_us).astype(np.int64)
        keys = (entity * stride + ranks)[order]
        return cls(entity, order, position, keys, times, stride)

    def window_start(self, bound: IntArray) -> IntArray:
        """Per sorted position: the sorted position of the entity's first event after ``bound``
        (given per input row)."""
        ranks = np.searchsorted(self.times, bound, side="right").astype(np.int64)
        starts: IntArray = np.searchsorted(
            self.keys, (self.entity * self.stride + ranks)[self.order]
        )
        return starts.astype(np.int64)

    def count(self, start: IntArray) -> IntArray:
        """Per input row: earlier events of its entity from ``start`` (see :meth:`window_start`)."""
        counts: IntArray = np.arange(len(start), dtype=np.int64) - start
        return counts[self.position]

    def prefix_sums(self, values: IntArray) -> IntArray:
        """Cumulative sums in sorted order with a leading zero (int64, wrapping on overflow)."""
        return np.concatenate((np.zeros(1, dtype=np.int64), np.cumsum(values[self.order])))

    def total(self, prefix: IntArray, start: IntArray) -> IntArray:
        """Per input row: the sum of a value over the events :meth:`count` counts."""
        totals: IntArray = prefix[:-1] - prefix[start]
        return totals[self.position]

    def entity_start(self) -> IntArray:
        """Per sorted position: the sorted position of its entity's first event."""
        starts: IntArray = np.searchsorted(self.keys, self.entity[self.order] * self.stride)
        return starts.astype(np.int64)

    def previous_row(self) -> tuple[BoolArray, IntArray]:
        """Per input row: whether its entity has an earlier event, and that event's row."""
        has_previous = (np.arange(len(self.order)) > self.entity_start())[self.position]
        previous = self.order[np.maximum(self.position - 1, 0)]
        return has_previous, previous


@dataclass(frozen=True)
class LabelIndex:
    """Labels grouped by merchant and sorted by ``labeled_at``, for counts over label windows."""

    keys: IntArray
    times: IntArray
    stride: int
    fraud_prefix: IntArray

    @classmethod
    def build(cls, merchant: IntArray, labeled_us: IntArray, is_fraud: BoolArray) -> LabelIndex:
        order = np.lexsort((labeled_us, merchant))
        times = np.sort(labeled_us)
        stride = len(times) + 1
        ranks = np.searchsorted(times, labeled_us).astype(np.int64)
        keys = (merchant * stride + ranks)[order]
        fraud = is_fraud[order].astype(np.int64)
        prefix = np.concatenate((np.zeros(1, dtype=np.int64), np.cumsum(fraud)))
        return cls(keys, times, stride, prefix)

    def counts(
        self, timeline: Timeline, lower: IntArray, upper: IntArray
    ) -> tuple[IntArray, IntArray]:
        """Per input row of the merchant ``timeline``: its merchant's labels and fraud labels with
        ``lower <= labeled_at <= upper``."""
        base = timeline.entity * self.stride
        low_rank = np.searchsorted(self.times, lower, side="left").astype(np.int64)
        high_rank = np.searchsorted(self.times, upper, side="right").astype(np.int64)
        low = np.searchsorted(self.keys, (base + low_rank)[timeline.order])
        high = np.searchsorted(self.keys, (base + high_rank)[timeline.order])
        labels: IntArray = (high - low).astype(np.int64)[timeline.position]
        frauds: IntArray = (self.fraud_prefix[high] - self.fraud_prefix[low])[timeline.position]
        return labels, frauds
