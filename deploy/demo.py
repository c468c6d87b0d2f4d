"""``make demo``: run the worker and the simulator against the local broker and show what happens.

Starts ``fraudstream-worker`` and ``fraudstream-generate stream`` as the separate processes a user
would run, adds a few malformed messages to show the dead-letter path, reads the topics while it
runs and ends with a summary measured from the topics themselves. Ctrl-C stops everything it
started.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition
from rich.console import Console
from rich.live import Live
from rich.table import Table

from stream_app.schemas import DeadLetter, Verdict
from stream_app.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
RECENT_VERDICTS = 2000
MALFORMED = [b"not json", b'{"transaction_id": "demo-bad", "amount": -1}', b"\xff\xfe"]


@dataclass
class Tally:
    """What the demo has seen on the topics since it started."""

    transactions: int = 0
    produced_ids: set[str] = field(default_factory=set)
    answered_ids: set[str] = field(default_factory=set)
    decisions: Counter[str] = field(default_factory=Counter)
    dead_letters: Counter[str] = field(default_factory=Counter)
    # The most recent verdicts only: the warm-up burst at the start is a backlog, not latency.
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT_VERDICTS))
    models: Counter[str] = field(default_factory=Counter)
    last_alerts: list[Verdict] = field(default_factory=list)

    @property
    def verdicts(self) -> int:
        return sum(self.decisions.values())

    @property
    def unanswered(self) -> int:
        """Transactions produced during the demo with neither a verdict nor a dead letter."""
        return len(self.produced_ids - self.answered_ids)

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(int(share * len(ordered)), len(ordered) - 1)] if ordered else 0.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=60, help="seconds of traffic (60)")
    parser.add_argument("--rate", type=float, default=200, help="transactions per second (200)")
    parser.add_argument("--model", default=".local/models/champion", help="model folder")
    return parser.parse_args()


def spawn(command: list[str], log_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT
        )


def stop(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


def worker_ready(port: int) -> bool:
    try:
        url = f"http://127.0.0.1:{port}/health"
        with urllib.request.urlopen(url, timeout=2) as response:  # loopback only
            return bool(json.load(response)["ready"])
    except OSError:
        return False


def tail_consumer(settings: Settings) -> Consumer:
    """A reader positioned at the current end of every topic the summary counts."""
    topics = settings.kafka.topics
    consumer = Consumer(
        {
            **settings.kafka.confluent_config(),
            "group.id": f"fraudstream-demo-reader-{os.getpid()}",
            "enable.auto.commit": False,
        }
    )
    names = [topics.transactions, topics.scores, topics.dead_letters]
    metadata = consumer.list_topics(timeout=10)
    consumer.assign(
        [
            TopicPartition(name, partition, OFFSET_END)
            for name in names
            for partition in metadata.topics[name].partitions
        ]
    )
    return consumer


def read_into(consumer: Consumer, tally: Tally, settings: Settings) -> None:
    topics = settings.kafka.topics
    for message in consumer.consume(num_messages=5000, timeout=0.2):
        if message.error() is not None:
            continue
        topic, value = message.topic(), message.value() or b""
        if topic == topics.transactions:
            tally.transactions += 1
            tally.produced_ids.add(
                transaction_id(value) or f"{message.partition()}:{message.offset()}"
            )
        elif topic == topics.scores:
            verdict = Verdict.model_validate_json(value)
            tally.answered_ids.add(verdict.transaction_id)
            tally.decisions[verdict.decision] += 1
            tally.latencies_ms.append(verdict.latency_ms)
            tally.models[f"{verdict.model_name} v{verdict.model_version}"] += 1
            if verdict.decision != "approve":
                tally.last_alerts = [verdict, *tally.last_alerts[:4]]
        elif topic == topics.dead_letters:
            letter = DeadLetter.model_validate_json(value)
            tally.dead_letters[letter.reason] += 1
            original = base64.b64decode(letter.original_value)
            tally.answered_ids.add(
                transaction_id(original) or f"{letter.partition}:{letter.offset}"
            )


def transaction_id(value: bytes) -> str | None:
    """The transaction_id of a message, when it has one (malformed input may not)."""
    try:
        decoded = json.loads(value)
    except ValueError:
        return None
    identifier = decoded.get("transaction_id") if isinstance(decoded, dict) else None
    return identifier if isinstance(identifier, str) else None


def render(tally: Tally, elapsed: float) -> Table:
    table = Table(title=f"fraudstream demo, {elapsed:.0f} s")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("messages on transactions", f"{tally.transactions:,}")
    table.add_row("verdicts", f"{tally.verdicts:,}")
    for decision in ("approve", "review", "block"):
        table.add_row(f"  {decision}", f"{tally.decisions[decision]:,}")
    table.add_row("dead letters", f"{sum(tally.dead_letters.values()):,}")
    for reason, count in sorted(tally.dead_letters.items()):
        table.add_row(f"  {reason}", f"{count:,}")
    table.add_row(
        "latency p50 / p99 (ms)", f"{tally.percentile(0.5):.1f} / {tally.percentile(0.99):.1f}"
    )
    table.add_row("throughput (verdicts/s)", f"{tally.verdicts / max(elapsed, 1e-9):,.0f}")
    for model, count in tally.models.items():
        table.add_row(f"model {model}", f"{count:,} verdicts")
    for alert in tally.last_alerts:
        reasons = ", ".join(reason.code for reason in alert.reasons) or "-"
        table.add_row(
            f"alert {alert.transaction_id} {alert.decision}", f"{alert.score:.2f}: {reasons}"
        )
    return table


@contextmanager
def processes(
    args: argparse.Namespace, settings: Settings
) -> Iterator[tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]]:
    logs = REPO_ROOT / ".local" / "demo"
    # The demo serves a local model folder: no registry to poll.
    env = {**os.environ, "FRAUDSTREAM_WORKER__MODEL_POLL_SECONDS": "0"}
    bin_dir = Path(sys.executable).parent
    worker = spawn(
        [str(bin_dir / "fraudstream-worker"), "--model", args.model], logs / "worker.log", env
    )
    generator: subprocess.Popen[bytes] | None = None
    try:
        deadline = time.monotonic() + 90
        while not worker_ready(settings.worker.web_port):
            if worker.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(
                    f"demo: the worker did not become ready; see {logs / 'worker.log'}"
                )
            time.sleep(0.5)
        command = [
            str(bin_dir / "fraudstream-generate"),
            "stream",
            "--rate",
            str(args.rate),
            "--duration",
            f"{args.duration:g}s",
            "--seed",
            str(int(time.time())),
        ]
        generator = spawn(command, logs / "generator.log", env)
        yield worker, generator
    finally:
        for process in (generator, worker):
            if process is not None:
                stop(process)


def send_malformed(settings: Settings) -> None:
    producer = Producer(settings.kafka.confluent_config())
    for value in MALFORMED:
        producer.produce(settings.kafka.topics.transactions, value, b"demo")
    producer.flush(10)


def main() -> int:
    args = parse_args()
    settings = Settings()
    console = Console()
    tally = Tally()
    consumer = tail_consumer(settings)
    started = time.monotonic()
    try:
        with processes(args, settings) as (worker, generator), Live(console=console) as live:
            send_malformed(settings)
            while generator.poll() is None:
                read_into(consumer, tally, settings)
                live.update(render(tally, time.monotonic() - started))
            drain_deadline = time.monotonic() + 30
            while tally.unanswered:
                if time.monotonic() > drain_deadline or worker.poll() is not None:
                    break
                read_into(consumer, tally, settings)
                live.update(render(tally, time.monotonic() - started))
    except KeyboardInterrupt:
        console.print("stopped: every process the demo started has been ended")
    finally:
        consumer.close()
    console.print(render(tally, time.monotonic() - started))
    console.print(
        "Watch alerts yourself: "
        "deploy/bin/kafka-console-consumer --topic fraud-alerts --from-beginning"
    )
    if tally.unanswered:
        console.print(
            f"[red]{tally.unanswered} transactions without a verdict or dead letter[/red]"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
