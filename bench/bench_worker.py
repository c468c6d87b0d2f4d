"""End-to-end worker throughput and latency on the local broker; prints JSON and a table.

Two runs against a real ``fraudstream-worker`` process on fresh topics:
- throughput: N transactions produced as fast as possible before the worker starts; verdicts/s
  from the first verdict to the last;
- latency: transactions produced at a fixed rate to a running worker; p50/p99 of the verdicts'
  ``latency_ms`` (Kafka timestamp of the transaction to the verdict).

    .venv/bin/python bench/bench_worker.py --transactions 50000 --rate 2000 --seconds 20
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from producers.simulator import SimulatorConfig, iter_events
from stream_app.schemas import Transaction, Verdict
from stream_app.settings import TopicNames

REPO = Path(__file__).resolve().parent.parent
BOOTSTRAP = "127.0.0.1:9092"


def fresh_topics() -> TopicNames:
    suffix = uuid.uuid4().hex[:8]
    topics = TopicNames(**{k: f"bench-{v}-{suffix}" for k, v in TopicNames().model_dump().items()})
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for future in admin.create_topics([NewTopic(t, 3, 1) for t in topics.all()]).values():
        future.result(30)
    return topics


def payloads(count: int, seed: int) -> list[tuple[bytes, bytes]]:
    config = SimulatorConfig(seed=seed, n_customers=20_000, n_merchants=2_000)
    events = iter_events(config, max_transactions=count)
    return [
        (event.customer_id.encode(), event.to_bytes())
        for event in events
        if isinstance(event, Transaction)
    ]


def produce(topic: str, messages: list[tuple[bytes, bytes]], rate: float | None) -> None:
    producer = Producer({"bootstrap.servers": BOOTSTRAP, "linger.ms": 2})
    started = time.perf_counter()
    for index, (key, value) in enumerate(messages):
        if rate is not None:
            ahead = started + index / rate - time.perf_counter()
            if ahead > 0.002:
                time.sleep(ahead)
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.flush(60)


def start_worker(
    topics: TopicNames, model: Path, port: int, data_dir: str
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "FRAUDSTREAM_KAFKA__BOOTSTRAP_SERVERS": BOOTSTRAP,
        "FRAUDSTREAM_WORKER__APP_ID": f"bench-{uuid.uuid4().hex[:8]}",
        "FRAUDSTREAM_WORKER__WEB_PORT": str(port),
        "FRAUDSTREAM_WORKER__DATA_DIR": data_dir,
        "FRAUDSTREAM_WORKER__MODEL_PATH": str(model),
        "FRAUDSTREAM_WORKER__MODEL_POLL_SECONDS": "0",
        "FRAUDSTREAM_WORKER__LOG_LEVEL": "WARNING",
        **{f"FRAUDSTREAM_KAFKA__TOPICS__{k.upper()}": v for k, v in topics.model_dump().items()},
    }
    command = [sys.executable, "-m", "stream_app.worker"]
    return subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.DEVNULL)


def wait_ready(port: int, deadline_seconds: float = 90) -> None:
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        try:
            url = f"http://127.0.0.1:{port}/health"
            with urllib.request.urlopen(url, timeout=2) as response:  # loopback
                if json.load(response)["ready"]:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("worker not ready")


def collect(topic: str, count: int, deadline_seconds: float) -> tuple[list[Verdict], list[float]]:
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": uuid.uuid4().hex})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(3)])
    verdicts: list[Verdict] = []
    arrival: list[float] = []
    deadline = time.monotonic() + deadline_seconds
    while len(verdicts) < count and time.monotonic() < deadline:
        for message in consumer.consume(1000, 0.2):
            if message.error() is None:
                verdicts.append(Verdict.model_validate_json(message.value() or b""))
                arrival.append(time.monotonic())
    consumer.close()
    return verdicts, arrival


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(share * len(ordered)), len(ordered) - 1)]


def throughput_run(model: Path, count: int, port: int) -> dict[str, float]:
    topics = fresh_topics()
    produce(topics.transactions, payloads(count, seed=1), rate=None)
    with tempfile.TemporaryDirectory() as data_dir:
        worker = start_worker(topics, model, port, data_dir)
        try:
            verdicts, arrival = collect(topics.scores, count, deadline_seconds=600)
        finally:
            worker.terminate()
            worker.wait(30)
    seconds = (arrival[-1] - arrival[0]) if len(arrival) > 1 else float("nan")
    return {"transactions": count, "verdicts": len(verdicts), "tx_per_s": len(verdicts) / seconds}


def latency_run(model: Path, rate: float, seconds: float, port: int) -> dict[str, float]:
    topics = fresh_topics()
    messages = payloads(int(rate * seconds), seed=2)
    with tempfile.TemporaryDirectory() as data_dir:
        worker = start_worker(topics, model, port, data_dir)
        try:
            wait_ready(port)
            produce(topics.transactions, messages, rate=rate)
            verdicts, _ = collect(topics.scores, len(messages), deadline_seconds=120)
        finally:
            worker.terminate()
            worker.wait(30)
    latencies = [v.latency_ms for v in verdicts]
    return {
        "rate": rate,
        "verdicts": len(verdicts),
        "p50_ms": percentile(latencies, 0.5),
        "p99_ms": percentile(latencies, 0.99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--transactions", type=int, default=50_000)
    parser.add_argument("--rate", type=float, default=2_000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--model", type=Path, default=REPO / ".local/models/champion")
    parser.add_argument("--port", type=int, default=6099)
    args = parser.parse_args()
    result = {
        "throughput": throughput_run(args.model, args.transactions, args.port),
        "latency": latency_run(args.model, args.rate, args.seconds, args.port),
    }
    print(json.dumps(result, indent=2))
    t, lat = result["throughput"], result["latency"]
    print(f"| worker throughput | {t['tx_per_s']:,.0f} tx/s ({t['verdicts']:,} verdicts) |")
    latency = f"p50 {lat['p50_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms"
    print(f"| latency at {lat['rate']:,.0f} tx/s | {latency} |")


if __name__ == "__main__":
    main()
