"""Rolling-origin backtest on any labelled transaction file, with label delay taken seriously.

Each fold, counted in whole UTC days (the Fraud Detection Handbook's prequential set-up):

    | train: T days | delay: D days | test: U days |
      labels known    labels not yet   scored, one day at a time
                      known: unused

- The model trains on all T train days for a fixed ``train.num_boost_round`` rounds. A week
  cannot spare a validation set big enough for early stopping (on the simulator, stopping on
  the last train day cost 0.2 of average precision in some folds); ``validation_days > 0``
  holds out that many last train days for early stopping anyway. The delay days are skipped:
  at the start of the test period their labels would not have arrived yet.
- Each test day drops the customers already known to be compromised that morning (they are
  blocked already, and counting them would flatter the model). A fraud's label is known on test
  day i (0-based) when the fraud happened before delay day i, i.e. on a train day, on delay days
  0 .. i-1, or earlier. ``exclude_known`` says how far back that memory goes:
  ``ever`` (default): any fraud before delay day i, however old;
  ``since-train-start``: the Fraud Detection Handbook's rule, only frauds from the fold's first
  train day on, which makes test sets comparable with its published results;
  ``none``: nobody is dropped.
  Every test-period row is scored either way; the report counts how many rows and frauds each
  fold's rule kept, and ``BacktestReport.predictions`` has every row with a ``kept`` flag.
- ``tune`` (off by default) runs a seeded hyper-parameter search per fold before it trains
  (``training.tuning``). The search is handed the fold's train-day rows and nothing later: it
  trains its trials on the first of those days and scores them on the last ones, after a label
  delay of its own, then the fold's booster trains as above with the chosen parameters.
- Folds are ``step_days`` apart and anchored at the end of the file: the last fold tests on the
  last U days, earlier folds step back in time.

Labels: the file's ``is_fraud`` column is the truth, and every label is taken to arrive D days
after its transaction (``labeled_at = timestamp + D``). Label-based features and the
known-compromised rule both use that arrival time, so nothing is known before it could be.

Missing optional transaction fields are filled with fixed defaults (``training.labelled_file``)
so the feature code runs on files with only the required columns; features built on them are
then constant. Each fold reports the features constant on its train rows; ``drop_features``
and ``drop_constant`` train and score the booster without some (``training.feature_subsets``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd

from training.dataset import TARGET, Split, featurize, labelled_slice, rows_between
from training.evaluate import (
    DEFAULT_TOP_K,
    average_precision,
    card_precision_at_k,
    roc_auc,
    utc_days,
)
from training.feature_subsets import (
    constant_features,
    every_and_any,
    in_feature_order,
    kept_features,
)
from training.labelled_file import delayed_labels, normalise
from training.train import TrainConfig, fit_booster, predict
from training.tuning import TuneConfig, TuningResult, tune_on_training_days

logger = logging.getLogger(__name__)

METRICS = ("roc_auc", "average_precision", "card_precision_at_k")
DAY = pd.Timedelta(days=1)
ExcludeKnown = Literal["ever", "since-train-start", "none"]
EXCLUDE_RULES: tuple[str, ...] = get_args(ExcludeKnown)
PREDICTION_COLUMNS = (
    "transaction_id",
    "fold",
    "timestamp",
    "customer_id",
    "score",
    TARGET,
    "kept",
)


@dataclass(frozen=True)
class BacktestConfig:
    train_days: int = 7
    delay_days: int = 7
    test_days: int = 7
    folds: int = 4
    step_days: int = 7
    validation_days: int = 0
    top_k: int = DEFAULT_TOP_K
    exclude_known: ExcludeKnown = "ever"
    train: TrainConfig = field(default_factory=TrainConfig)
    # Features the booster never sees (names from FEATURE_NAMES; see training.feature_subsets).
    drop_features: tuple[str, ...] = ()
    # Also drop, fold by fold, the features constant on that fold's train rows.
    drop_constant: bool = False
    # A hyper-parameter search per fold on its train days only (training.tuning); None: off.
    tune: TuneConfig | None = None

    def __post_init__(self) -> None:
        if min(self.train_days, self.test_days, self.folds, self.step_days) < 1:
            raise ValueError("train days, test days, folds and step must be at least 1")
        if self.delay_days < 0 or not 0 <= self.validation_days < self.train_days:
            raise ValueError("need delay_days >= 0 and 0 <= validation_days < train_days")
        if self.exclude_known not in EXCLUDE_RULES:
            raise ValueError(f"exclude_known must be one of {', '.join(EXCLUDE_RULES)}")
        kept_features(in_feature_order(self.drop_features))  # refuses unknown names, or all
        if self.tune is not None and self.tune.days_needed >= self.train_days:
            raise ValueError(
                f"tuning needs more train days than its validation + delay days "
                f"({self.tune.days_needed:g}); got train_days={self.train_days}"
            )

    @property
    def fold_days(self) -> int:
        return self.train_days + self.delay_days + self.test_days


# ---------------------------------------------------------------------------------------------
# Folds


@dataclass(frozen=True)
class FoldWindow:
    index: int
    train_start: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp
    config: BacktestConfig

    @property
    def train_end(self) -> pd.Timestamp:
        return self.train_start + self.config.train_days * DAY

    @property
    def validation_start(self) -> pd.Timestamp:
        return self.train_end - self.config.validation_days * DAY


def fold_windows(timestamps: pd.Series, config: BacktestConfig) -> list[FoldWindow]:
    """Fold windows anchored at the file's last day; raises if the file is too short."""
    first_day = timestamps.min().floor("D")
    end = timestamps.max().floor("D") + DAY
    windows = []
    for index in range(config.folds):
        steps_back = config.folds - 1 - index
        test_end = end - steps_back * config.step_days * DAY
        train_start = test_end - config.fold_days * DAY
        test_start = test_end - config.test_days * DAY
        windows.append(FoldWindow(index, train_start, test_start, test_end, config))
    if windows[0].train_start < first_day:
        covered = (end - first_day).days
        needed = config.fold_days + (config.folds - 1) * config.step_days
        raise ValueError(f"the file covers {covered} days; this backtest needs {needed}")
    return windows


