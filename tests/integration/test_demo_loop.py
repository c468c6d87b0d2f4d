"""The demo end to end, headless, on fresh topics: the closed loop as ``make demo`` runs it.

One seeded run (``python -m deploy.demo --headless --json``, two and a half minutes at 120 tx/s, a
small population, the drift at a fixed live transaction), then the checks, each against what
the run left behind rather than what the demo says about itself:

- the summary's numbers equal counts read from the topics (every transaction answered);
- issue 5: no retrain request covers only pre-drift windows, the first one comes within
  K + 1 windows of verdicts after the drift, it registered a new version in MLflow, the
  ``champion`` alias moved to it, and every verdict scored after the swap carries it.

The drift point is checked independently of the demo's plan: the standard drift introduces
merchant categories that never occur before it, so the first such transaction on the topic
must follow the planned drift time closely.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Message, TopicPartition

from stream_app.schemas import ModelUpdate, RetrainRequest
from stream_app.settings import TopicNames
from tests.integration.mlflow_server import running_mlflow_server
from tests.kafka_helpers import REPO_ROOT, delete_topics, unique_topics
from tests.processes import free_port
from tests.workers import settings_env
from training.registry import alias_history, aliases, client_for
from training.retrain.registry_runs import REQUEST_PARAM

SEED = 42
RATE = 120
DURATION = 150  # 18,000 live transactions: about 10 simulated days for 1,800 customers
FRAUD_SCALE = 3  # enough labelled fraud in a small population to train and gate on
DRIFT_AT_COUNT = 6300  # 3.5 simulated days into the live part: room for control windows
# The simulator switches worlds at the DRIFT_AT_COUNT-th legitimate row of the day it falls in;
# that day's fraud rows before the switch come on top (producers/simulator.py _due_switches),
# about 2 % of a day's rows at FRAUD_SCALE 3, more with an incident: allow a tenth of a day.
DRIFT_SLACK_SHARE_OF_DAY = 0.1
CONSECUTIVE = 3  # the demo's FRAUDSTREAM_DRIFT__CONSECUTIVE_WINDOWS
DEMO_TIMEOUT_SECONDS = 480
NEW_CATEGORIES = {"crypto_exchange", "ev_charging"}
MODEL_NAME = "fraudstream-xgb"
SWAP_SECONDS = 30  # load + validate a version, then the next batch
DEMO_SHADOW_RULE = "demo-shadow-burst-1h"  # deploy/demo/shadow.py


@dataclass(frozen=True)
class DemoRun:
    summary: dict[str, Any]
    transactions: list[dict[str, Any]]
    verdicts: list[dict[str, Any]]
    dead_letters: list[dict[str, Any]]
    labels: list[dict[str, Any]]
    requests: list[RetrainRequest]
    updates: list[tuple[ModelUpdate, datetime]]
    registry: Any  # an MlflowClient on the demo's registry, served again after the run
    output: str

    @property
    def drift_at(self) -> datetime:
        return datetime.fromisoformat(self.summary["plan"]["drift_at"])


@pytest.fixture(scope="module")
def demo(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    root = tmp_path_factory.mktemp("demo")
    topics = unique_topics("demo-loop")
    env = settings_env(kafka_bootstrap, topics, web_port=str(free_port()))
    env["FRAUDSTREAM_DRIFT__WEB_PORT"] = str(free_port())
    env["FRAUDSTREAM_MLFLOW__TRACKING_URI"] = f"http://127.0.0.1:{free_port()}"
    try:
        output = run_demo(env, root)
        with running_mlflow_server(root / "mlflow") as server:
            yield read_run(kafka_bootstrap, topics, root, server.tracking_uri, output)
    finally:
        delete_topics(kafka_bootstrap, topics)


def run_demo(env: dict[str, str], root: Path) -> str:
    command = [
        sys.executable,
        "-m",
        "deploy.demo",
        "--headless",
        "--json",
        str(root / "summary.json"),
        *("--seed", str(SEED), "--rate", str(RATE), "--duration", str(DURATION)),
        *("--fraud-scale", str(FRAUD_SCALE), "--drift-at-count", str(DRIFT_AT_COUNT)),
        *("--home", str(root / "home"), "--mlflow-dir", str(root / "mlflow")),
        *("--model", str(root / "model")),
    ]
    finished = subprocess.run(
        command,
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT_SECONDS,
        check=False,
    )
    output = finished.stdout + finished.stderr
    assert finished.returncode == 0, f"demo exited {finished.returncode}:\n{output[-6000:]}"
    return output


def read_run(
    bootstrap: str, topics: TopicNames, root: Path, tracking_uri: str, output: str
) -> DemoRun:
    def values(topic: str) -> list[dict[str, Any]]:
        return [json.loads(m.value() or b"{}") for m in read_to_end(bootstrap, topic)]

    updates = [
        (ModelUpdate.model_validate_json(m.value() or b""), kafka_time(m))
        for m in read_to_end(bootstrap, topics.model_updates)
    ]
    return DemoRun(
        summary=json.loads((root / "summary.json").read_text()),
        transactions=[_transaction(m) for m in read_to_end(bootstrap, topics.transactions)],
        verdicts=values(topics.scores),
        dead_letters=values(topics.dead_letters),
        labels=values(topics.labels),
        requests=[
            RetrainRequest.model_validate_json(m.value() or b"")
            for m in read_to_end(bootstrap, topics.retrain_requests)
        ],
        updates=updates,
        registry=client_for(tracking_uri),
        output=output,
    )


def _transaction(message: Message) -> dict[str, Any]:
    """Malformed demo messages (the dead-letter showcase) become their position only."""
    try:
        decoded = json.loads(message.value() or b"")
    except ValueError:
        decoded = None
    if not isinstance(decoded, dict) or not isinstance(decoded.get("transaction_id"), str):
        return {"transaction_id": f"{message.partition()}:{message.offset()}"}
    return decoded


def read_to_end(bootstrap: str, topic: str, timeout: float = 60.0) -> list[Message]:
    """Every message of ``topic``, up to the high watermarks taken when reading starts."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "demo-test-reader",
            "enable.auto.commit": False,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        }
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        messages: list[Message] = []
        positions = dict.fromkeys(partitions, 0)
        deadline = time.monotonic() + timeout
        while any(positions[p] < ends[p] for p in partitions):
            assert time.monotonic() < deadline, f"reading {topic}: {positions} of {ends}"
            for message in consumer.consume(num_messages=5000, timeout=0.5):
                if message.error() is None:
                    messages.append(message)
                    positions[message.partition() or 0] = (message.offset() or 0) + 1
        return messages
    finally:
        consumer.close()


