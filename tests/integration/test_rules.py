"""Rules as data on the real broker: produced with the real console producer, applied by running
workers between batches, without a restart."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

from stream_app.rules import RuleRejection, RuleSet, parse_rule
from stream_app.rules.model import Rule
from stream_app.schemas import DeadLetter, Verdict
from stream_app.settings import TopicNames
from stream_app.worker.predict_routing import partition_for
from tests.integration.worker_helpers import metric, produce, started_worker
from tests.kafka_helpers import REPO_ROOT, wait_until
from tests.workers import WorkerFactory, WorkerProcess

CONSOLE_PRODUCER = REPO_ROOT / "deploy/bin/kafka-console-producer"
PARTITIONS = 3


def console_produce(bootstrap: str, topic: str, key: str, value: str) -> None:
    """One keyed message through the real kafka-console-producer; the value NULL is a
    tombstone (null.marker)."""
    produced = subprocess.run(
        [
            str(CONSOLE_PRODUCER),
            *("--bootstrap-server", bootstrap, "--topic", topic),
            *("--property", "parse.key=true", "--property", "key.separator=|"),
            *("--property", "null.marker=NULL"),
        ],
        input=f"{key}|{value}\n",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert produced.returncode == 0, produced.stderr


class TopicTail:
    """Reads a topic from the beginning as the test goes, keeping everything it has seen."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"test-tail-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
            }
        )
        self.consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        self.values: list[bytes] = []

    def first(self, matches: Callable[[bytes], bool], timeout: float, what: str) -> bytes:
        deadline = time.monotonic() + timeout
        while True:
            found = next((value for value in self.values if matches(value)), None)
            if found is not None:
                return found
            assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
            for message in self.consumer.consume(num_messages=500, timeout=0.5):
                if message.error() is None:
                    self.values.append(message.value() or b"")

    def close(self) -> None:
        self.consumer.close()


class Scores(TopicTail):
    def verdict(self, transaction_id: str, timeout: float = 60) -> Verdict:
        value = self.first(
            lambda raw: json.loads(raw)["transaction_id"] == transaction_id,
            timeout,
            f"the verdict of {transaction_id}",
        )
        return Verdict.model_validate_json(value)


def transaction(customer: str, device: str, minutes: int) -> tuple[str, bytes, bytes]:
    """An ordinary small purchase (id, key, value) from ``device``."""
    transaction_id = f"t-{uuid.uuid4().hex[:10]}"
    moment = datetime.now(UTC) - timedelta(hours=1) + timedelta(minutes=minutes)
    value = {
        "transaction_id": transaction_id,
        "customer_id": customer,
        "amount": 24.5,
        "merchant_category": "grocery",
        "transaction_type": "pos",
        "device_id": device,
        "geo_location": "IN-MH",
        "timestamp": moment.isoformat(),
    }
    return transaction_id, customer.encode(), json.dumps(value).encode()


def send(
    bootstrap: str, topics: TopicNames, scores: Scores, txn: tuple[str, bytes, bytes]
) -> Verdict:
    transaction_id, key, value = txn
    produce(bootstrap, topics.transactions, [(key, value)])
    return scores.verdict(transaction_id)


def rule_codes(verdict: Verdict) -> list[str]:
    return [reason.code for reason in verdict.reasons if reason.code.startswith("rule:")]


def deny_device(rule_id: str, device: str) -> tuple[str, Rule]:
    text = json.dumps(
        {
            "schema_version": 1,
            "rule_id": rule_id,
            "kind": "deny_list",
            "field": "device_id",
            "values": [device],
            "action": "block",
            "mode": "active",
            "description": "seen in a takeover",
        }
    )
    rule = parse_rule(rule_id.encode(), text.encode())
    assert not isinstance(rule, RuleRejection), rule
    return text, rule


def wait_for_metric(worker: WorkerProcess, name: str, value: float, timeout: float = 60) -> None:
    wait_until(lambda: metric(worker, name) == value, timeout, f"{name} == {value}")


