"""What to simulate and how to tune the services for it: the plan of one demo run."""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from deploy.stack import python_command
from producers.simulator import (
    MIN_MERCHANTS,
    DriftSchedule,
    FraudRates,
    LabelPolicy,
    Simulator,
    SimulatorConfig,
    StreamSchedule,
    stream_schedule,
)

DAY = timedelta(days=1)
LIVE_DAYS = 10.0  # simulated days the live part spans: sizes the population
WARMUP_DAYS = 30.0  # the worker's longest feature window, so live features are warm
HISTORY_DAYS = 45  # lake history before the stream; the first champion trains on it
DRIFT_DAY = 3.0  # the drift starts this many simulated days into the live part
READY_AFTER_DRIFT_DAYS = 4.0  # the retrain waits for this much changed-world labelled data
TRAIN_AND_SWAP_DAYS = 4.0  # simulated days left after that for training, swap and new verdicts
VALIDATION_DAYS = 2.0
TEST_MARGIN_DAYS = 1.5  # the retrain's test split starts this long before training
RETRAIN_HISTORY_DAYS = 75
DEFAULT_FRAUD_SCALE = 2.0  # enough labelled fraud in a few minutes to retrain on
LAUNCH_ROUNDS = 25  # boosting rounds of the first champion (see the module docstring)
LABEL_DELAY = (timedelta(minutes=30), timedelta(hours=6))
CUSTOMERS_RANGE = (1000, 5000)
WINDOW_SHARE_OF_DAY = 0.4
WINDOW_ROWS_RANGE = (1000, 5000)
KEPT_RUNS = 3
RECENT = 2000  # verdicts the latency percentiles are taken over
MALFORMED = (b"not json", b'{"transaction_id": "demo-bad", "amount": -1}', b"\xff\xfe")
NEW_CATEGORIES = frozenset({"crypto_exchange", "ev_charging"})  # appear only after the drift
BASELINE_TAG = "demo_baseline"
WORKER_STARTUP_SECONDS = 180.0
MLFLOW_STARTUP_SECONDS = 120.0
DRAIN_SECONDS = 60.0
CAUGHT_UP_MS = 1000.0  # verdict latency below which the worker is keeping up


@dataclass(frozen=True)
class Population:
    """The simulated world: the same one for the history, the first champion and the stream."""

    seed: int
    customers: int
    merchants: int
    fraud_scale: float = 1.0

    @classmethod
    def sized_for(cls, args: argparse.Namespace) -> Population:
        """About one transaction per customer per simulated day: RATE x DURATION / LIVE_DAYS."""
        low, high = CUSTOMERS_RANGE
        sized = min(max(round(args.rate * args.duration / LIVE_DAYS, -2), low), high)
        chosen = int(args.customers or sized)
        return cls(args.seed, chosen, max(MIN_MERCHANTS, int(chosen * 0.4)), args.fraud_scale)

    def key(self) -> str:
        low, high = (int(delay.total_seconds()) for delay in LABEL_DELAY)
        return (
            f"seed={self.seed} customers={self.customers} merchants={self.merchants} "
            f"fraud_scale={self.fraud_scale:g} label_delay={low}s-{high}s rounds={LAUNCH_ROUNDS}"
        )

    def cli_args(self) -> list[str]:
        low, high = (int(delay.total_seconds()) for delay in LABEL_DELAY)
        return [
            "--seed",
            str(self.seed),
            "--customers",
            str(self.customers),
            "--merchants",
            str(self.merchants),
            "--fraud-scale",
            f"{self.fraud_scale:g}",
            "--label-delay",
            f"{low}s-{high}s",
        ]

    def config(self, start: datetime, drift: DriftSchedule | None = None) -> SimulatorConfig:
        return SimulatorConfig(
            seed=self.seed,
            n_customers=self.customers,
            n_merchants=self.merchants,
            start=start,
            fraud_rates=FraudRates().scaled(self.fraud_scale),
            labels=LabelPolicy(delay_min=LABEL_DELAY[0], delay_max=LABEL_DELAY[1]),
            drift=drift or DriftSchedule(),
        )