def kafka_time(message: Message) -> datetime:
    return datetime.fromtimestamp(message.timestamp()[1] / 1000, UTC)


def stamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# ---------------------------------------------------------------------------------------------
# (a) the summary against the topics


def test_summary_counts_equal_the_topics(demo: DemoRun) -> None:
    summary = demo.summary
    decisions: dict[str, int] = {}
    for verdict in demo.verdicts:
        decisions[verdict["decision"]] = decisions.get(verdict["decision"], 0) + 1
    assert summary["transactions"] == len(demo.transactions)
    assert summary["verdicts"] == len(demo.verdicts)
    assert summary["decisions"] == decisions
    assert sum(summary["dead_letters"].values()) == len(demo.dead_letters) == 3
    assert len(summary["retrain_requests"]) == len(demo.requests)
    assert summary["promotions"] == len(demo.updates)
    assert summary["labels"] == len({label["transaction_id"] for label in demo.labels})
    assert summary["verdicts_by_version"] == count_by(demo.verdicts, "model_version")


def test_every_transaction_has_a_verdict_or_a_dead_letter(demo: DemoRun) -> None:
    produced = {transaction["transaction_id"] for transaction in demo.transactions}
    answered = {verdict["transaction_id"] for verdict in demo.verdicts}
    answered |= {f"{letter['partition']}:{letter['offset']}" for letter in demo.dead_letters}
    answered.add("demo-bad")  # the malformed message that has an id, dead-lettered
    assert produced - answered == set()
    assert demo.summary["unanswered"] == 0


def test_precision_and_recall_are_those_of_the_labelled_verdicts(demo: DemoRun) -> None:
    truth = {label["transaction_id"]: bool(label["is_fraud"]) for label in demo.labels}
    pairs = [
        (verdict["decision"] != "approve", truth[verdict["transaction_id"]])
        for verdict in demo.verdicts
        if verdict["transaction_id"] in truth
    ]
    hits = sum(flag and fraud for flag, fraud in pairs)
    quality = demo.summary["quality"]
    assert quality["labelled_verdicts"] == len(pairs)
    assert quality["true_positives"] == hits
    assert quality["precision"] == round(hits / sum(flag for flag, _ in pairs), 4)
    assert quality["recall"] == round(hits / sum(fraud for _, fraud in pairs), 4)


