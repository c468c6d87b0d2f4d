"""Runs the chaos soak: a paced stream through two workers while the seeded faults strike, then
waits (with a deadline) until every acknowledged transaction has a verdict.

Duplicates: a fault that makes a worker stop without committing (SIGKILL, a bug, a broker kill
that forces a rebalance) replays at most ``2 * commit_every + 3 * batch_size`` transactions
(docs/faults.md, derived at the top of tests/integration/test_faults.py); a clean leave or join
(SIGTERM, scale out or in) at most as much. The soak's bound is that per-fault bound times the
number of faults.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from stream_app.worker.app import MAX_BATCHES_IN_FLIGHT
from tests.chaos.fleet import Fleet, kill_and_restart_broker, own_broker
from tests.chaos.monitor import PartitionMonitor
from tests.chaos.schedule import Fault, ScheduledFault, fault_schedule
from tests.integration.fault_helpers import (
    ConfirmedProducer,
    SeparateBroker,
    VerdictLog,
    VerdictReader,
    mismatched_features,
    offline_recovered_features,
    partition_progress,
    simulated_transactions,
)
from tests.kafka_helpers import unique_topics

START_TIMEOUT = 180.0
SCALE_OUT_SLOT = "w2"


@dataclass(frozen=True)
class SoakConfig:
    transactions: int = 100_000
    rate: float = 400.0  # transactions per second
    faults: int = 32
    scale_pairs: int = 2
    seed: int = 17
    min_gap: float = 4.0  # seconds between two scheduled faults at least
    batch_size: int = 250
    commit_every: int = 1000
    session_timeout: float = 10.0
    stall_seconds: float = 20.0  # the workers' watchdog
    restart_allowance: float = 60.0  # a restarted worker's time to commit again, loaded machine
    drain_timeout: float = 600.0
    broker_port: int = 19292
    controller_port: int = 19293

    @property
    def per_fault_duplicates(self) -> int:
        return 2 * self.commit_every + (MAX_BATCHES_IN_FLIGHT + 1) * self.batch_size

    @property
    def stall_bound(self) -> float:
        return self.stall_seconds + self.restart_allowance


@dataclass
class SoakResult:
    config: SoakConfig
    done: list[tuple[float, str, str]] = field(default_factory=list)  # (at, fault, target)
    acked: int = 0
    failed_to_produce: int = 0
    lost: list[str] = field(default_factory=list)
    verdicts: int = 0
    duplicates: int = 0
    max_verdicts_per_transaction: int = 0
    first_verdicts_wrong: list[str] = field(default_factory=list)
    longest_stall: dict[str, float] = field(default_factory=dict)
    broker_unanswered_samples: int = 0
    bugs_raised: int = 0
    own_exits: dict[str, int] = field(default_factory=dict)
    unprompted_exits: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    progress_at_end: str = ""

    @property
    def duplicate_bound(self) -> int:
        return self.config.per_fault_duplicates * len(self.done)


def run_soak(config: SoakConfig, model: Path, folder: Path) -> SoakResult:
    result, began = SoakResult(config), time.monotonic()
    transactions = simulated_transactions(config.transactions, seed=config.seed, customers=1000)
    expected = offline_recovered_features(transactions)
    broker = own_broker(folder / "broker", config.broker_port, config.controller_port)
    broker.start()
    topics, group = unique_topics("chaos"), f"chaos-{uuid.uuid4().hex[:8]}"
    broker.create_topics(topics)
    fleet = Fleet(
        folder,
        broker.bootstrap,
        topics,
        model,
        {
            "app_id": group,
            "batch_size": str(config.batch_size),
            "session_timeout_seconds": str(config.session_timeout),
            "stall_seconds": str(config.stall_seconds),
        },
        {"BROKER_COMMIT_EVERY": str(config.commit_every)},
    )
    monitor = PartitionMonitor(broker.bootstrap, group, topics.transactions)
    reader = VerdictReader(broker.bootstrap, topics.scores)
    try:
        fleet.start("w0"), fleet.start("w1")
        fleet.wait_ready(["w0", "w1"], START_TIMEOUT)
        result.seconds["setup"] = time.monotonic() - began
        monitor.start()
        producer = ConfirmedProducer(
            broker.bootstrap, topics.transactions, transactions, config.rate
        ).start()
        stream_began = time.monotonic()
        duration = config.transactions / config.rate
        plan = fault_schedule(
            config.seed, config.faults, duration * 0.95, config.min_gap, config.scale_pairs
        )
        targets = random.Random(config.seed)  # noqa: S311  # reproducible choices, not a secret
        _strike_all(plan, fleet, broker, reader, result, stream_began, targets)
        producer.join(duration + 300)
        result.seconds["stream"] = time.monotonic() - stream_began
        _drain(producer, reader, fleet, config.drain_timeout)
        result.seconds["stream_to_all_scored"] = time.monotonic() - stream_began
        log_ = reader.settle(5.0)
        result.progress_at_end = partition_progress(broker.bootstrap, group, topics.transactions)
    finally:
        reader.close()
        monitor.stop()
        fleet.stop_all()
        broker.stop()
    _summarise(result, producer, log_, expected, monitor, fleet)
    result.seconds["total"] = time.monotonic() - began
    return result


def _strike_all(
    plan: list[ScheduledFault],
    fleet: Fleet,
    broker: SeparateBroker,
    reader: VerdictReader,
    result: SoakResult,
    began: float,
    rng: random.Random,
) -> None:
    for number, scheduled in enumerate(plan):
        while time.monotonic() - began < scheduled.at:
            fleet.supervise()
            reader.read_available(0.1)
        target = _strike(scheduled.fault, number, fleet, broker, rng)
        result.done.append((round(time.monotonic() - began, 1), scheduled.fault.value, target))


def _strike(
    fault: Fault, number: int, fleet: Fleet, broker: SeparateBroker, rng: random.Random
) -> str:
    permanent = [name for name in fleet.running() if name != SCALE_OUT_SLOT] or ["w0"]
    target = rng.choice(permanent)
    if fault is Fault.KILL:
        fleet.kill(target)
    elif fault is Fault.KILL_YOUNG:
        fleet.kill(target)  # a fresh process on the slot...
        young_for = rng.uniform(0.5, 4.5)
        while time.monotonic() - fleet.slots[target].started_at < young_for:
            time.sleep(0.05)
        fleet.kill(target)  # ...killed again within its first 5 s
        target = f"{target} (at {young_for:.1f} s old)"
    elif fault is Fault.TERM:
        fleet.terminate(target)
    elif fault is Fault.BUG:
        fleet.drop_bug_trigger(number)
        target = "whichever scores next"
    elif fault is Fault.BROKER_KILL:
        kill_and_restart_broker(broker)
        target = "broker"
    elif fault is Fault.SCALE_OUT:
        fleet.start(SCALE_OUT_SLOT)
        target = SCALE_OUT_SLOT
    else:
        fleet.terminate(SCALE_OUT_SLOT, restart=False)
        target = SCALE_OUT_SLOT
    return target


def _drain(
    producer: ConfirmedProducer, reader: VerdictReader, fleet: Fleet, timeout: float
) -> None:
    """Every acknowledged transaction scored, the supervisor restarting workers meanwhile."""
    deadline = time.monotonic() + timeout
    while not producer.acked <= set(reader.read_available(0.5).counts):
        fleet.supervise()
        if time.monotonic() > deadline:
            return  # the check after it reports what is missing


def _summarise(
    result: SoakResult,
    producer: ConfirmedProducer,
    log_: VerdictLog,
    expected: dict[str, list[float]],
    monitor: PartitionMonitor,
    fleet: Fleet,
) -> None:
    result.acked = len(producer.acked)
    result.failed_to_produce = len(producer.failed) + producer.unflushed
    result.lost = sorted(producer.acked - set(log_.counts))
    result.verdicts, result.duplicates = len(log_.verdicts), log_.duplicates
    result.max_verdicts_per_transaction = max(log_.counts.values(), default=0)
    result.first_verdicts_wrong = mismatched_features(log_.first.values(), expected)
    stall = monitor.longest
    result.longest_stall = {
        "seconds": stall.seconds,
        "partition": stall.partition,
        "committed": stall.committed,
        "high": stall.high,
    }
    result.broker_unanswered_samples = monitor.unanswered_samples
    result.bugs_raised = fleet.bugs_raised()
    result.own_exits = dict(fleet.own_exits)
    result.unprompted_exits = {str(code): n for code, n in fleet.unprompted_exits.items()}
