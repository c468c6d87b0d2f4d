"""``make demo``: the closed loop on this machine, watched live, ending in a measured summary.

Starts, as separate processes (see ``deploy/stack.py``): an MLflow server, the worker, the lake
writer, the training consumer, the drift monitor and the simulator. On the first run it trains
the first champion on simulated history. Then it streams simulated transactions with delayed
labels and a drift part-way through, and shows what happens: verdicts, alerts and their
reasons, drift windows, the retrain request the drift raises, the new model's promotion and the
worker's switch to it. It stops every process it started on exit and on Ctrl-C, prints a
summary (``--json FILE`` also writes it) and exits non-zero if a transaction it produced got
neither a verdict nor a dead letter.

How the loop closes in a few minutes: the live part spans LIVE_DAYS simulated days (the
population is sized from RATE x DURATION), after a warm-up of WARMUP_DAYS days sent at full
speed so the worker's 30-day features are warm. Labels arrive 30 minutes to 6 hours after
their transaction (simulated time, history and stream alike). The drift starts DRIFT_DAY days
into the live part. The drift monitor is started at the first live verdicts scored in time (its
group's offsets are committed there first) and gets windows of about 0.4 simulated days, K=2
and a cooldown longer than the run (one request per run). The trainer gets split lengths and a
fraud-label threshold computed from this very simulation (:func:`make_plan`): it trains about
READY_AFTER_DRIFT_DAYS after the drift, with validation and test splits after the drift.

The first champion is a quick launch model: LAUNCH_ROUNDS boosting rounds on 45 days of
history. Against a fully trained first champion, the champion/challenger gate on a simulated
holdout of a few dozen frauds is close to a coin toss at this scale (measured over seeds while
building this), so the demo would show a promotion only sometimes; the retrain (the trainer's
own settings: up to 300 rounds, early stopping) on two months of lake data, the changed world
included, reliably beats the launch model on the same post-drift holdout.

Every run starts from the same state, so a second run works like the first:

- topics: the configured topics (the default names) are deleted and recreated empty on the
  local broker (the demo refuses a remote one); consumer groups and the worker's app id carry
  the run id, and the worker's changelog topics are deleted at the end;
- lake, drift reports, drift flag, retrain ledger: a fresh store per run under
  ``<home>/runs/<run id>/store`` (the three latest runs are kept), with 45 days of history
  written in-process before the stream's first day (same simulated world as the stream, other
  days of it, so no transaction id repeats);
- registry: MLflow keeps every version; the first champion is trained once per simulated
  population and tagged ``demo_baseline``; each run moves the ``champion`` alias back to it
  (recorded in the alias history like any move) and exports it to the worker's model folder.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import shutil
import signal
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import pandas as pd
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, Producer, TopicPartition
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from stack import (
    Service,
    Stack,
    StackError,
    delete_groups,
    delete_topics_with_prefix,
    loopback_address,
    mlflow_healthy,
    mlflow_server_command,
    python_command,
    reset_topics,
    wait_until,
    worker_ready,
)

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
from producers.sinks import LakeSink
from stream_app.model_store import client_for, load_version
from stream_app.schemas import ModelUpdate, RetrainRequest
from stream_app.settings import Settings
from stream_app.store import LocalStore, ObjectStore

log = logging.getLogger("demo")

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


# ---------------------------------------------------------------------------------------------
# Arguments


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="deploy/demo.py",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="Settings (broker, topic names, ports, MLflow address) come from FRAUDSTREAM_* "
        "variables; the demo adds its own drift and training settings for the children.",
    )
    parser.add_argument("--duration", type=float, default=240, help="seconds of live traffic")
    parser.add_argument("--rate", type=float, default=200, help="live transactions per second")
    parser.add_argument("--seed", type=int, default=42, help="simulation seed (42)")
    parser.add_argument(
        "--customers", type=int, help="simulated customers (default: RATE x DURATION / 10 days)"
    )
    parser.add_argument(
        "--fraud-scale",
        type=float,
        default=DEFAULT_FRAUD_SCALE,
        help=f"multiply the simulator's fraud rates ({DEFAULT_FRAUD_SCALE:g})",
    )
    parser.add_argument(
        "--drift-at-count",
        type=int,
        metavar="N",
        help=f"drift from the N-th live transaction (default: {DRIFT_DAY} simulated days in)",
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=Path(".local/demo/champion"),
        help="the worker's model folder; the first champion is exported there each run",
    )
    parser.add_argument("--home", type=Path, default=Path(".local/demo"), help="runs, logs")
    parser.add_argument(
        "--mlflow-dir", type=Path, default=Path(".local/mlflow"), help="MLflow database, artifacts"
    )
    parser.add_argument("--headless", action="store_true", help="no live display")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the summary as JSON")
    return parser.parse_args(argv)


# ---------------------------------------------------------------------------------------------
# What to simulate and how to tune the services for it


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


# ---------------------------------------------------------------------------------------------
# Where a run keeps its state


@dataclass(frozen=True)
class RunPaths:
    run_id: str
    root: Path

    @classmethod
    def create(cls, home: Path, now: datetime) -> RunPaths:
        run_id = now.strftime("%Y%m%d-%H%M%S")
        root = (home / "runs" / run_id).resolve()
        root.mkdir(parents=True, exist_ok=False)
        prune_runs(home / "runs", keep=KEPT_RUNS)
        return cls(run_id, root)

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def store(self) -> Path:
        return self.root / "store"

    @property
    def group_prefix(self) -> str:
        """Consumer groups and the worker's app id: never shared with an earlier run."""
        return f"fraudstream-demo-{self.run_id}"

    def groups(self) -> list[str]:
        return [f"{self.group_prefix}-{name}" for name in ("worker", "drift", "trainer")] + [
            f"{self.group_prefix}-lake-writer"
        ]

    def identity_env(self, model_dir: Path) -> dict[str, str]:
        prefix = self.group_prefix
        return {
            "FRAUDSTREAM_STORE__URI": str(self.store),
            "FRAUDSTREAM_WORKER__APP_ID": f"{prefix}-worker",
            "FRAUDSTREAM_WORKER__DATA_DIR": str(self.root / "worker"),
            "FRAUDSTREAM_WORKER__MODEL_PATH": str(model_dir.resolve()),
            "FRAUDSTREAM_WORKER__MODEL_POLL_SECONDS": "5",
            "FRAUDSTREAM_DRIFT__APP_ID": f"{prefix}-drift",
            "FRAUDSTREAM_TRAINING__APP_ID": f"{prefix}-trainer",
            "FRAUDSTREAM_TRAINING__LAKE_WRITER_APP_ID": f"{prefix}-lake-writer",
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        }