def test_shadow_rule_hits_and_precision_are_those_of_the_topics(demo: DemoRun) -> None:
    """Issue 14: the demo put its shadow rule with ``fraudstream-rules put``, the worker applied
    it (verdicts list its hits), and the summary's hits and precision are the topics' join."""
    truth = {label["transaction_id"]: bool(label["is_fraud"]) for label in demo.labels}
    hits: dict[str, set[str]] = {}
    for verdict in demo.verdicts:
        for rule_id in verdict.get("shadow_rule_hits", []):
            hits.setdefault(rule_id, set()).add(verdict["transaction_id"])
    assert hits.get(DEMO_SHADOW_RULE), "the demo's shadow rule never fired"
    for rule_id, transactions in hits.items():
        labelled = [truth[tid] for tid in transactions if tid in truth]
        shown = demo.summary["shadow_rules"][rule_id]
        assert (shown["hits"], shown["labelled_hits"]) == (len(transactions), len(labelled))
        assert shown["frauds"] == sum(labelled)
        expected = round(sum(labelled) / len(labelled), 4) if labelled else None
        assert shown["precision"] == expected
    assert {v["rules_version"] for v in demo.verdicts} != {None}


# ---------------------------------------------------------------------------------------------
# (b) issue 5: drift -> one retrain request -> new version -> promotion -> served


def test_the_drift_starts_where_it_was_seeded(demo: DemoRun) -> None:
    stamps = [
        stamp(t["timestamp"])
        for t in demo.transactions
        if t.get("merchant_category") in NEW_CATEGORIES
    ]
    before = [
        s
        for s in (stamp(t["timestamp"]) for t in demo.transactions if "timestamp" in t)
        if s < demo.drift_at
    ]
    assert stamps, "the drifted world's new categories never appeared"
    assert demo.drift_at <= min(stamps) <= demo.drift_at + timedelta(hours=2)
    # The seeded position: about DRIFT_AT_COUNT - 1 live transactions come before it, plus the
    # fraud rows of the drift's day that precede the switch.
    plan = demo.summary["plan"]
    live_from = stamp(plan["live_from"])
    slack = DRIFT_SLACK_SHARE_OF_DAY * plan["transactions_per_simulated_day"]
    assert abs(sum(live_from <= s for s in before) - (DRIFT_AT_COUNT - 1)) <= slack


def test_no_retrain_request_before_the_drift(demo: DemoRun) -> None:
    windows = demo.summary["drift"]["windows"]
    control = [w for w in windows if stamp(w["end"]) < demo.drift_at]
    assert control, "no window was checked before the drift: the control part is empty"
    assert demo.requests, "the drift raised no retrain request"
    assert all(request.window_end >= demo.drift_at for request in demo.requests)


def test_the_request_follows_the_drift_within_the_expected_windows(demo: DemoRun) -> None:
    request = demo.requests[0]
    window_rows = demo.summary["plan"]["window_rows"]
    after_drift = [
        v for v in demo.verdicts if demo.drift_at <= stamp(v["event_time"]) <= request.window_end
    ]
    assert 0 < len(after_drift) <= (CONSECUTIVE + 1) * window_rows
    assert len(demo.requests) == 1  # the cooldown holds every later drifted window back


def test_the_retrained_version_is_registered_promoted_and_served(demo: DemoRun) -> None:
    request = demo.requests[0]
    (update, announced) = demo.updates[0]
    baseline = first(demo.verdicts)["model_version"]
    client = demo.registry
    new = update.model_version
    assert int(new) > int(baseline)
    assert aliases(client, MODEL_NAME)["champion"] == new
    moves = [move for move in alias_history(client, MODEL_NAME) if move.alias == "champion"]
    assert (moves[-1].version, moves[-1].previous) == (new, baseline)
    run = client.get_run(update.run_id)
    assert run.data.params[REQUEST_PARAM] == request.request_id
    alias_moved = stamp(moves[-1].at)
    assert alias_moved > stamp(demo.summary["retrain_requests"][0]["published"])
    served_after_swap(demo.verdicts, new, alias_moved, announced)


def served_after_swap(
    verdicts: list[dict[str, Any]], new: str, alias_moved: datetime, announced: datetime
) -> None:
    """The worker switches once: from its first verdict by the new version on, every verdict
    carries it, and that first verdict comes after the alias moved and soon after the
    announcement (the worker also polls the alias, so it may beat the message)."""
    ordered = sorted(verdicts, key=lambda v: stamp(v["scored_at"]))
    switch = next(i for i, v in enumerate(ordered) if v["model_version"] == new)
    assert {v["model_version"] for v in ordered[switch:]} == {new}
    first_new = stamp(ordered[switch]["scored_at"])
    assert alias_moved <= first_new <= announced + timedelta(seconds=SWAP_SECONDS)
    assert len(ordered) - switch > 100


def first(verdicts: list[dict[str, Any]]) -> dict[str, Any]:
    return min(verdicts, key=lambda v: stamp(v["scored_at"]))


def count_by(rows: list[dict[str, Any]], key: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in rows:
        counts[str(row[key])] = counts.get(str(row[key]), 0) + 1
    return counts
