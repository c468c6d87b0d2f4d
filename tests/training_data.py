"""Training test data shared across test modules: a small labelled file for backtests, and
featurized splits with a learnable signal for training and the MLflow registry.

Both are synthetic on purpose (no simulator): the signal is known, so a test can tell a good
model from one trained on shuffled labels.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from stream_app.features import FEATURE_NAMES
from stream_app.model import ModelBundle
from training.backtest import BacktestConfig
from training.dataset import SplitPlan, Splits, split_by_time
from training.registry import publish
from training.train import TrainConfig

# --- backtests ---------------------------------------------------------------------------------

BACKTEST_START = pd.Timestamp("2025-01-01", tz="UTC")
SMALL = BacktestConfig(
    train_days=3,
    delay_days=2,
    test_days=2,
    folds=2,
    step_days=2,
    top_k=5,
    train=TrainConfig(num_boost_round=30, early_stopping_rounds=5, max_depth=3),
)


def day(offset: float) -> pd.Timestamp:
    return BACKTEST_START + pd.Timedelta(days=offset)


def labelled_file(days: int = 10, rows_per_day: int = 400, seed: int = 0) -> pd.DataFrame:
    """Only the required columns; fraud comes as bursts of large amounts at a few merchants."""
    rng = np.random.default_rng(seed)
    rows = days * rows_per_day
    fraud = rng.random(rows) < 0.03
    amount = np.where(fraud, rng.gamma(6.0, 120.0, rows), rng.gamma(2.0, 30.0, rows))
    merchant = np.where(fraud, rng.integers(0, 3, rows), rng.integers(3, 60, rows))
    return pd.DataFrame(
        {
            "transaction_id": [f"t{index}" for index in range(rows)],
            "timestamp": day(0) + pd.to_timedelta(rng.uniform(0, days * 86_400, rows), unit="s"),
            "customer_id": [f"c{value}" for value in rng.integers(0, 500, rows)],
            "merchant_id": [f"m{value}" for value in merchant],
            "amount": amount.round(2),
            "is_fraud": fraud.astype(int),
        }
    )


# --- training and the registry -----------------------------------------------------------------

NAME = "fraudstream-test"
EXPERIMENT = "fraudstream-test"
SPLITS_START = pd.Timestamp("2025-03-01", tz="UTC")
FAST = TrainConfig(num_boost_round=40, early_stopping_rounds=10, max_depth=4)


def synthetic_splits(seed: int = 0, rows: int = 5_000) -> Splits:
    """Featurized rows with a learnable signal in two features; every label on time."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(rows, len(FEATURE_NAMES))).astype(np.float32)
    fraud = rng.random(rows) < 1 / (1 + np.exp(4.3 - 1.6 * values[:, -1] - 1.1 * values[:, -2]))
    stamps = SPLITS_START + pd.to_timedelta(np.sort(rng.uniform(0, 12 * 86_400, rows)), unit="s")
    frame = pd.DataFrame(values, columns=list(FEATURE_NAMES)).assign(
        transaction_id=[f"t{index}" for index in range(rows)],
        customer_id=[f"c{value}" for value in rng.integers(0, 300, rows)],
        merchant_id="m1",
        timestamp=stamps,
        amount=rng.gamma(2.0, 40.0, rows).astype(np.float32),
    )
    labels = pd.DataFrame(
        {"transaction_id": frame["transaction_id"], "is_fraud": fraud, "labeled_at": stamps}
    )
    plan = SplitPlan(validation_days=3, test_days=3, gap_days=0, warmup_days=0)
    return split_by_time(frame, labels, SPLITS_START + pd.Timedelta(days=12), plan)


def with_shuffled_training_labels(splits: Splits) -> Splits:
    """Same validation and test, but a train target with the signal destroyed: a worse model."""
    frame = splits.train.frame
    shuffled = np.random.default_rng(1).permutation(frame["is_fraud"].to_numpy())
    return replace(splits, train=replace(splits.train, frame=frame.assign(is_fraud=shuffled)))


def publish_model(client: Any, bundle: ModelBundle, splits: Splits) -> Any:
    return publish(
        client,
        experiment=EXPERIMENT,
        name=NAME,
        bundle=bundle,
        splits=splits,
        params=FAST.as_params(),
    )