def prune_runs(runs: Path, keep: int) -> None:
    for old in sorted(path for path in runs.iterdir() if path.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# History and the first champion


def write_history(plan: Plan, store: ObjectStore) -> int:
    """HISTORY_DAYS days before the stream's first day into the lake, same world as the stream.

    A simulator run's days are seeded by their position in the run, so the history comes from
    a run that starts earlier and is written from the day after the stream's last position on:
    its days are other draws than the stream's (no repeated transaction ids) in the same world.
    """
    stream_days = (plan.schedule.live_until or plan.schedule.live_from) - plan.schedule.start
    offset = stream_days // DAY + 2
    first_day = plan.schedule.start - HISTORY_DAYS * DAY
    config = plan.population.config(first_day - offset * DAY)
    sink = LakeSink(store, part="history")
    for batch in Simulator(config).iter_days(offset + HISTORY_DAYS):
        if batch.day >= offset:
            sink.write_day(batch)
    return sink.transactions_written


def find_baseline(client: Any, name: str, key: str) -> str | None:
    """The newest version tagged as this population's first champion."""
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        return None
    versions = client.search_model_versions(f"name = '{name}'")
    tagged = [int(v.version) for v in versions if dict(v.tags).get(BASELINE_TAG) == key]
    return str(max(tagged)) if tagged else None


def newest_version(client: Any, name: str) -> str:
    return str(max(int(v.version) for v in client.search_model_versions(f"name = '{name}'")))


def restore_champion(client: Any, settings: Settings, version: str) -> None:
    """Every run starts from the first champion; the move is recorded like any other."""
    from training.registry import move_alias

    alias = settings.mlflow.champion_alias
    move_alias(client, settings.mlflow.model_name, alias, version, "demo run starts")


def export_version(client: Any, name: str, version: str, folder: Path) -> None:
    bundle = load_version(client, name, version)
    if folder.exists():
        shutil.rmtree(folder)
    bundle.save(folder)


def baseline_command(plan: Plan) -> list[str]:
    return python_command(
        "training.cli",
        "train",
        "--as-of",
        plan.schedule.start.isoformat(),
        "--history-days",
        str(HISTORY_DAYS),
        "--gap-days",
        str(LABEL_DELAY[1] / DAY),
        "--seed",
        str(plan.population.seed),
        "--rounds",
        str(LAUNCH_ROUNDS),
    )


# ---------------------------------------------------------------------------------------------
# Reading the topics and the store while the demo runs


@dataclass(frozen=True)
class Event:
    """A moment of the timeline: wall clock, and simulated time where it has one."""

    wall: datetime
    sim: datetime | None = None
    detail: str = ""

    def to_dict(self, started: datetime) -> dict[str, Any]:
        return {
            "wall": self.wall.isoformat(),
            "seconds": round((self.wall - started).total_seconds(), 1),
            "sim": None if self.sim is None else self.sim.isoformat(),
            "detail": self.detail,
        }


@dataclass(frozen=True)
class WindowSeen:
    start: datetime
    end: datetime
    rows: int
    drift_share: float
    drifted: bool
    features: tuple[str, ...]
    report: str


@dataclass(frozen=True)
class Alert:
    transaction_id: str
    decision: str
    score: float
    version: str
    reasons: tuple[str, ...]


@dataclass
class Tally:
    """Everything the demo has read from the topics and the store during the run."""

    transactions: int = 0
    produced: set[str] = field(default_factory=set)
    answered: set[str] = field(default_factory=set)
    timestamps: dict[str, datetime] = field(default_factory=dict)
    flagged: dict[str, bool] = field(default_factory=dict)
    version_of: dict[str, str] = field(default_factory=dict)
    labels: dict[str, bool] = field(default_factory=dict)
    fraud_labelled: set[str] = field(default_factory=set)
    decisions: Counter[str] = field(default_factory=Counter)
    dead_letters: Counter[str] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT))
    rate_marks: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=60))
    alerts: deque[Alert] = field(default_factory=lambda: deque(maxlen=6))
    windows: list[WindowSeen] = field(default_factory=list)
    requests: list[tuple[RetrainRequest, datetime]] = field(default_factory=list)
    updates: list[tuple[ModelUpdate, datetime]] = field(default_factory=list)
    outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, Event] = field(default_factory=dict)
    last_version: str = "-"
    last_event_time: datetime | None = None

    @property
    def verdicts(self) -> int:
        return sum(self.decisions.values())

    @property
    def unanswered(self) -> int:
        return len(self.produced - self.answered)

    def fraud_labels_since(self, since: datetime) -> int:
        """What the training consumer waits for, as seen on the topics (the lake lags a little)."""
        oldest = datetime.min.replace(tzinfo=UTC)
        return sum(self.timestamps.get(tid, oldest) >= since for tid in self.fraud_labelled)

    def note(self, name: str, event: Event) -> None:
        """First occurrence only: the timeline records when something first happened."""
        self.events.setdefault(name, event)

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(int(share * len(ordered)), len(ordered) - 1)] if ordered else 0.0

    def throughput(self) -> float:
        """Verdicts per second over the last ~10 seconds."""
        if len(self.rate_marks) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self.rate_marks[0], self.rate_marks[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0


class Observer:
    """Reads every topic of the run from its beginning (they were created empty for it) and
    the drift reports and retrain ledger from the run's store."""

    def __init__(self, settings: Settings, store: ObjectStore, plan: Plan) -> None:
        self.topics = settings.kafka.topics
        self.store = store
        self.drift_at = plan.drift_time
        self.live_from = plan.schedule.live_from
        self.tally = Tally()
        # fraud-scores partition -> offset of its first verdict on a live transaction scored
        # in time (the worker has caught up with the warm-up backlog)
        self.first_live: dict[int, int] = {}
        # the same without the latency condition: the fallback on a machine too slow to catch
        # up before the drift (the first windows then mix partitions far apart in time)
        self.first_live_late: dict[int, int] = {}
        self.seen_keys: set[str] = set()
        self.next_scan = 0.0
        self.consumer = Consumer(
            {
                **settings.kafka.confluent_config(),
                "group.id": "fraudstream-demo-observer",
                "enable.auto.commit": False,
            }
        )
        names = [
            self.topics.transactions,
            self.topics.scores,
            self.topics.dead_letters,
            self.topics.labels,
            self.topics.retrain_requests,
            self.topics.model_updates,
        ]
        metadata = self.consumer.list_topics(timeout=10)
        self.score_partitions = len(metadata.topics[self.topics.scores].partitions)
        self.consumer.assign(
            [
                TopicPartition(name, partition, OFFSET_BEGINNING)
                for name in names
                for partition in metadata.topics[name].partitions
            ]
        )

    def close(self) -> None:
        self.consumer.close()

    @property
    def live_offsets(self) -> list[TopicPartition] | None:
        """Where the live verdicts begin in every fraud-scores partition, once known."""
        chosen = self.first_live
        if len(chosen) < self.score_partitions:
            past_drift = (self.tally.last_event_time or self.live_from) >= self.drift_at
            if not past_drift or len(self.first_live_late) < self.score_partitions:
                return None
            log.warning("the worker is still catching up at the drift point: monitoring anyway")
            chosen = self.first_live_late
        topic = self.topics.scores
        return [TopicPartition(topic, p, o) for p, o in sorted(chosen.items())]

    def poll(self, timeout: float = 0.2) -> int:
        messages = self.consumer.consume(num_messages=5000, timeout=timeout)
        for message in messages:
            if message.error() is None:
                self._route(message)
        self.tally.rate_marks.append((time.monotonic(), self.tally.verdicts))
        if time.monotonic() >= self.next_scan:
            self.scan_store()
            self.next_scan = time.monotonic() + 2.0
        return len(messages)

    def _route(self, message: Message) -> None:
        topic, value = message.topic(), message.value() or b""
        handlers: dict[str, Callable[[bytes, Message], None]] = {
            self.topics.transactions: self._transaction,
            self.topics.scores: self._verdict,
            self.topics.dead_letters: self._dead_letter,
            self.topics.labels: self._label,
            self.topics.retrain_requests: self._request,
            self.topics.model_updates: self._update,
        }
        handlers[topic or ""](value, message)

    def _transaction(self, value: bytes, message: Message) -> None:
        tally = self.tally
        tally.transactions += 1
        decoded = _json_object(value)
        identifier = decoded.get("transaction_id") if decoded else None
        if not isinstance(identifier, str):
            identifier = f"{message.partition()}:{message.offset()}"
        tally.produced.add(identifier)
        stamp = _parse_time(decoded.get("timestamp")) if decoded else None
        if stamp is None:
            return
        tally.timestamps[identifier] = stamp
        if stamp >= self.drift_at:
            tally.note("drift_point", Event(_now(), self.drift_at, "first drifted transaction"))
        if decoded and decoded.get("merchant_category") in NEW_CATEGORIES:
            tally.note("new_category", Event(_now(), stamp, str(decoded["merchant_category"])))

    def _verdict(self, value: bytes, message: Message) -> None:
        decoded = _json_object(value) or {}
        tally = self.tally
        identifier, decision = str(decoded.get("transaction_id")), str(decoded.get("decision"))
        version = str(decoded.get("model_version"))
        tally.answered.add(identifier)
        tally.decisions[decision] += 1
        tally.versions[version] += 1
        tally.flagged[identifier] = decision != "approve"
        tally.version_of[identifier] = version
        tally.latencies.append(float(decoded.get("latency_ms", 0.0)))
        tally.last_event_time = _parse_time(decoded.get("event_time"))
        partition, latency = message.partition() or 0, float(decoded.get("latency_ms", 0.0))
        live = tally.last_event_time is not None and tally.last_event_time >= self.live_from
        if live and partition not in self.first_live_late:
            self.first_live_late[partition] = message.offset() or 0
        if live and latency < CAUGHT_UP_MS and partition not in self.first_live:
            self.first_live[partition] = message.offset() or 0
        scored = _parse_time(decoded.get("scored_at")) or _now()
        tally.note(f"version:{version}", Event(scored, tally.last_event_time, version))
        tally.last_version = version
        if decision != "approve":
            reasons = tuple(str(r.get("code")) for r in decoded.get("reasons", [])[:3])
            score = float(decoded.get("score", 0.0))
            tally.alerts.appendleft(Alert(identifier, decision, score, version, reasons))

    def _dead_letter(self, value: bytes, _message: Message) -> None:
        decoded = _json_object(value) or {}
        self.tally.dead_letters[str(decoded.get("reason"))] += 1
        original = base64.b64decode(str(decoded.get("original_value", "")))
        inner = _json_object(original)
        identifier = inner.get("transaction_id") if inner else None
        if not isinstance(identifier, str):
            identifier = f"{decoded.get('partition')}:{decoded.get('offset')}"
        self.tally.answered.add(identifier)

    def _label(self, value: bytes, _message: Message) -> None:
        decoded = _json_object(value) or {}
        identifier, fraud = str(decoded.get("transaction_id")), bool(decoded.get("is_fraud"))
        self.tally.labels[identifier] = fraud
        if fraud:
            self.tally.fraud_labelled.add(identifier)

    def _request(self, value: bytes, message: Message) -> None:
        request = RetrainRequest.model_validate_json(value)
        wall = _kafka_time(message)
        self.tally.requests.append((request, wall))
        self.tally.note("retrain_request", Event(wall, request.window_end, request.request_id))

    def _update(self, value: bytes, message: Message) -> None:
        update = ModelUpdate.model_validate_json(value)
        wall = _kafka_time(message)
        self.tally.updates.append((update, wall))
        self.tally.note("promotion", Event(wall, None, f"version {update.model_version}"))

    def scan_store(self) -> None:
        """New drift reports and retrain outcomes: the store is the record of both."""
        for key in self.store.list("drift/reports/"):
            if key.endswith("report.json") and key not in self.seen_keys:
                self.seen_keys.add(key)
                self._window(key)
        for key in self.store.list("training/requests/"):
            if key not in self.seen_keys:
                self.seen_keys.add(key)
                outcome = json.loads(self.store.get_bytes(key))
                self.tally.outcomes[str(outcome["request_id"])] = outcome

    def _window(self, key: str) -> None:
        summary = json.loads(self.store.get_bytes(key))["summary"]
        window = WindowSeen(
            start=datetime.fromisoformat(summary["span"]["start"]),
            end=datetime.fromisoformat(summary["span"]["end"]),
            rows=int(summary["rows"]),
            drift_share=float(summary["drift_share"]),
            drifted=bool(summary["drifted"]),
            features=tuple(summary.get("drifted_features", ())),
            report=self.store.uri(key),
        )
        self.tally.windows.append(window)
        self.tally.windows.sort(key=lambda seen: seen.end)
        if window.drifted:
            self.tally.note("first_drifted_window", Event(_now(), window.end, key))


def _json_object(value: bytes) -> dict[str, Any] | None:
    try:
        decoded = json.loads(value)
    except ValueError:
        return None
    return decoded if isinstance(decoded, dict) else None


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _kafka_time(message: Message) -> datetime:
    _, stamp = message.timestamp()
    return datetime.fromtimestamp(stamp / 1000, UTC) if stamp > 0 else _now()


def _now() -> datetime:
    return datetime.now(UTC)


# ---------------------------------------------------------------------------------------------
# The summary


def quality(tally: Tally, versions: Sequence[str] | None = None) -> dict[str, Any]:
    """Precision and recall of review+block against the simulator's labels, over verdicts whose
    label has arrived."""
    chosen = set(versions) if versions is not None else None
    pairs = [
        (flag, tally.labels[tid])
        for tid, flag in tally.flagged.items()
        if tid in tally.labels and (chosen is None or tally.version_of.get(tid) in chosen)
    ]
    hits = sum(flag and fraud for flag, fraud in pairs)
    flagged = sum(flag for flag, _ in pairs)
    frauds = sum(fraud for _, fraud in pairs)
    return {
        "labelled_verdicts": len(pairs),
        "frauds": frauds,
        "flagged": flagged,
        "true_positives": hits,
        "precision": round(hits / flagged, 4) if flagged else None,
        "recall": round(hits / frauds, 4) if frauds else None,
    }


def summary(
    tally: Tally, plan: Plan, paths: RunPaths, settings: Settings, started: datetime
) -> dict[str, Any]:
    versions = sorted(tally.versions, key=lambda v: (len(v), v))
    control = [window for window in tally.windows if window.end < plan.drift_time]
    return {
        "run_id": paths.run_id,
        "started": started.isoformat(),
        "finished": _now().isoformat(),
        "plan": plan.describe(),
        "transactions": tally.transactions,
        "verdicts": tally.verdicts,
        "decisions": dict(tally.decisions),
        "dead_letters": dict(tally.dead_letters),
        "unanswered": tally.unanswered,
        "labels": len(tally.labels),
        "latency_ms_recent": {"p50": tally.percentile(0.5), "p99": tally.percentile(0.99)},
        "verdicts_by_version": dict(tally.versions),
        "quality": quality(tally),
        "quality_by_version": {version: quality(tally, [version]) for version in versions},
        "drift": {
            "windows_checked": len(tally.windows),
            "windows_drifted": sum(window.drifted for window in tally.windows),
            "control_windows": len(control),
            "control_windows_drifted": sum(window.drifted for window in control),
            "reports": LocalStore(paths.store).uri("drift/reports"),
            "windows": [
                {
                    "start": w.start.isoformat(),
                    "end": w.end.isoformat(),
                    "rows": w.rows,
                    "drift_share": w.drift_share,
                    "drifted": w.drifted,
                    "report": w.report,
                }
                for w in tally.windows
            ],
        },
        "retrain_requests": [
            {**json.loads(request.to_bytes()), "published": wall.isoformat()}
            for request, wall in tally.requests
        ],
        "retrain_outcomes": list(tally.outcomes.values()),
        "model_updates": [
            {**json.loads(update.to_bytes()), "published": wall.isoformat()}
            for update, wall in tally.updates
        ],
        "promotions": len(tally.updates),
        "timeline": {name: event.to_dict(started) for name, event in tally.events.items()},
        "mlflow_ui": settings.mlflow.tracking_uri,
        "logs": str(paths.logs),
    }


def summary_tables(result: dict[str, Any]) -> list[Table]:
    traffic = Table(title=f"fraudstream demo {result['run_id']}: summary")
    traffic.add_column("what")
    traffic.add_column("value", justify="right")
    quality_all = result["quality"]
    rows = [
        ("transactions", f"{result['transactions']:,}"),
        ("verdicts", f"{result['verdicts']:,}"),
        *((f"  {d}", f"{n:,}") for d, n in sorted(result["decisions"].items())),
        ("dead letters", f"{sum(result['dead_letters'].values()):,}"),
        ("without verdict or dead letter", f"{result['unanswered']:,}"),
        ("precision / recall (review+block)", _pr(quality_all)),
        *(
            (f"  model v{version}", _pr(value))
            for version, value in result["quality_by_version"].items()
        ),
        ("drift windows checked / drifted", _checked(result["drift"])),
        (
            "retrain requests / promotions",
            f"{len(result['retrain_requests'])} / {result['promotions']}",
        ),
        ("drift reports", result["drift"]["reports"]),
        ("MLflow UI", result["mlflow_ui"]),
        ("logs", result["logs"]),
    ]
    for row in rows:
        traffic.add_row(*row)
    timeline = Table(title="timeline (wall seconds since start; simulated time)")
    for column in ("event", "s", "simulated", "detail"):
        timeline.add_column(column)
    for name, event in sorted(result["timeline"].items(), key=lambda item: item[1]["seconds"]):
        timeline.add_row(name, f"{event['seconds']:.1f}", event["sim"] or "-", event["detail"])
    return [traffic, timeline]


def _pr(value: dict[str, Any]) -> str:
    precision, recall = value["precision"], value["recall"]
    shown = [f"{x:.3f}" if x is not None else "-" for x in (precision, recall)]
    return f"{shown[0]} / {shown[1]} ({value['labelled_verdicts']:,} labelled)"


def _checked(drift: dict[str, Any]) -> str:
    return (
        f"{drift['windows_checked']} / {drift['windows_drifted']} "
        f"(before the drift: {drift['control_windows']} / {drift['control_windows_drifted']})"
    )


# ---------------------------------------------------------------------------------------------
# The live dashboard


def dashboard(tally: Tally, plan: Plan, phase: str, elapsed: float) -> RenderableType:
    return Group(
        _header(tally, plan, phase, elapsed),
        _traffic_table(tally),
        _drift_table(tally, plan),
        _loop_table(tally, plan),
        _alerts_table(tally),
    )


def _header(tally: Tally, plan: Plan, phase: str, elapsed: float) -> Table:
    table = Table.grid(padding=(0, 2))
    sim = tally.last_event_time.strftime("%Y-%m-%d %H:%M") if tally.last_event_time else "-"
    drift = plan.drift_time.strftime("%Y-%m-%d %H:%M")
    table.add_row(
        f"[bold]fraudstream demo[/bold] {elapsed:.0f} s",
        f"phase: [cyan]{phase}[/cyan]",
        f"simulated time: {sim} (drift at {drift})",
        f"model in service: [bold]v{tally.last_version}[/bold]",
    )
    return table


def _traffic_table(tally: Tally) -> Table:
    table = Table(title="traffic", expand=True)
    for column in (
        "transactions",
        "verdicts",
        "tx/s",
        "p50 ms",
        "p99 ms",
        "approve",
        "review",
        "block",
        "dead letters",
        "labels",
        "verdicts by model",
    ):
        table.add_column(column, justify="right")
    by_version = ", ".join(f"v{v}: {n:,}" for v, n in sorted(tally.versions.items()))
    table.add_row(
        f"{tally.transactions:,}",
        f"{tally.verdicts:,}",
        f"{tally.throughput():,.0f}",
        f"{tally.percentile(0.5):.1f}",
        f"{tally.percentile(0.99):.1f}",
        f"{tally.decisions['approve']:,}",
        f"{tally.decisions['review']:,}",
        f"{tally.decisions['block']:,}",
        f"{sum(tally.dead_letters.values()):,}",
        f"{len(tally.labels):,}",
        by_version or "-",
    )
    return table


def _drift_table(tally: Tally, plan: Plan) -> Table:
    drifted = sum(window.drifted for window in tally.windows)
    table = Table(
        title=f"drift windows ({len(tally.windows)} checked, {drifted} drifted; "
        f"{plan.window_rows:,} verdicts each)",
        expand=True,
    )
    for column in ("window (simulated)", "rows", "drift share", "drifted", "drifted features"):
        table.add_column(column)
    for window in tally.windows[-6:]:
        mark = "[red]yes[/red]" if window.drifted else "[green]no[/green]"
        span = f"{window.start:%m-%d %H:%M} .. {window.end:%m-%d %H:%M}"
        features = ", ".join(window.features[:4]) + (" ..." if len(window.features) > 4 else "")
        table.add_row(span, f"{window.rows:,}", f"{window.drift_share:.3f}", mark, features)
    return table


def _loop_table(tally: Tally, plan: Plan) -> Table:
    table = Table(title="retraining (retrain-requests, ledger, model-updates)", expand=True)
    table.add_column("when")
    table.add_column("event")
    for request, wall in tally.requests:
        outcome = tally.outcomes.get(request.request_id)
        known = tally.fraud_labels_since(request.window_start)
        status = f"fraud labels since its window began: {known:,} of {plan.min_fraud_labels:,}"
        if known >= plan.min_fraud_labels:
            status += ": training"
        if outcome is not None:
            status = (
                f"v{outcome['model_version']} "
                f"{'promoted' if outcome['promoted'] else 'kept as challenger'} "
                f"(AP {_num(outcome.get('candidate_score'))} vs champion "
                f"{_num(outcome.get('champion_score'))})"
            )
        table.add_row(
            f"{wall:%H:%M:%S}",
            f"retrain request {request.request_id[:8]} for "
            f"{request.window_start:%m-%d %H:%M}..{request.window_end:%m-%d %H:%M}: {status}",
        )
    for update, wall in tally.updates:
        table.add_row(f"{wall:%H:%M:%S}", f"promoted v{update.model_version} ({update.model_uri})")
    if not tally.requests and not tally.updates:
        table.add_row("-", "no retrain request yet")
    return table


def _num(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


def _alerts_table(tally: Tally) -> Table:
    table = Table(title="latest alerts", expand=True)
    for column in ("transaction", "decision", "score", "model", "reasons"):
        table.add_column(column)
    for alert in tally.alerts:
        table.add_row(
            alert.transaction_id,
            alert.decision,
            f"{alert.score:.3f}",
            f"v{alert.version}",
            ", ".join(alert.reasons) or "-",
        )
    return table


# ---------------------------------------------------------------------------------------------
# The run


def phase_of(tally: Tally, plan: Plan) -> str:
    if tally.transactions < plan.warmup_transactions:
        return f"warm-up: sending {WARMUP_DAYS:g} simulated days"
    if tally.verdicts < plan.warmup_transactions:
        return "warm-up: scoring the backlog"
    return "live"


class Display:
    """The live dashboard, or periodic log lines when headless."""

    def __init__(self, console: Console, headless: bool) -> None:
        self.console = console
        self.headless = headless
        self.live: Live | None = None
        self.next_line = 0.0

    @contextmanager
    def running(self) -> Iterator[Display]:
        if self.headless:
            yield self
            return
        with Live(console=self.console, refresh_per_second=2, transient=False) as live:
            self.live = live
            try:
                yield self
            finally:
                self.live = None

    def update(self, tally: Tally, plan: Plan, phase: str, elapsed: float) -> None:
        if self.live is not None:
            self.live.update(dashboard(tally, plan, phase, elapsed))
        elif time.monotonic() >= self.next_line:
            self.next_line = time.monotonic() + 10
            log.info(
                "phase=%s elapsed=%.0f transactions=%d verdicts=%d model=v%s windows=%d "
                "drifted=%d requests=%d promotions=%d",
                phase,
                elapsed,
                tally.transactions,
                tally.verdicts,
                tally.last_version,
                len(tally.windows),
                sum(window.drifted for window in tally.windows),
                len(tally.requests),
                len(tally.updates),
            )


@contextmanager
def step(console: Console, headless: bool, description: str) -> Iterator[None]:
    """A spinner with the elapsed time for the long steps (the first champion takes a minute)."""
    log.info("step: %s", description)
    if headless:
        yield
        return
    columns = (SpinnerColumn(), TextColumn(description), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        progress.add_task(description)
        yield
    console.print(f"[green]done[/green] {description}")


@dataclass
class Demo:
    args: argparse.Namespace
    settings: Settings
    console: Console
    paths: RunPaths
    started: datetime
    stack: Stack
    plan: Plan | None = None
    observer: Observer | None = None

    @property
    def headless(self) -> bool:
        return bool(self.args.headless)

    def step(self, description: str) -> Any:
        return step(self.console, self.headless, description)

    def mark(self, tally: Tally | None, name: str, detail: str = "") -> None:
        if tally is not None:
            tally.note(name, Event(_now(), None, detail))

    # -- infrastructure ------------------------------------------------------------------

    def ensure_mlflow(self) -> None:
        uri = self.settings.mlflow.tracking_uri
        if mlflow_healthy(uri):
            log.info("an MLflow server already answers at %s: using it", uri)
            return
        address = loopback_address(uri)
        if address is None:
            raise StackError(f"MLflow at {uri} does not answer and is not local to start")
        root = self.args.mlflow_dir.resolve()
        root.mkdir(parents=True, exist_ok=True)
        with self.step(f"starting the MLflow server at {uri} ({root})"):
            command = mlflow_server_command(root, *address)
            server = self.stack.start("mlflow", command, cwd=root, stop_last=True)
            wait_until(lambda: mlflow_healthy(uri), MLFLOW_STARTUP_SECONDS, "MLflow", [server])

    def champion_for(self, plan: Plan, env: dict[str, str]) -> str:
        """The population's first champion (trained now if it has none), made champion again
        and exported to the worker's model folder."""
        client = client_for(self.settings.mlflow.tracking_uri)
        name, key = self.settings.mlflow.model_name, plan.population.key()
        version = find_baseline(client, name, key)
        if version is None:
            with self.step("training the first champion on the simulated history (~1 min)"):
                self.run_once("first-champion", baseline_command(plan), env)
                version = newest_version(client, name)
                client.set_model_version_tag(name, version, BASELINE_TAG, key)
        restore_champion(client, self.settings, version)
        export_version(client, name, version, self.args.model)
        return version

    def run_once(self, name: str, command: list[str], env: dict[str, str]) -> None:
        service = self.stack.start(name, command, env=env)
        code = service.process.wait()
        if code != 0:
            raise StackError(f"{name} failed with code {code}:\n{service.log_tail()}")

    def start_services(self, env: dict[str, str]) -> Service:
        worker = self.stack.start("worker", python_command("stream_app.worker"), env=env)
        self.stack.start("lake-writer", python_command("training.cli", "lake-writer"), env=env)
        self.stack.start(
            "trainer",
            python_command("training.cli", "retrain-consumer"),
            env=env,
            stop_seconds=20,
        )
        url = f"http://{self.settings.worker.web_host}:{self.settings.worker.web_port}"
        with self.step("starting the worker, the lake writer and the training consumer"):
            wait_until(lambda: worker_ready(url), WORKER_STARTUP_SECONDS, "the worker", [worker])
        return worker

    def send_malformed(self) -> None:
        """Three bad messages, to show the dead-letter path."""
        producer = Producer(self.settings.kafka.confluent_config())
        for value in MALFORMED:
            producer.produce(self.settings.kafka.topics.transactions, value, b"demo")
        producer.flush(10)

    # -- the live part -------------------------------------------------------------------

    def stream(self, plan: Plan, env: dict[str, str], observer: Observer) -> None:
        tally, display = observer.tally, Display(self.console, self.headless)
        generator = self.stack.start(
            "generator", plan.stream_command(), env=env, stop_signal=signal.SIGINT
        )
        self.mark(tally, "stream_started")
        drift_monitor: Service | None = None
        with display.running():
            while generator.running:
                observer.poll()
                offsets = observer.live_offsets
                if drift_monitor is None and offsets is not None:
                    drift_monitor = self.start_drift_monitor(env, offsets)
                if tally.verdicts >= plan.warmup_transactions:
                    self.mark(tally, "warmup_scored", f"{tally.verdicts:,} verdicts")
                self.stack.check_alive(["worker", "lake-writer", "trainer", "drift"])
                display.update(tally, plan, phase_of(tally, plan), self.elapsed())
            if generator.returncode != 0:
                raise StackError(f"the generator failed:\n{generator.log_tail()}")
            self.mark(tally, "stream_ended")
            self.drain(observer, display, plan)

    def start_drift_monitor(self, env: dict[str, str], offsets: list[TopicPartition]) -> Service:
        """The monitor's group starts at the first live verdicts scored in time. Before them:
        the warm-up, scored from a state still filling up (30-day features), and the backlog,
        where the partitions are scored far apart in event time, so merchant volumes (counted
        across partitions) are not what a live worker sees."""
        group = env["FRAUDSTREAM_DRIFT__APP_ID"]
        committer = Consumer({**self.settings.kafka.confluent_config(), "group.id": group})
        try:
            committer.commit(offsets=offsets, asynchronous=False)
        finally:
            committer.close()
        log.info("drift group=%s starts at %s", group, [(o.partition, o.offset) for o in offsets])
        return self.stack.start("drift", python_command("drift.cli", "monitor"), env=env)

    def drain(self, observer: Observer, display: Display, plan: Plan) -> None:
        """Until every produced transaction is answered (or the deadline): then the counts are
        final, as far as the worker is concerned."""
        deadline = time.monotonic() + DRAIN_SECONDS
        tally = observer.tally
        while time.monotonic() < deadline:
            if observer.poll() == 0 and tally.unanswered == 0:
                break
            self.stack.check_alive(["worker"])
            display.update(tally, plan, "draining", self.elapsed())
        observer.scan_store()
        self.mark(tally, "drained", f"{tally.unanswered} unanswered")

    def elapsed(self) -> float:
        return (_now() - self.started).total_seconds()


def run_demo(demo: Demo) -> None:
    """Everything up to the drained stream; the caller stops the stack and summarises."""
    args, settings = demo.args, demo.settings
    population = Population.sized_for(args)
    with demo.step(f"planning the simulated timeline ({population.key()})"):
        plan = make_plan(population, args.rate, args.duration, args.drift_at_count, _now())
    log.info("plan %s", json.dumps(plan.describe()))
    demo.plan = plan
    if plan.ready_day - plan.drift_day < 3 or plan.live_days < 8:
        demo.console.print(
            f"[yellow]the live part spans {plan.live_days:.1f} simulated days: too short for the "
            "retrain to see enough of the drifted world; give a longer DURATION or RATE[/yellow]"
        )
    env = {**demo.stack.env, **demo.paths.identity_env(args.model), **plan.service_env()}
    demo.ensure_mlflow()
    with demo.step("recreating the topics empty"):
        reset_topics(settings.kafka, settings.kafka.topics.all())
    with demo.step(f"writing {HISTORY_DAYS} days of history to {demo.paths.store}"):
        write_history(plan, LocalStore(demo.paths.store))
    version = demo.champion_for(plan, env)
    log.info("champion version=%s exported to %s", version, args.model)
    # Re-planned now that the slow steps are done: the generator's clock is ours within seconds.
    demo.plan = plan = make_plan(population, args.rate, args.duration, args.drift_at_count, _now())
    log.info("plan %s", json.dumps(plan.describe()))
    env.update(plan.service_env())
    demo.start_services(env)
    demo.observer = Observer(settings, LocalStore(demo.paths.store), plan)
    demo.send_malformed()
    demo.stream(plan, env, demo.observer)


# ---------------------------------------------------------------------------------------------
# Entry point


def configure_logging(paths: RunPaths, headless: bool) -> None:
    handlers: list[logging.Handler] = [logging.FileHandler(paths.logs / "demo.log")]
    if headless:
        handlers.append(logging.StreamHandler(sys.stderr))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        handlers=handlers,
    )


def raise_on_sigterm() -> None:
    """SIGTERM ends the demo like Ctrl-C: through the same cleanup."""

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


EXIT_CODES = {"completed": 0, "unanswered": 1, "failed": 2, "interrupted": 130}


def finish(demo: Demo, outcome: str) -> int:
    """The summary of whatever ran (also after Ctrl-C or a failed service), and the exit code."""
    plan, observer = demo.plan, demo.observer
    if plan is None or observer is None:
        return EXIT_CODES[outcome] or EXIT_CODES["failed"]
    observer.poll(timeout=1.0)  # whatever the services wrote while stopping
    observer.scan_store()
    result = summary(observer.tally, plan, demo.paths, demo.settings, demo.started)
    result["outcome"] = outcome
    observer.close()
    out = Console() if not demo.headless else Console(stderr=True)
    for table in summary_tables(result):
        out.print(table)
    if demo.args.json:
        demo.args.json.parent.mkdir(parents=True, exist_ok=True)
        demo.args.json.write_text(json.dumps(result, indent=2, default=str))
        out.print(f"summary written to {demo.args.json}")
    if result["unanswered"]:
        out.print(f"[red]{result['unanswered']} transactions without verdict or dead letter[/red]")
        if outcome == "completed":
            outcome = "unanswered"
    return EXIT_CODES[outcome]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # MLflow's per-file download bars would garble the dashboard; the children inherit this.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    settings = Settings()
    started = _now()
    paths = RunPaths.create(args.home, started)
    paths.logs.mkdir(parents=True)
    configure_logging(paths, args.headless)
    raise_on_sigterm()
    console = Console(stderr=args.headless)
    outcome = "completed"
    with Stack(paths.logs, dict(os.environ)) as stack:
        demo = Demo(args, settings, console, paths, started, stack)
        try:
            run_demo(demo)
        except KeyboardInterrupt:
            outcome = "interrupted"
            console.print("interrupted: stopping every process the demo started")
        except (StackError, ValueError) as error:
            outcome = "failed"
            console.print(f"[red]demo: {error}[/red]")
            log.exception("demo failed")
        finally:
            # A second Ctrl-C must not cut the cleanup short: every stop has a timeout.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            stack.stop_all()
            delete_topics_with_prefix(settings.kafka, paths.group_prefix)
            delete_groups(settings.kafka, paths.groups())
    return finish(demo, outcome)


if __name__ == "__main__":
    sys.exit(main())