@dataclass(frozen=True)
class Plan:
    """The run's simulated timeline and the settings that make the loop close within it."""

    population: Population
    rate: float
    duration: float
    per_day: float
    schedule: StreamSchedule
    drift_at_count: int
    drift_time: datetime
    window_rows: int
    ready_day: float
    min_fraud_labels: int
    test_days: float

    @property
    def live_transactions(self) -> int:
        return self.schedule.live_transactions or 0

    @property
    def warmup_transactions(self) -> int:
        return self.schedule.warmup_transactions

    @property
    def live_days(self) -> float:
        return self.live_transactions / self.per_day

    @property
    def drift_day(self) -> float:
        return (self.drift_time - self.schedule.live_from) / DAY

    @property
    def window_days(self) -> float:
        return self.window_rows / self.per_day

    @property
    def cooldown_seconds(self) -> float:
        """Longer than the run: one retrain request per run, as the summary expects."""
        return self.duration * 2 + 600

    def stream_command(self) -> list[str]:
        return python_command(
            "producers.cli",
            "--log-level",
            "INFO",
            "stream",
            *self.population.cli_args(),
            "--rate",
            f"{self.rate:g}",
            "--duration",
            f"{self.duration:g}s",
            "--warmup-days",
            f"{WARMUP_DAYS:g}",
            "--drift-at-count",
            str(self.drift_at_count),
        )

    def service_env(self) -> dict[str, str]:
        """FRAUDSTREAM_* settings of the drift monitor and the trainer for this timeline."""
        drift = {
            "WINDOW_SIZE": self.window_rows,
            "MIN_WINDOW_ROWS": self.window_rows // 2,
            "WINDOW_SECONDS": int(3 * DAY.total_seconds()),  # windows close by size
            # The product's default: with 2 a run of noisy pre-drift windows could raise a false
            # request (label-count features wander with fraud incidents); 3 costs ~0.4 day.
            "CONSECUTIVE_WINDOWS": 3,
            "COOLDOWN_SECONDS": int(self.cooldown_seconds),
            "AUTO_OFFSET_RESET": "latest",  # started after the warm-up: live windows only
        }
        training = {
            "HISTORY_DAYS": RETRAIN_HISTORY_DAYS,
            "MIN_FRAUD_LABELS": self.min_fraud_labels,
            "VALIDATION_DAYS": VALIDATION_DAYS,
            "TEST_DAYS": round(self.test_days, 3),
            "GAP_DAYS": 0,
            "RETRY_SECONDS": 2,
            "RETRY_MAX_SECONDS": 4,
            "LAKE_FLUSH_SECONDS": 2,
        }
        env = {f"FRAUDSTREAM_DRIFT__{key}": str(value) for key, value in drift.items()}
        env.update({f"FRAUDSTREAM_TRAINING__{key}": str(value) for key, value in training.items()})
        return env

    def describe(self) -> dict[str, Any]:
        return {
            "population": asdict(self.population),
            "rate": self.rate,
            "duration_s": self.duration,
            "transactions_per_simulated_day": round(self.per_day, 1),
            "warmup_transactions": self.warmup_transactions,
            "live_transactions": self.live_transactions,
            "stream_start": self.schedule.start.isoformat(),
            "live_from": self.schedule.live_from.isoformat(),
            "live_simulated_days": round(self.live_days, 2),
            "drift_at_count": self.drift_at_count,
            "drift_at": self.drift_time.isoformat(),
            "drift_day": round(self.drift_day, 2),
            "window_rows": self.window_rows,
            "retrain_ready_day": round(self.ready_day, 2),
            "min_fraud_labels": self.min_fraud_labels,
            "retrain_test_days": round(self.test_days, 2),
        }


