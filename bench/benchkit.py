"""Shared parts of the Kafka benchmarks: topics, payloads, paced producing, processes, timing
(the machine each run is recorded on: machine_info.py).

Everything talks to the local broker on loopback and to processes this benchmark starts.
Timing rules used by every leg:

- throughput: a backlog of N transactions is produced before the consumer starts; the rate is
  measured from the Kafka timestamps of the first and the last verdict (set by the scorer's own
  producer), so neither start-up nor the benchmark's reading of the results is counted;
- latency: transactions are produced at a fixed rate to a running consumer; a verdict's latency
  is the wall time at which the benchmark received it minus the wall time at which the benchmark
  produced its transaction (same machine, same clock): produce to verdict, end to end.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from producers.simulator import SimulatorConfig, iter_events
from stream_app.kafka import consume_available
from stream_app.schemas import Transaction, Verdict
from stream_app.settings import TopicNames

REPO = Path(__file__).resolve().parent.parent
BOOTSTRAP = "127.0.0.1:9092"
PARTITIONS = 3
DEFAULT_MODEL = REPO / ".local/models/champion"

Message = tuple[bytes, bytes]  # (key, value)


# --- topics ----------------------------------------------------------------------------------


_ADMIN: list[AdminClient] = []


def admin() -> AdminClient:
    """One admin client per process: destroying one with work pending can crash librdkafka."""
    if not _ADMIN:
        _ADMIN.append(AdminClient({"bootstrap.servers": BOOTSTRAP}))
    return _ADMIN[0]


def fresh_topics(prefix: str = "bench", partitions: int = PARTITIONS) -> TopicNames:
    """A new set of the project's topics, so that no leg reads another's messages."""
    suffix = uuid.uuid4().hex[:8]
    names = {key: f"{prefix}-{name}-{suffix}" for key, name in TopicNames().model_dump().items()}
    topics = TopicNames(**names)
    create_topics(topics.all(), partitions=partitions)
    return topics


def create_topics(
    names: Sequence[str], config: dict[str, str] | None = None, partitions: int = PARTITIONS
) -> None:
    new = [NewTopic(name, partitions, 1, config=config or {}) for name in names]
    for future in admin().create_topics(new).values():
        future.result(30)


def delete_topics(names: Sequence[str]) -> None:
    """Best effort: a leg's topics are of no use after it, and some are large."""
    client = admin()
    existing = set(client.list_topics(timeout=10).topics)
    # Each name once: a repeated name in one request crashed the client (confluent-kafka 2.16).
    doomed = sorted(set(names) & existing)
    if doomed:
        for future in client.delete_topics(doomed).values():
            # Cleanup only: a failure leaves a topic behind, it does not spoil the results.
            with contextlib.suppress(Exception):
                future.result(30)


def topics_with_prefix(prefix: str) -> list[str]:
    return [name for name in admin().list_topics(timeout=10).topics if name.startswith(prefix)]


def message_count(
    topic: str, consumer: Consumer | None = None, partitions: int = PARTITIONS
) -> int:
    """Messages in a fresh topic: the sum of its partitions' high watermarks (no reading);
    -1 while the broker cannot tell (a partition's leader is still being elected)."""
    own = consumer is None
    client = consumer or Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "bench-watermarks"})
    try:
        return sum(
            client.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        )
    except KafkaException:
        return -1
    finally:
        if own:
            client.close()


# --- payloads and producing -----------------------------------------------------------------


def payloads(count: int, seed: int = 1) -> list[Message]:
    """Realistic transactions from the simulator (20,000 customers, 2,000 merchants)."""
    config = SimulatorConfig(seed=seed, n_customers=20_000, n_merchants=2_000)
    return [
        (event.customer_id.encode(), event.to_bytes())
        for event in iter_events(config, max_transactions=count)
        if isinstance(event, Transaction)
    ]


def transaction_id(value: bytes) -> str:
    return str(json.loads(value)["transaction_id"])


