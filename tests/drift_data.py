"""Drift test data shared by the unit and integration drift tests: the simulator's seeded
history scored by a fixed stand-in model, reference samples and windows cut from it, a shifted
copy, and the verdict JSON the worker would publish for it.

The stand-in model is a logistic of a few features: drift detection needs a score column, not
a good model. Histories are cached per arguments, so the tests that share one pay for it once.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from drift.checks import CheckConfig
from drift.windows import DECISION_COLUMN, Row, Window, Windower, WindowPolicy
from producers.simulator import DriftSchedule, Simulator, SimulatorConfig
from stream_app.features import FEATURE_NAMES, offline_features
from stream_app.schemas import Verdict
from stream_app.settings import DriftSettings

SEED = 7
CUSTOMERS = 3_000  # about 3,000 transactions a day
DRIFT_AT = 150_000  # about 15 days (22 windows) after the reference period
REFERENCE_DAYS = (28, 35)
REFERENCE_ROWS = 5_000
WINDOW_ROWS = 2_000
REVIEW_THRESHOLD = 0.5
BLOCK_THRESHOLD = 0.9
EVENT_TIME = "event_time"
CONFIG = CheckConfig.from_settings(DriftSettings())
COLUMNS = CONFIG.columns


@dataclass(frozen=True)
class ScoredHistory:
    frame: pd.DataFrame  # features + score + decision + event_time (epoch seconds), time order
    start: datetime
    drift_row: int | None  # row of the first drifted transaction


def stand_in_score(features: pd.DataFrame) -> np.ndarray:
    """A fixed logistic of features a fraud model leans on; about 4% of scores reach 0.5."""
    logit = (
        -3.7
        + 0.55 * np.log1p(features["amount_usd"])
        + 1.6 * features["device_first_seen"]
        + 1.2 * features["region_changed"]
        + 4.0 * features["merchant_fraud_rate_30d"].clip(lower=0.0)
        + 0.6 * np.log1p(features["cust_txn_count_1h"])
    )
    return np.asarray(1.0 / (1.0 + np.exp(-logit)), dtype=np.float32)


def decisions(scores: np.ndarray) -> np.ndarray:
    return np.where(
        scores >= BLOCK_THRESHOLD,
        "block",
        np.where(scores >= REVIEW_THRESHOLD, "review", "approve"),
    )


@functools.cache
def scored_history(
    seed: int, days: int, drift_at: int | None = None, customers: int = CUSTOMERS
) -> ScoredHistory:
    """Seeded simulator history, offline features (with the labels known at each point), scores."""
    schedule = DriftSchedule.standard(at_transaction=drift_at) if drift_at else DriftSchedule()
    config = SimulatorConfig(seed=seed, n_customers=customers, drift=schedule)
    simulator = Simulator(config)
    batches = list(simulator.iter_days(days))
    transactions = pd.concat([batch.transactions for batch in batches], ignore_index=True)
    labels = pd.concat([batch.released_labels for batch in batches], ignore_index=True)
    frame = offline_features(transactions, labels)
    frame["score"] = stand_in_score(frame)
    frame[DECISION_COLUMN] = decisions(frame["score"].to_numpy())
    stamps = pd.to_datetime(transactions["timestamp"], utc=True)
    frame[EVENT_TIME] = (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    drift_row = simulator.drift_log[0].first_transaction_index if simulator.drift_log else None
    return ScoredHistory(frame, config.start, drift_row)


def rows_between(history: ScoredHistory, first_day: int, last_day: int) -> pd.DataFrame:
    """Rows with event time in [start + first_day, start + last_day)."""
    low, high = ((history.start + timedelta(days=day)).timestamp() for day in (first_day, last_day))
    times = history.frame[EVENT_TIME]
    return history.frame[(times >= low) & (times < high)]


def reference_sample(history: ScoredHistory, seed: int = SEED) -> pd.DataFrame:
    """As training logs it: features + score of validation rows, no decisions."""
    period = rows_between(history, *REFERENCE_DAYS)
    sample = period.sample(n=REFERENCE_ROWS, random_state=seed).sort_index()
    return sample[list(COLUMNS)].reset_index(drop=True)


def as_rows(frame: pd.DataFrame) -> list[Row]:
    """Window rows as the monitor builds them from verdicts (offset = row number)."""
    values = frame[list(COLUMNS)].to_numpy(dtype=np.float64).tolist()
    return [
        Row(event_time=float(t), values=tuple(v), decision=str(d), model_version="1", offset=i)
        for i, (t, v, d) in enumerate(
            zip(frame[EVENT_TIME], values, frame[DECISION_COLUMN], strict=True)
        )
    ]


def count_windows(frame: pd.DataFrame, size: int = WINDOW_ROWS) -> list[Window]:
    """Count-only windows (the time limit far away), in time order."""
    windower = Windower(WindowPolicy(size, 1e9, size), COLUMNS)
    return [window for row in as_rows(frame) for window in windower.add(row)]


AMOUNT_FEATURES = [name for name in FEATURE_NAMES if "amount" in name and "zscore" not in name]
GROCERY_CODE = 0.0  # any one category code: the shift sends 40% of rows to it


def history() -> ScoredHistory:
    return scored_history(3, days=40, customers=1_000)


def samples(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Reference (no decisions, as training logs it) and a window from the same days."""
    period = rows_between(history(), 30, 40)
    reference = period.sample(n=5_000, random_state=seed)
    window = period.drop(reference.index).sample(n=5_000, random_state=seed + 1)
    return reference[list(COLUMNS)].reset_index(drop=True), window.reset_index(drop=True)


def shifted(window: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Amounts x1.5 everywhere, and 40% of the rows moved to one merchant category."""
    moved = window.copy()
    moved[AMOUNT_FEATURES] = moved[AMOUNT_FEATURES] * 1.5
    chosen = np.random.default_rng(seed).random(len(moved)) < 0.4
    moved.loc[chosen, "merchant_category_code"] = GROCERY_CODE
    return moved


FIRST_EVENT = datetime(2025, 2, 10, 8, tzinfo=UTC)
STEP = timedelta(milliseconds=100)


def verdict_payloads(
    frame: pd.DataFrame, first_event: datetime = FIRST_EVENT, version: str = "1"
) -> list[bytes]:
    """Verdict JSON as the worker publishes it: all 36 features, score, decision; 10 per second."""
    features = frame[list(FEATURE_NAMES)].astype("float64").to_dict(orient="records")
    payloads = []
    for index, (values, score, decision) in enumerate(
        zip(features, frame["score"], frame["decision"], strict=True)
    ):
        moment = first_event + index * STEP
        verdict = Verdict(
            transaction_id=f"tx-{index}",
            customer_id=f"C{index % 97:05d}",
            score=float(score),
            decision=decision,
            model_name="fraudstream-xgb",
            model_version=version,
            event_time=moment,
            scored_at=moment,
            latency_ms=2.0,
            features=values,
        )
        payloads.append(verdict.to_bytes())
    return payloads