def make_plan(
    population: Population, rate: float, duration: float, drift_at: int | None, now: datetime
) -> Plan:
    """Simulate the stream as the generator will (same config, same schedule; columns only,
    about a second) to place the drift and count the labels a retrain can wait for.

    The retrain's splits count back from the moment it trains (wall time, when the simulated
    clock is still ``live_days - ready_day`` behind): its test split is made to start
    TEST_MARGIN_DAYS (simulated) before that moment and validation takes the VALIDATION_DAYS
    before: both hold the drifted world (validation mostly), and the retrain waits until
    READY_AFTER_DRIFT_DAYS after the drift, or TRAIN_AND_SWAP_DAYS before the end, whichever
    comes first, so that training, the swap and some verdicts by the new model fit in the run.
    """
    base = population.config(now.replace(hour=0, minute=0, second=0, microsecond=0))
    per_day = float(Simulator(base).world.customers.daily_rate.sum())
    schedule = stream_schedule(
        base, warmup_days=WARMUP_DAYS, rate=rate, duration_s=duration, count=None, now=now
    )
    count = drift_at or max(1, round(DRIFT_DAY * per_day))
    run = population.config(
        schedule.start, DriftSchedule.standard(at_transaction=schedule.run_index(count))
    )
    transactions, labels, drift_time = simulate_run(run, schedule)
    low, high = WINDOW_ROWS_RANGE
    window_rows = int(min(max(round(per_day * WINDOW_SHARE_OF_DAY, -2), low), high))
    live_days = (schedule.live_transactions or 0) / per_day
    drift_day = (drift_time - schedule.live_from) / DAY
    ready_day = min(drift_day + READY_AFTER_DRIFT_DAYS, live_days - TRAIN_AND_SWAP_DAYS)
    since = drift_time - window_rows / per_day * DAY  # the first drifted window may start early
    ready_at = schedule.live_from + ready_day * DAY
    return Plan(
        population=population,
        rate=rate,
        duration=duration,
        per_day=per_day,
        schedule=schedule,
        drift_at_count=count,
        drift_time=drift_time,
        window_rows=window_rows,
        ready_day=ready_day,
        min_fraud_labels=max(5, fraud_labels_between(transactions, labels, since, ready_at)),
        test_days=live_days - ready_day + TEST_MARGIN_DAYS,
    )


def simulate_run(
    config: SimulatorConfig, schedule: StreamSchedule
) -> tuple[pd.DataFrame, pd.DataFrame, datetime]:
    """Transactions (id, timestamp, is_fraud), labels (id, labeled_at, is_fraud) and the
    drift's effective time of the run the generator will stream."""
    until = schedule.live_until or schedule.live_from
    simulator = Simulator(config)
    days = (until - config.start) // DAY + 1
    transactions, labels = [], []
    for batch in simulator.iter_days(days):
        transactions.append(batch.transactions[["transaction_id", "timestamp", "is_fraud"]])
        labels.append(batch.new_labels[["transaction_id", "labeled_at", "is_fraud"]])
    if not simulator.drift_log:
        raise ValueError("the drift point lies after the end of the stream: lower --drift-at-count")
    return (
        pd.concat(transactions, ignore_index=True),
        pd.concat(labels, ignore_index=True),
        simulator.drift_log[0].effective_at,
    )


def fraud_labels_between(
    transactions: pd.DataFrame, labels: pd.DataFrame, since: datetime, known_by: datetime
) -> int:
    """Fraud labels known by ``known_by`` of transactions at or after ``since``: what the
    training consumer counts before it retrains."""
    stamps = pd.to_datetime(transactions["timestamp"], utc=True)
    recent = set(transactions.loc[stamps >= pd.Timestamp(since), "transaction_id"])
    arrived = pd.to_datetime(labels["labeled_at"], utc=True) <= pd.Timestamp(known_by)
    chosen = labels[arrived & labels["is_fraud"].astype(bool)]
    return int(chosen["transaction_id"].isin(recent).sum())