def produce_waiting(producer: Producer, topic: str, value: bytes, key: bytes) -> None:
    """Enqueue one message, serving delivery reports while librdkafka's queue is full."""
    while True:
        try:
            producer.produce(topic, value, key)
            return
        except BufferError:
            producer.poll(0.05)


def produce(topic: str, messages: Sequence[Message], rate: float | None = None) -> dict[str, float]:
    """Produce ``messages`` (as fast as possible, or paced at ``rate``/s); returns the wall
    time each transaction was handed to the client, by transaction id."""
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "linger.ms": 1, "acks": "all"})
    sent: dict[str, float] = {}
    started = time.perf_counter()
    for index, (key, value) in enumerate(messages):
        if rate is not None:
            ahead = started + index / rate - time.perf_counter()
            if ahead > 0.001:
                time.sleep(ahead)
            sent[transaction_id(value)] = time.time()
        produce_waiting(producer, topic, value, key)
        producer.poll(0)
    if producer.flush(120):
        raise SystemExit(f"could not produce to {topic}")
    return sent


# --- measuring ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(int(share * len(ordered)), len(ordered) - 1)]


def wait_for_count(
    topic: str,
    count: int,
    deadline_seconds: float,
    alive: Any = None,
    partitions: int = PARTITIONS,
) -> int:
    """Poll the topic's size until it holds ``count`` messages (or the deadline passes)."""
    deadline = time.monotonic() + deadline_seconds
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "bench-watermarks"})
    try:
        seen = message_count(topic, consumer, partitions)
        while seen < count and time.monotonic() < deadline:
            if alive is not None and not alive():
                raise SystemExit(f"the scorer exited with {seen}/{count} verdicts on {topic}")
            time.sleep(0.25)
            seen = message_count(topic, consumer, partitions)
    finally:
        consumer.close()
    return seen


def verdict_timestamps(
    topic: str, count: int, partitions: int = PARTITIONS
) -> tuple[list[int], list[bytes]]:
    """Kafka timestamps (ms) of the first ``count`` verdicts, and a few payloads to check."""
    consumer = Consumer(
        {"bootstrap.servers": BOOTSTRAP, "group.id": uuid.uuid4().hex, "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    stamps: list[int] = []
    samples: list[bytes] = []
    deadline = time.monotonic() + 120
    while len(stamps) < count and time.monotonic() < deadline:
        for message in consumer.consume(5000, 0.5):
            if message.error() is None:
                stamps.append(message.timestamp()[1])
                if len(samples) < 100:
                    samples.append(message.value() or b"")
    consumer.close()
    return stamps, samples


def throughput(stamps: Sequence[int]) -> float:
    """Verdicts per second between the first and the last verdict's timestamp."""
    if len(stamps) < 2:
        return float("nan")
    span = (max(stamps) - min(stamps)) / 1000
    return (len(stamps) - 1) / span if span > 0 else float("nan")


def check_verdicts(samples: Sequence[bytes]) -> None:
    """The benchmark measures real verdicts: each sample must parse as the wire contract."""
    for sample in samples:
        Verdict.model_validate_json(sample)


@dataclass
class VerdictCollector:
    """Reads verdicts in a background thread, noting when each transaction's verdict arrived."""

    topic: str
    arrived: dict[str, float] = field(default_factory=dict)
    worker_latency_ms: list[float] = field(default_factory=list)
    # From the verdict's Kafka timestamp (set when the scorer produced it) to its arrival here.
    read_ms: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="verdict-collector", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": BOOTSTRAP,
                "group.id": uuid.uuid4().hex,
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 5,
            }
        )
        consumer.assign([TopicPartition(self.topic, p, 0) for p in range(PARTITIONS)])
        while not self._stop.is_set():
            for message in consume_available(consumer, 1000, 0.05):
                if message.error() is None:
                    now = time.time()
                    verdict = json.loads(message.value() or b"{}")
                    self.arrived[verdict["transaction_id"]] = now
                    self.worker_latency_ms.append(float(verdict["latency_ms"]))
                    self.read_ms.append(now * 1000 - message.timestamp()[1])
        consumer.close()

    def wait(self, count: int, deadline_seconds: float) -> None:
        deadline = time.monotonic() + deadline_seconds
        while len(self.arrived) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)


