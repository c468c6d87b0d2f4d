"""Helpers for the fault tests: confirmed producing, reading every verdict, a broker of our own.

The fault tests check delivery guarantees the way Kafka's own system tests do: a producer
records which messages the broker acknowledged, a consumer reads everything the system under
test wrote, and the two are compared after a fault (worker killed, broker restarted, group
rebalanced). Nothing here sleeps to wait for a result; every wait polls with a deadline.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from producers.simulator import SimulatorConfig, iter_events
from stream_app.features import CONTEXT_FEATURES, CUSTOMER_FEATURES, offline_features
from stream_app.schemas import Transaction, Verdict
from stream_app.settings import TopicNames
from stream_app.worker.watchdog import EXIT_STALLED
from tests.kafka_helpers import BROKER_SCRIPT, REPO_ROOT, create_topics
from tests.processes import free_port
from tests.workers import WorkerProcess, settings_env

# Merchant features are in memory per worker, rebuilt after a restart by readers of whole topics
# (labels, and every transactions partition; see docs/worker.md): not compared here. Context and
# customer features are a pure function of the customer's history, recovered from the changelog:
# those must equal the offline computation whatever fault happened.
RECOVERED_FEATURES: tuple[str, ...] = CONTEXT_FEATURES + CUSTOMER_FEATURES

# syslog "critical": the test's own clients would otherwise log every refused connection
# while a broker is down on purpose.
QUIET_CLIENT_LOG_LEVEL = 2


# --- traffic ----------------------------------------------------------------------------------


def simulated_transactions(count: int, seed: int = 23, customers: int = 400) -> list[Transaction]:
    """The simulator's realistic traffic (fraud scenarios included), in publication order."""
    config = SimulatorConfig(seed=seed, n_customers=customers, n_merchants=500)
    events = iter_events(config, max_transactions=count)
    return [event for event in events if isinstance(event, Transaction)]


def offline_recovered_features(transactions: Sequence[Transaction]) -> dict[str, list[float]]:
    """What training computes for each transaction: the truth the online features must match."""
    frame = pd.DataFrame([t.model_dump() for t in transactions])
    expected = offline_features(frame)[list(RECOVERED_FEATURES)]
    rows = expected.to_numpy(dtype=np.float32).tolist()
    return {t.transaction_id: row for t, row in zip(transactions, rows, strict=True)}


def recovered_features(verdict: Verdict) -> list[float]:
    assert verdict.features is not None, f"verdict without features: {verdict.transaction_id}"
    return [verdict.features[name] for name in RECOVERED_FEATURES]