def test_a_rule_from_the_console_producer_blocks_then_is_deleted_and_a_bad_rule_is_dead_lettered(
    kafka_bootstrap: str, topics: TopicNames, worker_factory: WorkerFactory, trained_model_dir: Path
) -> None:
    worker = started_worker(worker_factory, topics, trained_model_dir)
    pid = worker.process.pid
    scores = Scores(kafka_bootstrap, topics.scores)
    letters = TopicTail(kafka_bootstrap, topics.dead_letters)
    device, customer = f"dev-evil-{uuid.uuid4().hex[:6]}", "c-rules-1"
    try:
        before = send(kafka_bootstrap, topics, scores, transaction(customer, device, 0))
        assert (before.decision, rule_codes(before)) == ("approve", [])
        assert before.rules_version == RuleSet().version

        text, rule = deny_device("deny-dev-evil", device)
        console_produce(kafka_bootstrap, topics.rules, rule.rule_id, text)
        wait_for_metric(worker, "fraudstream_rules_applied_total", 1)
        blocked = send(kafka_bootstrap, topics, scores, transaction(customer, device, 1))
        assert blocked.decision == "block"
        assert rule_codes(blocked) == ["rule:deny-dev-evil"]
        assert blocked.rules_version == RuleSet((rule,)).version != before.rules_version

        console_produce(kafka_bootstrap, topics.rules, rule.rule_id, "NULL")  # tombstone
        wait_for_metric(worker, "fraudstream_rules_applied_total", 2)
        after = send(kafka_bootstrap, topics, scores, transaction(customer, device, 2))
        assert (after.decision, rule_codes(after)) == ("approve", [])
        assert after.rules_version == RuleSet().version

        console_produce(kafka_bootstrap, topics.rules, "bad-rule", '{"kind": "deny_list", "x"')
        raw = letters.first(
            lambda value: json.loads(value)["source_topic"] == topics.rules, 60, "a rule DLQ"
        )
        letter = DeadLetter.model_validate_json(raw)
        assert (letter.reason, letter.key) == ("invalid_json", "bad-rule")
        assert metric(worker, 'fraudstream_rules_rejected_total{reason="invalid_json"}') == 1
        still = send(kafka_bootstrap, topics, scores, transaction(customer, device, 3))
        assert still.rules_version == RuleSet().version  # the last good rule set serves on
        assert metric(worker, "fraudstream_rules_applied_total") == 2
    finally:
        scores.close()
        letters.close()
    assert worker.process.poll() is None and worker.process.pid == pid, worker.log_tail()
    assert "Restarting" not in worker.log_path.read_text(errors="replace")


def owned_partitions(worker: WorkerProcess) -> list[int]:
    with urllib.request.urlopen(f"{worker.url}/health", timeout=5) as response:  # noqa: S310
        owned: list[int] = json.load(response)["transactions_partitions"]
        return owned


def test_two_workers_both_apply_a_rule_to_their_own_customers(
    kafka_bootstrap: str, topics: TopicNames, worker_factory: WorkerFactory, trained_model_dir: Path
) -> None:
    app_id = f"test-rules-{uuid.uuid4().hex[:8]}"
    workers = [
        started_worker(worker_factory, topics, trained_model_dir, app_id=app_id) for _ in range(2)
    ]
    wait_until(
        lambda: (
            all(owned_partitions(w) for w in workers)
            and sorted(p for w in workers for p in owned_partitions(w)) == list(range(PARTITIONS))
        ),
        timeout=120,
        what="the two workers splitting the partitions",
    )
    owner = {p: index for index, w in enumerate(workers) for p in owned_partitions(w)}
    device = f"dev-shared-{uuid.uuid4().hex[:6]}"
    customers = [f"c-two-{index}" for index in range(12)]
    assert {owner[partition_for(c, PARTITIONS)] for c in customers} == {0, 1}

    text, rule = deny_device("deny-shared", device)
    console_produce(kafka_bootstrap, topics.rules, rule.rule_id, text)
    for worker in workers:
        wait_for_metric(worker, "fraudstream_rules_applied_total", 1)
    scores = Scores(kafka_bootstrap, topics.scores)
    try:
        txns = [transaction(customer, device, index) for index, customer in enumerate(customers)]
        produce(kafka_bootstrap, topics.transactions, [(key, value) for _, key, value in txns])
        verdicts = [scores.verdict(transaction_id) for transaction_id, _, _ in txns]
    finally:
        scores.close()
    assert [(v.decision, rule_codes(v)) for v in verdicts] == [("block", ["rule:deny-shared"])] * 12
    assert {v.rules_version for v in verdicts} == {RuleSet((rule,)).version}
    blocks = [metric(w, 'fraudstream_decisions_total{decision="block"}') for w in workers]
    assert all(count > 0 for count in blocks) and sum(blocks) == 12, blocks