def latency_summary(
    sent: dict[str, float], collector: VerdictCollector, rate: float
) -> dict[str, float]:
    """Produce-to-verdict latency, and how it splits: ``scorer`` is what the scorer measured,
    from the transaction's Kafka timestamp (set when the benchmark called ``produce``, so it
    includes the benchmark producer's 1 ms linger) to the verdict; ``verdict_to_reader`` is
    the rest, from the verdict's Kafka timestamp to the benchmark's reader (the scorer's own
    producer linger, the broker, and the reader: the benchmark's share is part of it)."""
    latencies = [
        (collector.arrived[txn] - at) * 1000 for txn, at in sent.items() if txn in collector.arrived
    ]
    span = max(sent.values()) - min(sent.values()) if sent else 0.0
    return {
        "rate": rate,
        "achieved_rate": (len(sent) - 1) / span if span > 0 else float("nan"),
        "sent": len(sent),
        "verdicts": len(latencies),
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": max(latencies, default=float("nan")),
        "scorer_p50_ms": percentile(collector.worker_latency_ms, 0.50),
        "scorer_p99_ms": percentile(collector.worker_latency_ms, 0.99),
        "verdict_to_reader_p50_ms": percentile(collector.read_ms, 0.50),
        "verdict_to_reader_p99_ms": percentile(collector.read_ms, 0.99),
    }


def paced_latency(topics: TopicNames, messages: Sequence[Message], rate: float) -> dict[str, float]:
    """Produce at ``rate`` to a running scorer and measure produce-to-verdict latency."""
    collector = VerdictCollector(topics.scores)
    collector.start()
    time.sleep(1.0)  # let the collector's assignment settle before the first verdict
    sent = produce(topics.transactions, messages, rate=rate)
    collector.wait(len(sent), deadline_seconds=120)
    return latency_summary(sent, collector, rate)


# --- processes ---------------------------------------------------------------------------------


def scorer_env(
    topics: TopicNames,
    model: Path,
    app_id: str,
    port: int,
    data_dir: str,
    partitions: int = PARTITIONS,
) -> dict[str, str]:
    """The environment both the worker and the baseline loop read their settings from."""
    return {
        **os.environ,
        "FRAUDSTREAM_KAFKA__BOOTSTRAP_SERVERS": BOOTSTRAP,
        "FRAUDSTREAM_KAFKA__PARTITIONS": str(partitions),
        "FRAUDSTREAM_WORKER__APP_ID": app_id,
        "FRAUDSTREAM_WORKER__WEB_PORT": str(port),
        "FRAUDSTREAM_WORKER__DATA_DIR": data_dir,
        "FRAUDSTREAM_WORKER__MODEL_PATH": str(model),
        "FRAUDSTREAM_WORKER__MODEL_POLL_SECONDS": "0",
        "FRAUDSTREAM_WORKER__LOG_LEVEL": "WARNING",
        "FRAUDSTREAM_MLFLOW__TRACKING_URI": "http://127.0.0.1:9",  # never reached: polling off
        **{f"FRAUDSTREAM_KAFKA__TOPICS__{k.upper()}": v for k, v in topics.model_dump().items()},
    }


def start_process(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen(command, env=env, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def wait_ready(port: int, process: subprocess.Popen[bytes], deadline_seconds: float = 120) -> None:
    """The worker's /health says ready: partitions assigned, labels caught up."""
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"worker exited with {process.returncode} before it was ready")
        try:
            url = f"http://127.0.0.1:{port}/health"
            with urllib.request.urlopen(url, timeout=2) as response:  # loopback
                if json.load(response)["ready"]:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("worker not ready")


def rss_mib(pid: int) -> float:
    """Resident set size of a process, from /proc (Linux)."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(match.group(1)) / 1024 if match else float("nan")