class ConfirmedProducer:
    """Produces transactions on a background thread and records which ones the broker acked.

    Idempotent with ``acks=all``, so a retry after a broker outage neither duplicates nor
    reorders a customer's transactions; librdkafka keeps retrying for ``message.timeout.ms``.
    ``rate`` (transactions per second) spreads the stream over time so that faults land in the
    middle of it; ``None`` sends as fast as the client goes.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        transactions: Sequence[Transaction],
        rate: float | None = None,
    ) -> None:
        self.topic = topic
        self.transactions = transactions
        self.rate = rate
        self.acked: set[str] = set()
        self.failed: list[str] = []
        self.unflushed = 0
        self.handed_over = 0  # transactions given to librdkafka so far (acked or not)
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "message.timeout.ms": 300_000,
                "log_level": QUIET_CLIENT_LOG_LEVEL,
            }
        )
        self._thread = threading.Thread(target=self._run, name="confirmed-producer", daemon=True)

    def start(self) -> ConfirmedProducer:
        self._thread.start()
        return self

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"producer still running after {timeout}s"

    def _run(self) -> None:
        started = time.monotonic()
        for index, transaction in enumerate(self.transactions):
            if self.rate is not None:
                due = started + index / self.rate
                while (wait := due - time.monotonic()) > 0:
                    # Never a negative timeout: librdkafka reads it as "wait forever".
                    self._producer.poll(min(wait, 0.05))
            # Keyed by customer, as every producer of this topic must: the partition decides
            # which worker holds the customer's state.
            self._producer.produce(
                self.topic,
                transaction.to_bytes(),
                transaction.customer_id.encode(),
                on_delivery=self._on_delivery_for(transaction.transaction_id),
            )
            self._producer.poll(0)
            self.handed_over = index + 1
        self.unflushed = self._producer.flush(300)

    def _on_delivery_for(self, transaction_id: str) -> Callable[[KafkaError | None, Message], None]:
        def on_delivery(error: KafkaError | None, _message: Message) -> None:
            if error is None:
                self.acked.add(transaction_id)
            else:
                self.failed.append(f"{transaction_id}: {error}")

        return on_delivery


# --- reading the worker's output --------------------------------------------------------------


@dataclass
class VerdictLog:
    """Every verdict read so far from the scores topic, in the order the worker wrote them."""

    verdicts: list[Verdict] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    first: dict[str, Verdict] = field(default_factory=dict)

    def add(self, verdict: Verdict) -> None:
        self.verdicts.append(verdict)
        self.counts[verdict.transaction_id] += 1
        # A customer's verdicts share one scores partition (keyed by customer), so the first
        # read is the first written.
        self.first.setdefault(verdict.transaction_id, verdict)

    @property
    def duplicates(self) -> int:
        """Verdicts beyond the first for their transaction."""
        return len(self.verdicts) - len(self.counts)


class VerdictReader:
    """Reads the scores topic from the beginning, incrementally, without a consumer group."""

    def __init__(self, bootstrap: str, topic: str, partitions: int = 3) -> None:
        self.log = VerdictLog()
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"fault-reader-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "log_level": QUIET_CLIENT_LOG_LEVEL,
            }
        )
        self._consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])

    def read_available(self, seconds: float = 0.2) -> VerdictLog:
        for message in self._consumer.consume(num_messages=5000, timeout=seconds):
            if message.error() is None:
                self.log.add(Verdict.model_validate_json(message.value() or b""))
        return self.log

    def wait_for(
        self, condition: Callable[[VerdictLog], bool], timeout: float, what: str
    ) -> VerdictLog:
        deadline = time.monotonic() + timeout
        while not condition(self.read_available()):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {what}: "
                    f"{len(self.log.counts)} transactions scored, {self.log.duplicates} dups"
                )
        return self.log

    def settle(self, seconds: float = 3.0) -> VerdictLog:
        """Keep reading a little after the goal, so late duplicates are counted too."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.read_available()
        return self.log

    def close(self) -> None:
        self._consumer.close()


MAX_WATCHDOG_RESTARTS = 2


def scored_restarting_on_stalls(
    producer: ConfirmedProducer,
    reader: VerdictReader,
    worker: WorkerProcess,
    restart: Callable[[], WorkerProcess],
    timeout: float,
) -> tuple[WorkerProcess, int]:
    """Wait until every acknowledged transaction has a verdict, restarting the worker, as its
    supervisor would, whenever its progress watchdog makes it exit (code 75). The worker that
    finished the job and how many restarts that took; the test reports them, so a run the
    watchdog had to rescue is told from a clean one."""
    producer.join(120)
    deadline, restarts = time.monotonic() + timeout, 0
    while not producer.acked <= set(reader.read_available().counts):
        if worker.process.poll() is not None:
            assert worker.process.returncode == EXIT_STALLED, worker.log_tail()
            restarts += 1
            assert restarts <= MAX_WATCHDOG_RESTARTS, "the watchdog fired again and again"
            worker = restart()
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for every acknowledged transaction: "
                f"{len(reader.log.counts)} transactions scored, {reader.log.duplicates} dups, "
                f"{restarts} watchdog restarts"
            )
    return worker, restarts


