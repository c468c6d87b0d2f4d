"""Takeover: two workers share a stream, one is stopped (SIGTERM) or killed (SIGKILL), and the
survivor takes its partitions over, with standby replicas (the survivor kept a copy of the other
worker's customer state) and without (it rebuilds that state from the changelog).

What must hold either way: every transaction the broker acknowledged gets a verdict, and every
first verdict's features equal the offline computation (so the survivor's state for the partitions
it took over is exactly the customers' history). How long the takeover took (the signal to the
survivor's first verdict for a taken-over partition after the stopped worker exited) is
measured and logged as ``measured ...``.
The run count behind turning standbys on by default is in docs/faults.md ("Standby replicas").
"""

from __future__ import annotations

import logging
import signal
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from stream_app.settings import TopicNames
from tests.integration.fault_helpers import (
    QUIET_CLIENT_LOG_LEVEL,
    ConfirmedProducer,
    VerdictLog,
    VerdictReader,
    Workers,
    assert_first_verdicts_match_offline,
    offline_recovered_features,
    partition_progress,
    simulated_transactions,
)
from tests.integration.worker_helpers import metric, ready
from tests.kafka_helpers import wait_until
from tests.workers import WorkerProcess

log = logging.getLogger(__name__)

START_TIMEOUT = 180.0  # a worker's start (model load, group join, recovery) on a busy machine
COUNT, RATE = 6000, 300.0  # a 20 s stream; the stop lands at about its third
# Tight commits and a short session (as the fault tests' TIGHT_POLICY): a SIGKILLed member's
# partitions are handed over after 10 s, not the default 20.
WORKER = {"batch_size": "250", "session_timeout_seconds": "10"}
FAUST_ENV = {"BROKER_COMMIT_EVERY": "1000", "BROKER_COMMIT_INTERVAL": "2.8"}
# The store logs this when a partition it held as standby becomes active (bulk_recovery.py).
TAKEN_FROM_STANDBY = "taken over from the standby copy"


def assigned_partitions(worker: WorkerProcess) -> set[int]:
    """The transactions partitions a worker holds: its per-partition lag series (the watchdog
    keeps one for every assigned partition and removes a revoked partition's)."""
    with urllib.request.urlopen(f"{worker.url}/metrics", timeout=5) as response:  # noqa: S310
        lines = response.read().decode().splitlines()
    prefix = 'fraudstream_consumer_lag{partition="'
    return {int(line[len(prefix) :].split('"', 1)[0]) for line in lines if line.startswith(prefix)}