def fold_test_rows(frame: pd.DataFrame, window: FoldWindow) -> tuple[pd.DataFrame, int]:
    """Every test-period row, with ``kept`` False where the fold's rule drops its customer.

    On test day i the known-compromised customers are those with a fraud before delay day i
    (``window.train_end + i`` days), from the start of the file (``ever``) or of the fold's train
    days (``since-train-start``). Returns the rows and how many (customer, day) pairs the rule
    removed.
    """
    config = window.config
    since = window.train_start if config.exclude_known == "since-train-start" else None
    frauds = frame[frame[TARGET]]
    if since is not None:
        frauds = frauds[frauds["timestamp"] >= since]
    days, removed = [], 0
    for offset in range(config.test_days):
        day = window.test_start + offset * DAY
        rows = rows_between(frame, day, day + DAY)
        if config.exclude_known == "none":
            drop = pd.Series(False, index=rows.index)
        else:
            known = frauds.loc[frauds["timestamp"] < window.train_end + offset * DAY]
            drop = rows["customer_id"].isin(known["customer_id"].unique())
        removed += rows.loc[drop, "customer_id"].nunique()
        days.append(rows.assign(kept=~drop))
    return pd.concat(days, ignore_index=True), removed


def evaluation_rows(frame: pd.DataFrame, window: FoldWindow) -> tuple[pd.DataFrame, int]:
    """The test-period rows the fold's rule keeps (see ``fold_test_rows``)."""
    rows, removed = fold_test_rows(frame, window)
    return rows[rows["kept"]].drop(columns="kept").reset_index(drop=True), removed


@dataclass(frozen=True)
class FoldResult:
    fold: int
    train_start: str
    test_start: str
    test_end: str
    train_rows: int
    train_frauds: int
    period_rows: int
    period_frauds: int
    test_rows: int
    test_frauds: int
    known_compromised_removed: int
    best_iteration: int
    roc_auc: float
    average_precision: float
    card_precision_at_k: float
    seconds: float
    # Features with one value on every train row (no signal), and those the booster went
    # without (the config's drop_features, plus the constant ones with drop_constant).
    constant_features: tuple[str, ...] = ()
    dropped_features: tuple[str, ...] = ()
    # The fold's hyper-parameter search (chosen params, best validation AP, every trial).
    tuning: TuningResult | None = None


def run_fold(featurized: pd.DataFrame, window: FoldWindow) -> tuple[FoldResult, pd.DataFrame]:
    """Train on the fold's train days, score every test-period row, measure on the kept ones.

    Returns the result and the fold's predictions (``PREDICTION_COLUMNS``).
    """
    started = time.perf_counter()
    config = window.config
    train = labelled_slice(featurized, "train", window.train_start, window.validation_start)
    constant = constant_features(train.frame)
    dropped = fold_dropped_features(config, constant)
    features = kept_features(dropped)
    train = replace(train, feature_names=features)
    validation = None
    if config.validation_days:
        validation = labelled_slice(
            featurized, "validation", window.validation_start, window.train_end, features
        )
    tuning = fold_tuning(featurized, window, features)
    booster_config = config.train if tuning is None else tuning.chosen_config(config.train)
    fitted = fit_booster(train, validation, booster_config)
    trained_on = [split for split in (train, validation) if split is not None]
    period, removed = fold_test_rows(featurized, window)
    everything = Split(
        "test-period", period, features, window.test_start, window.test_end, window.test_end
    )
    all_scores = predict(fitted.booster, everything)
    kept = period["kept"].to_numpy()
    rows, scores = period[kept], all_scores[kept]
    target = rows[TARGET].to_numpy(dtype=np.int8)
    card = card_precision_at_k(
        utc_days(rows["timestamp"]), rows["customer_id"].to_numpy(), scores, target, config.top_k
    )
    predictions = pd.DataFrame(
        {
            "transaction_id": period["transaction_id"].to_numpy(),
            "fold": np.full(len(period), window.index, dtype=np.int32),
            "timestamp": period["timestamp"].to_numpy(),
            "customer_id": period["customer_id"].to_numpy(),
            "score": all_scores,
            TARGET: period[TARGET].to_numpy(dtype=bool),
            "kept": kept,
        }
    )
    result = FoldResult(
        fold=window.index,
        train_start=window.train_start.isoformat(),
        test_start=window.test_start.isoformat(),
        test_end=window.test_end.isoformat(),
        train_rows=sum(split.rows for split in trained_on),
        train_frauds=sum(int(split.target().sum()) for split in trained_on),
        period_rows=len(period),
        period_frauds=int(period[TARGET].sum()),
        test_rows=len(rows),
        test_frauds=int(target.sum()),
        known_compromised_removed=removed,
        best_iteration=fitted.best_iteration,
        roc_auc=roc_auc(target, scores),
        average_precision=average_precision(target, scores),
        card_precision_at_k=card.mean,
        seconds=time.perf_counter() - started,
        constant_features=constant,
        dropped_features=dropped,
        tuning=tuning,
    )
    return result, predictions