def partition_progress(bootstrap: str, group: str, topic: str, partitions: int = 3) -> str:
    """Each partition's committed offset (for ``group``) and watermarks: printed when a test
    times out waiting for verdicts, to tell an unread partition from a slow one."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "log_level": QUIET_CLIENT_LOG_LEVEL}
    )
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        committed = consumer.committed(tps, timeout=10)
        rows = []
        for tp in committed:
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            rows.append(f"p{tp.partition}: committed={tp.offset} low={low} high={high}")
        return "; ".join(rows)
    finally:
        consumer.close()


def mismatched_features(verdicts: Iterable[Verdict], expected: dict[str, list[float]]) -> list[str]:
    """Transaction ids whose recovered features differ from the offline computation."""
    return [
        v.transaction_id for v in verdicts if recovered_features(v) != expected[v.transaction_id]
    ]


def assert_first_verdicts_match_offline(log_: VerdictLog, expected: dict[str, list[float]]) -> None:
    """The first verdict of every transaction saw exactly the customer's history before it."""
    wrong = mismatched_features(log_.first.values(), expected)
    assert not wrong, f"{len(wrong)} first verdicts differ from offline features: {wrong[:5]}"


# --- worker processes against any broker ------------------------------------------------------


class Workers:
    """Real worker processes against a given broker; the fixture stops all of them at teardown."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started: list[WorkerProcess] = []

    def start(
        self,
        bootstrap: str,
        topics: TopicNames,
        model: Path,
        extra_env: dict[str, str] | None = None,
        **worker: str,
    ) -> WorkerProcess:
        port = free_port()
        options = {
            # Each worker its own data folder unless a test restarts one on the same folder.
            "data_dir": str(self.folder / f"fault-worker-{len(self.started)}-data"),
            "web_port": str(port),
            "model_path": str(model),
            "model_poll_seconds": "0",  # no registry here
            **worker,
        }
        env = {**settings_env(bootstrap, topics, **options), **(extra_env or {})}
        log_path = self.folder / f"fault-worker-{len(self.started)}.log"
        process = WorkerProcess(env, port, log_path)
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.started:
            process.stop()


def kill_hard(worker: WorkerProcess) -> None:
    """SIGKILL: no shutdown hook runs, no offset is committed, nothing is flushed."""
    worker.process.send_signal(signal.SIGKILL)
    worker.process.wait(30)


# --- a broker of our own, to stop and kill ----------------------------------------------------


class SeparateBroker:
    """A second local broker (never the shared one on 9092), driven by deploy/kafka/broker.sh.

    The jars are shared with the main broker's folder, so starting one downloads nothing.
    """

    def __init__(self, folder: Path, port: int, controller_port: int) -> None:
        self.folder = folder
        self.bootstrap = f"127.0.0.1:{port}"
        self.env = {
            **os.environ,
            "KAFKA_LOCAL": str(folder),
            "KAFKA_PORT": str(port),
            "CONTROLLER_PORT": str(controller_port),
            "KAFKA_LIBS": str(REPO_ROOT / ".local" / "kafka" / "libs"),
            "KAFKA_START_TIMEOUT": "120",
            # Topics are created per test by create_topics; none of the defaults are needed.
            "FRAUDSTREAM_KAFKA__TOPICS__TRANSACTIONS": "unused-transactions",
        }

    def _run(self, command: str) -> None:
        done = subprocess.run(
            ["bash", str(BROKER_SCRIPT), command],
            check=False,
            cwd=REPO_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, f"broker.sh {command} failed:\n{done.stderr[-2000:]}"

    def start(self) -> None:
        self._run("start")

    def stop(self) -> None:
        """A clean, controlled shutdown (SIGTERM, then broker.sh waits for the JVM to exit)."""
        self._run("stop")

    def kill(self) -> None:
        """kill -9 of the broker JVM: no controlled shutdown, no final log flush."""
        pid = int((self.folder / "broker.pid").read_text().strip())
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while _alive(pid):
            assert time.monotonic() < deadline, f"broker pid {pid} survived SIGKILL"
            time.sleep(0.1)

    def create_topics(self, topics: TopicNames) -> None:
        create_topics(self.bootstrap, topics)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = subprocess.run(
        ["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True, check=False
    ).stdout.strip()
    return bool(state) and not state.startswith("Z")
