"""The labelled dataset: transactions with the features the worker sees, and labels known in time.

Two clocks matter. Features are computed over the whole history in time order by
``stream_app.features.offline_features``, which is point-in-time correct (a row only sees what had
happened, and which labels had arrived, by its own timestamp), so computing them once is safe.
Targets are different: a row is labelled only by a label whose ``labeled_at`` is at or before the
cut-off of the split the row belongs to, because that is all a model trained at that moment could
have known. Rows without such a label are left out (they are not assumed legit), unless the
caller opts into ``unlabelled_legit_after``, the "no chargeback within N days means legit"
convention of card issuers.

Splits are by timestamp, counted back from ``as_of``. Each split is followed by a gap of
``gap_days`` whose rows are used by no split: it is the time the split's labels get to arrive,
and the split's cut-off is the end of its gap (the moment the next split starts):

    | warm-up | train | gap | validation | gap | test | gap ]
                      ^ train labels as of here  ^ ...     ^ test labels as of as_of

Without a gap, the last days of every split would be nearly unlabelled (chargebacks take days),
and validation, which drives early stopping and the thresholds, would hold a handful of frauds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt
import pandas as pd

from stream_app.features import FEATURE_NAMES, offline_features
from stream_app.store import LAKE_LABELS, LAKE_TRANSACTIONS, ObjectStore, read_parquet_prefix

logger = logging.getLogger(__name__)

TARGET = "is_fraud"
LABELED_AT = "labeled_at"
CONTEXT_COLUMNS = ("transaction_id", "customer_id", "merchant_id", "timestamp", "amount")
# The simulator ships ground truth next to each transaction; it must never reach the features.
GROUND_TRUTH_COLUMNS = ("is_fraud", "scenario")


def utc_timestamp(value: pd.Timestamp | str) -> pd.Timestamp:
    """A timezone-aware UTC timestamp; naive input is taken as UTC, as on the wire."""
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def known_labels(labels: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Labels that had arrived by ``as_of``; a relabelled transaction keeps its latest label."""
    arrived = labels[pd.to_datetime(labels[LABELED_AT], utc=True) <= as_of]
    latest = arrived.sort_values(LABELED_AT, kind="stable").drop_duplicates(
        "transaction_id", keep="last"
    )
    return latest.assign(**{TARGET: latest[TARGET].astype(bool)}).reset_index(drop=True)


def featurize(transactions: pd.DataFrame, labels: pd.DataFrame | None) -> pd.DataFrame:
    """Transactions in time order with their context columns and every feature in FEATURE_NAMES.

    ``labels`` feed the label-based features only (point-in-time inside ``offline_features``);
    any ground-truth columns on the transactions are dropped first so nothing leaks.
    """
    inputs = transactions.drop(columns=list(GROUND_TRUTH_COLUMNS), errors="ignore")
    inputs = inputs.assign(timestamp=pd.to_datetime(inputs["timestamp"], utc=True))
    inputs = inputs.sort_values("timestamp", kind="stable").reset_index(drop=True)
    features = offline_features(inputs, labels)
    # A context column that is also a feature (``amount``) is kept once, as the feature.
    context = inputs[
        [name for name in CONTEXT_COLUMNS if name in inputs.columns and name not in FEATURE_NAMES]
    ]
    return pd.concat([context, features[list(FEATURE_NAMES)].astype(np.float32)], axis=1)


def attach_targets(
    featurized: pd.DataFrame,
    labels: pd.DataFrame,
    as_of: pd.Timestamp,
    unlabelled_legit_after: timedelta | None = None,
) -> pd.DataFrame:
    """Rows up to ``as_of`` with the target known at ``as_of``; rows without one are dropped.

    With ``unlabelled_legit_after`` set, a row older than that at ``as_of`` with no label counts
    as legit (its fraud report window has closed); younger unlabelled rows are still dropped.
    """
    rows = featurized[featurized["timestamp"] <= as_of]
    targets = known_labels(labels, as_of).set_index("transaction_id")[TARGET]
    target = rows["transaction_id"].map(targets)
    if unlabelled_legit_after is not None:
        matured = rows["timestamp"] <= as_of - pd.Timedelta(unlabelled_legit_after)
        target = target.where(target.notna() | ~matured, False)
    labelled = target.notna().to_numpy()
    return rows[labelled].assign(**{TARGET: target[labelled].astype(bool)})