def fold_tuning(
    featurized: pd.DataFrame, window: FoldWindow, features: tuple[str, ...]
) -> TuningResult | None:
    """The fold's search, handed the rows of its train days and nothing later (no peeking)."""
    config = window.config
    if config.tune is None:
        return None
    period = (window.train_start, window.train_end)
    rows = rows_between(featurized, *period)
    return tune_on_training_days(rows, features, period, config.train, config.tune)


def fold_dropped_features(config: BacktestConfig, constant: tuple[str, ...]) -> tuple[str, ...]:
    """The features a fold's booster goes without, in FEATURE_NAMES order."""
    return in_feature_order({*config.drop_features, *(constant if config.drop_constant else ())})


@dataclass(frozen=True)
class BacktestReport:
    config: BacktestConfig
    folds: list[FoldResult]
    feature_seconds: float
    # Every test-period row of every fold (PREDICTION_COLUMNS); not part of the JSON report.
    predictions: pd.DataFrame = field(repr=False, compare=False)

    def summary(self) -> dict[str, dict[str, float]]:
        """Mean and sample standard deviation (ddof=1; 0 for a single fold) per metric."""
        summary = {}
        for metric in METRICS:
            values = np.array([getattr(fold, metric) for fold in self.folds])
            std = float(values.std(ddof=1)) if values.size > 1 else 0.0
            summary[metric] = {"mean": float(values.mean()), "std": std}
        return summary

    def constant_features(self) -> dict[str, list[str]]:
        """Features constant on the train rows of every fold, and of at least one fold."""
        return every_and_any(fold.constant_features for fold in self.folds)

    def to_json(self) -> dict[str, Any]:
        return {
            "config": _without_none(asdict(self.config), "tune"),
            "folds": [_without_none(asdict(fold), "tuning") for fold in self.folds],
            "summary": self.summary(),
            "constant_features": self.constant_features(),
            "feature_seconds": self.feature_seconds,
        }

    def tuned(self) -> bool:
        return self.config.tune is not None

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2))

    def write_predictions(self, path: Path) -> None:
        """Parquet, one row per test-period transaction per fold, ``kept`` by the fold's rule."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.predictions.to_parquet(path, index=False)


def _without_none(values: dict[str, Any], key: str) -> dict[str, Any]:
    """Leave an unset optional section out, so a report without tuning is the report it was."""
    return {name: value for name, value in values.items() if name != key or value is not None}


def run_backtest(
    frame: pd.DataFrame,
    config: BacktestConfig,
    on_fold: Callable[[FoldResult], None] | None = None,
) -> BacktestReport:
    """Features once over the whole file (point-in-time correct), then every fold in turn."""
    transactions = normalise(frame)
    windows = fold_windows(transactions["timestamp"], config)
    started = time.perf_counter()
    labels = delayed_labels(transactions, config.delay_days)
    featurized = featurize(transactions, labels)
    # featurize orders by time with a stable sort, and normalise already did: rows line up.
    featurized[TARGET] = transactions[TARGET].to_numpy()
    feature_seconds = time.perf_counter() - started
    logger.info("features rows=%d seconds=%.1f", len(featurized), feature_seconds)
    results, predictions = [], []
    for window in windows:
        result, fold_predictions = run_fold(featurized, window)
        predictions.append(fold_predictions)
        logger.info(
            "fold=%d auc=%.4f ap=%.4f", result.fold, result.roc_auc, result.average_precision
        )
        results.append(result)
        if on_fold is not None:
            on_fold(result)
    return BacktestReport(
        config, results, feature_seconds, pd.concat(predictions, ignore_index=True)
    )
