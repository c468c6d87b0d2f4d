"""Hyper-parameter search that never sees a test period: a seeded random search, training days only.

Given only the rows of a training period ``[start, end)``, the search splits them in time order,
the same way the backtest splits a fold:

    | inner train            | delay: D days | validation: V days ]
      labels known by the      labels not yet  scored by each trial
      validation start         known: unused                    ^ end of the training days

The inner train keeps only rows whose labels had arrived when the validation slice starts
(labels arrive ``delay_days`` after their transaction, the backtest's rule), so a trial is
trained as it could have been at that moment, and scored on a later slice of days. Every trial
trains for its own fixed ``num_boost_round`` (no early stopping: stopping on the slice we score
on would flatter it) and is scored by the **average precision** on the validation slice: at
fraud rates well under 1 % it is the metric that tracks the top of the queue, and the one the
backtest and the champion gate report.

Trial 0 is always the base configuration (the untuned booster), so the search picks something
else only when it beats the defaults on the validation slice. The other trials are drawn from
``SEARCH_SPACE`` with ``numpy.random.default_rng(seed)``, all before any training: the same seed
gives the same candidates, and with XGBoost's fixed seed and threads the same choice. Ties go to
the lower trial number.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from training.dataset import TARGET, Split, labelled_slice
from training.evaluate import average_precision
from training.train import TrainConfig, fit_booster, predict

logger = logging.getLogger(__name__)

Draw = Callable[[np.random.Generator], float | int]


def _integers(low: int, high: int) -> Draw:
    """Uniform over low..high, both included."""
    return lambda rng: int(rng.integers(low, high + 1))


def _uniform(low: float, high: float) -> Draw:
    return lambda rng: round(float(rng.uniform(low, high)), 4)


def _log_uniform(low: float, high: float) -> Draw:
    """Uniform in log space: as many draws in 0.02 .. 0.2 as in 0.2 .. 2."""
    return lambda rng: round(float(np.exp(rng.uniform(np.log(low), np.log(high)))), 4)


# The searched TrainConfig fields and their ranges, drawn in this order for every trial. The
# ranges bracket XGBoost's usual defaults; the rounds stay small enough for a 2-core machine.
SEARCH_SPACE: dict[str, Draw] = {
    "max_depth": _integers(3, 8),
    "learning_rate": _log_uniform(0.02, 0.3),
    "num_boost_round": _integers(50, 400),
    "min_child_weight": _log_uniform(0.5, 20.0),
    "subsample": _uniform(0.5, 1.0),
    "colsample_bytree": _uniform(0.5, 1.0),
    "reg_lambda": _log_uniform(0.1, 10.0),
}


@dataclass(frozen=True)
class TuneConfig:
    """``trials`` candidates (the base one included), scored on the last ``validation_days``."""

    trials: int
    validation_days: float
    delay_days: float
    seed: int = 0

    def __post_init__(self) -> None:
        if self.trials < 1 or self.validation_days <= 0 or self.delay_days < 0:
            raise ValueError("tuning needs trials >= 1, validation_days > 0 and delay_days >= 0")

    @property
    def days_needed(self) -> float:
        """Validation and delay days; the training period must be longer to leave inner train."""
        return self.validation_days + self.delay_days


@dataclass(frozen=True)
class Trial:
    index: int
    params: dict[str, float | int]
    average_precision: float


@dataclass(frozen=True)
class TuningResult:
    """The chosen parameters, every trial, and the slices they were trained and scored on."""

    chosen: dict[str, float | int]
    best_average_precision: float
    trials: tuple[Trial, ...]
    inner_train_start: str
    inner_train_end: str
    validation_start: str
    validation_end: str
    inner_train_rows: int
    validation_rows: int
    validation_frauds: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def chosen_config(self, base: TrainConfig) -> TrainConfig:
        return with_params(base, self.chosen)


def with_params(base: TrainConfig, params: dict[str, float | int]) -> TrainConfig:
    """``base`` with the searched fields set (names from SEARCH_SPACE, all TrainConfig fields)."""
    values: dict[str, Any] = dict(params)  # mypy cannot match a dict's values to each field
    return replace(base, **values)


def candidates(base: TrainConfig, trials: int, seed: int) -> list[dict[str, float | int]]:
    """Trial 0 is ``base``'s own values; the rest are seeded draws from SEARCH_SPACE."""
    rng = np.random.default_rng(seed)
    drawn = [{name: draw(rng) for name, draw in SEARCH_SPACE.items()} for _ in range(trials - 1)]
    return [{name: getattr(base, name) for name in SEARCH_SPACE}, *drawn]


def inner_splits(
    rows: pd.DataFrame,
    features: tuple[str, ...],
    period: tuple[pd.Timestamp, pd.Timestamp],
    tune: TuneConfig,
) -> tuple[Split, Split]:
    """The inner train and the validation slice of the training period ``[start, end)``.

    ``rows`` carry their target (``is_fraud``). A row outside the period is refused rather than
    dropped: a caller that hands the search anything later than its training days has peeked.
    """
    start, end = period
    stamps = rows["timestamp"]
    if len(rows) and (stamps.min() < start or stamps.max() >= end):
        raise ValueError("the search was handed rows outside the training days")
    validation_start = end - pd.Timedelta(days=tune.validation_days)
    inner_end = validation_start - pd.Timedelta(days=tune.delay_days)
    inner = labelled_slice(rows, "inner-train", start, inner_end, features)
    validation = labelled_slice(rows, "tuning-validation", validation_start, end, features)
    for split in (inner, validation):
        frauds = int(split.frame[TARGET].sum())
        if not 0 < frauds < split.rows:
            raise ValueError(
                f"tuning {split.name} has {split.rows} rows and {frauds} frauds; it needs both "
                "classes (longer training days, or fewer --tune-validation/delay days)"
            )
    return inner, validation


def search(inner: Split, validation: Split, base: TrainConfig, tune: TuneConfig) -> TuningResult:
    """Train every candidate on ``inner``, score it on ``validation``, keep the best AP."""
    target = validation.target()
    trials = []
    for index, params in enumerate(candidates(base, tune.trials, tune.seed)):
        fitted = fit_booster(inner, None, with_params(base, params))
        score = average_precision(target, predict(fitted.booster, validation))
        logger.info("tuning trial=%d ap=%.4f params=%s", index, score, params)
        trials.append(Trial(index, params, score))
    best = max(trials, key=lambda trial: (trial.average_precision, -trial.index))
    return TuningResult(
        chosen=best.params,
        best_average_precision=best.average_precision,
        trials=tuple(trials),
        inner_train_start=inner.start.isoformat(),
        inner_train_end=inner.end.isoformat(),
        validation_start=validation.start.isoformat(),
        validation_end=validation.end.isoformat(),
        inner_train_rows=inner.rows,
        validation_rows=validation.rows,
        validation_frauds=int(target.sum()),
    )


def tune_on_training_days(
    rows: pd.DataFrame,
    features: tuple[str, ...],
    period: tuple[pd.Timestamp, pd.Timestamp],
    base: TrainConfig,
    tune: TuneConfig,
) -> TuningResult:
    """The search on one training period's rows (the backtest's fold, the trainer's train split)."""
    inner, validation = inner_splits(rows, features, period, tune)
    return search(inner, validation, base, tune)