def build_dataset(
    transactions: pd.DataFrame,
    labels: pd.DataFrame,
    as_of: pd.Timestamp,
    unlabelled_legit_after: timedelta | None = None,
) -> pd.DataFrame:
    """The labelled dataset from in-memory frames, as a model trained at ``as_of`` would see it."""
    cut_off = utc_timestamp(as_of)
    arrived = known_labels(labels, cut_off)
    featurized = featurize(transactions, arrived)
    return attach_targets(featurized, arrived, cut_off, unlabelled_legit_after)


@dataclass(frozen=True)
class Split:
    """One time slice of labelled rows, with the instant its labels were taken at."""

    name: str
    frame: pd.DataFrame
    feature_names: tuple[str, ...]
    start: pd.Timestamp
    end: pd.Timestamp
    labels_as_of: pd.Timestamp

    @property
    def rows(self) -> int:
        return len(self.frame)

    def features(self) -> npt.NDArray[np.float32]:
        """Feature matrix in ``feature_names`` order, the layout the booster and worker use."""
        return self.frame[list(self.feature_names)].to_numpy(dtype=np.float32)

    def target(self) -> npt.NDArray[np.int8]:
        return self.frame[TARGET].to_numpy(dtype=np.int8)


def rows_between(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """The rows with ``start <= timestamp < end``."""
    return frame[(frame["timestamp"] >= start) & (frame["timestamp"] < end)]


def labelled_slice(
    frame: pd.DataFrame,
    name: str,
    start: pd.Timestamp,
    end: pd.Timestamp,
    features: tuple[str, ...] = FEATURE_NAMES,
) -> Split:
    """The rows of ``[start, end)`` of a frame whose rows already carry their target (the
    backtest's and the tuning search's), as a split with its labels taken at its end."""
    rows = rows_between(frame, start, end).reset_index(drop=True)
    return Split(name, rows, features, start, end, end)


@dataclass(frozen=True)
class Splits:
    train: Split
    validation: Split
    test: Split

    def all(self) -> tuple[Split, Split, Split]:
        return self.train, self.validation, self.test


@dataclass(frozen=True)
class SplitPlan:
    """Window lengths in days, counted back from ``as_of``: test last, validation before it.

    ``gap_days`` follow each split (see the module docstring). ``warmup_days`` at the start of
    the history are not trained on: their history-based features (velocities, customer habits)
    were computed without the history before the data begins.
    """

    validation_days: float = 4.0
    test_days: float = 5.0
    gap_days: float = 3.0
    warmup_days: float = 1.0
    unlabelled_legit_after: timedelta | None = None


@dataclass(frozen=True)
class Window:
    start: pd.Timestamp
    end: pd.Timestamp
    labels_as_of: pd.Timestamp


def split_windows(
    first_seen: pd.Timestamp, as_of: pd.Timestamp, plan: SplitPlan
) -> dict[str, Window]:
    """Train, validation and test windows (end exclusive) and their label cut-offs."""
    gap = pd.Timedelta(days=plan.gap_days)
    test_end = as_of - gap
    test_start = test_end - pd.Timedelta(days=plan.test_days)
    validation_start = test_start - gap - pd.Timedelta(days=plan.validation_days)
    train_end = validation_start - gap
    train_start = first_seen + pd.Timedelta(days=plan.warmup_days)
    if train_start >= train_end:
        raise ValueError(
            f"history too short: training would start at {train_start} and end at {train_end}"
        )
    return {
        "train": Window(train_start, train_end, validation_start),
        "validation": Window(validation_start, test_start - gap, test_start),
        "test": Window(test_start, test_end, as_of),
    }


def _split(
    featurized: pd.DataFrame, labels: pd.DataFrame, name: str, window: Window, plan: SplitPlan
) -> Split:
    stamps = featurized["timestamp"]
    inside = featurized[(stamps >= window.start) & (stamps < window.end)]
    frame = attach_targets(inside, labels, window.labels_as_of, plan.unlabelled_legit_after)
    logger.info(
        "split=%s start=%s end=%s labels_as_of=%s rows=%d frauds=%d",
        name,
        window.start.isoformat(),
        window.end.isoformat(),
        window.labels_as_of.isoformat(),
        len(frame),
        int(frame[TARGET].sum()),
    )
    frame = frame.reset_index(drop=True)
    return Split(name, frame, FEATURE_NAMES, window.start, window.end, window.labels_as_of)


def split_by_time(
    featurized: pd.DataFrame, labels: pd.DataFrame, as_of: pd.Timestamp, plan: SplitPlan
) -> Splits:
    """Train / validation / test by timestamp, each labelled as of its cut-off (no leakage).

    Raises ValueError if a split has no rows or only one class: it could not train or measure.
    """
    as_of = utc_timestamp(as_of)
    windows = split_windows(featurized["timestamp"].min(), as_of, plan)
    splits = {
        name: _split(featurized, labels, name, window, plan) for name, window in windows.items()
    }
    for split in splits.values():
        _require_two_classes(split)
    return Splits(**splits)


def _require_two_classes(split: Split) -> None:
    frauds = int(split.frame[TARGET].sum())
    if frauds in {0, split.rows}:
        raise ValueError(
            f"{split.name} split has {split.rows} labelled rows and {frauds} frauds; "
            "it needs both classes (longer history, or a later as_of)"
        )


def dataset_splits(
    transactions: pd.DataFrame, labels: pd.DataFrame, as_of: pd.Timestamp, plan: SplitPlan
) -> Splits:
    """In-memory frames to time splits: the whole path the trainer runs, without the lake."""
    cut_off = utc_timestamp(as_of)
    arrived = known_labels(labels, cut_off)
    featurized = featurize(transactions, arrived)
    return split_by_time(featurized, arrived, cut_off, plan)


def _dates(first: date, last: date) -> list[date]:
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


def _read_partitions(store: ObjectStore, prefix: str, days: list[date]) -> pd.DataFrame:
    """Concatenate the ``date=`` partitions that exist; a missing day is just empty."""
    parts = [read_parquet_prefix(store, f"{prefix}/date={day.isoformat()}/") for day in days]
    non_empty = [part for part in parts if len(part)]
    if not non_empty:
        raise ValueError(f"no data under {prefix}/ for {days[0]} .. {days[-1]}")
    combined: pd.DataFrame = pd.concat(non_empty, ignore_index=True)
    return combined


def load_lake(
    store: ObjectStore, as_of: pd.Timestamp, history_days: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Transactions of the last ``history_days`` days up to ``as_of``, and the labels known then.

    Labels (partitioned by the day they arrived) are read over twice that span: the label-based
    features of the first transactions look back at labels that arrived before them.
    """
    cut_off = utc_timestamp(as_of)
    first_day = (cut_off - pd.Timedelta(days=history_days)).date()
    transactions = _read_partitions(store, LAKE_TRANSACTIONS, _dates(first_day, cut_off.date()))
    stamps = pd.to_datetime(transactions["timestamp"], utc=True)
    transactions = transactions[stamps <= cut_off]
    first_label_day = first_day - timedelta(days=history_days)
    label_days = _dates(first_label_day, cut_off.date())
    labels = known_labels(_read_partitions(store, LAKE_LABELS, label_days), cut_off)
    logger.info(
        "lake as_of=%s transactions=%d labels=%d",
        cut_off.isoformat(),
        len(transactions),
        len(labels),
    )
    return transactions.reset_index(drop=True), labels