def customer_partitions(bootstrap: str, topic: str, partitions: int = 3) -> dict[str, int]:
    """Which transactions partition each customer's transactions went to, read back: the fault
    tests' producer keeps librdkafka's own partitioner, so predict_routing.partition_for (the
    Java client's murmur2) would not say."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"takeover-keys-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "log_level": QUIET_CLIENT_LOG_LEVEL,
        }
    )
    try:
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), 10)[1]
            for p in range(partitions)
        }
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        found: dict[str, int] = {}
        positions = dict.fromkeys(range(partitions), 0)
        deadline = time.monotonic() + 60
        while any(positions[p] < ends[p] for p in positions):
            assert time.monotonic() < deadline, f"transactions not read back: {positions} {ends}"
            for message in consumer.consume(num_messages=5000, timeout=0.5):
                partition, offset = message.partition(), message.offset()
                if message.error() is None and partition is not None and offset is not None:
                    found[(message.key() or b"").decode()] = partition
                    positions[partition] = offset + 1
        return found
    finally:
        consumer.close()


def both_scoring(first: WorkerProcess, second: WorkerProcess) -> bool:
    return all(metric(w, "fraudstream_transactions_scored_total") > 0 for w in (first, second))


def shares_apart(first: WorkerProcess, second: WorkerProcess) -> bool:
    """Both workers hold partitions of the stream, and none is listed by both."""
    mine, theirs = assigned_partitions(first), assigned_partitions(second)
    return bool(mine and theirs and not mine & theirs)


def stop(worker: WorkerProcess, how: str) -> None:
    if how == "sigkill":
        worker.process.send_signal(signal.SIGKILL)
        worker.process.wait(30)
    else:
        assert worker.stop() == 0, worker.log_tail()


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
@pytest.mark.parametrize("standbys", [1, 0], ids=["standby", "no-standby"])
def test_the_survivor_takes_over_a_stopped_workers_partitions_with_its_state(
    kafka_bootstrap: str,
    topics: TopicNames,
    trained_model_dir: Path,
    workers: Workers,
    measured: dict[str, float],
    standbys: int,
    how: str,
) -> None:
    transactions = simulated_transactions(COUNT, seed=47)
    expected = offline_recovered_features(transactions)
    app_id = f"takeover-{uuid.uuid4().hex[:8]}"
    group = {"app_id": app_id, "standby_replicas": str(standbys), **WORKER}

    def start() -> WorkerProcess:
        worker = workers.start(kafka_bootstrap, topics, trained_model_dir, FAUST_ENV, **group)
        wait_until(lambda: ready(worker), timeout=START_TIMEOUT, what="worker ready")
        return worker

    victim, survivor = start(), start()
    producer = ConfirmedProducer(kafka_bootstrap, topics.transactions, transactions, RATE).start()
    reader = VerdictReader(kafka_bootstrap, topics.scores)
    try:
        wait_until(lambda: both_scoring(victim, survivor), 120, "both workers scoring")
        reader.wait_for(lambda v: len(v.counts) >= COUNT // 4, 120, "a quarter scored")
        # Each worker's lag series follow its assignment on the watchdog's timer, so right
        # after the rebalance a revoked partition can still be listed for a moment.
        wait_until(lambda: shares_apart(victim, survivor), 30, "two workers, each a share")
        taken = assigned_partitions(victim)
        stopped_wall = datetime.now(UTC)
        stop(victim, how)
        # A worker stopped with SIGTERM scores its last batches while it shuts down: only
        # verdicts after it exited are surely the survivor's.
        exited_wall = datetime.now(UTC)
        measured["stop_s"] = (exited_wall - stopped_wall).total_seconds()
        producer.join(120)
        log_ = every_acknowledged(kafka_bootstrap, producer, reader, app_id, topics, survivor)
    finally:
        reader.close()

    partition_of = customer_partitions(kafka_bootstrap, topics.transactions)
    taken_over = [
        v
        for v in log_.first.values()
        if v.scored_at > exited_wall and partition_of[v.customer_id] in taken
    ]
    assert taken_over, "the survivor must have scored some of the taken-over partitions"
    first_after = min(v.scored_at for v in taken_over)
    measured.update(
        standby_replicas=standbys,
        takeover_s=(first_after - stopped_wall).total_seconds(),
        taken_over_partitions=len(taken),
        transactions=COUNT,
        verdicts=len(log_.verdicts),
        duplicates=log_.duplicates,
    )
    assert survivor.process.poll() is None, survivor.log_tail()
    assert producer.failed == [] and producer.unflushed == 0
    assert producer.acked == {t.transaction_id for t in transactions}
    # The survivor's state for the customers it took over is exactly their history.
    assert_first_verdicts_match_offline(log_, expected)
    if standbys:
        # The standby copy was used, rather than the changelog read again from its start.
        assert TAKEN_FROM_STANDBY in survivor.log_path.read_text(), survivor.log_tail(80)


def every_acknowledged(
    bootstrap: str,
    producer: ConfirmedProducer,
    reader: VerdictReader,
    app_id: str,
    topics: TopicNames,
    survivor: WorkerProcess,
) -> VerdictLog:
    """Every acknowledged transaction scored; a timeout says which partition stopped and what
    the survivor's recovery was waiting for (its log: Faust's highwater and offset tables)."""
    try:
        reader.wait_for(lambda v: producer.acked <= set(v.counts), 240, "every acknowledged")
    except AssertionError as timeout:
        progress = partition_progress(bootstrap, app_id, topics.transactions)
        raise AssertionError(f"{timeout}\n{progress}\n{survivor.log_tail(150)}") from None
    return reader.settle()
