"""A real worker's log and /metrics carry no customer data: labels from fixed vocabularies, and
no amount, location or device in any log line, for good and bad input alike."""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from stream_app.settings import TopicNames
from tests.integration.worker_helpers import metric, produce, started_worker
from tests.kafka_helpers import wait_until
from tests.unit.test_privacy import (
    bad_messages_carrying,
    label_problems,
    leaks,
    private_transactions,
)
from tests.workers import WorkerFactory, WorkerProcess


def exposition(worker: WorkerProcess) -> str:
    with urllib.request.urlopen(f"{worker.url}/metrics", timeout=5) as response:  # noqa: S310
        return str(response.read().decode())


def test_the_worker_log_and_metrics_carry_no_customer_data(
    kafka_bootstrap: str, topics: TopicNames, worker_factory: WorkerFactory, trained_model_dir: Path
) -> None:
    worker = started_worker(worker_factory, topics, trained_model_dir, log_level="DEBUG")
    transactions = private_transactions(200, datetime.now(UTC))
    bad = [value for txn in transactions[:10] for value in bad_messages_carrying(txn)]
    messages = [(t.customer_id.encode(), t.to_bytes()) for t in transactions]
    messages += [(b"bad", value) for value in bad]
    produce(kafka_bootstrap, topics.transactions, messages)
    # Labels too: half without a merchant (rejected, counted by reason), and one the label
    # reader must refuse that carries a customer's amount and device.
    labels: list[dict[str, object]] = [
        {
            "transaction_id": t.transaction_id,
            "is_fraud": True,
            "labeled_at": t.timestamp.isoformat(),
        }
        | ({"merchant_id": t.merchant_id} if index % 2 else {})
        for index, t in enumerate(transactions[:20])
    ]
    first = transactions[0]
    labels.append({"is_fraud": "maybe", "device_id": first.device_id, "amount": first.amount})
    produce(
        kafka_bootstrap, topics.labels, [(None, json.dumps(label).encode()) for label in labels]
    )

    def everything_handled() -> bool:
        handled = metric(worker, "fraudstream_transactions_scored_total") + metric(
            worker, "fraudstream_dead_letters_total"
        )
        return handled >= len(messages)

    wait_until(everything_handled, timeout=120, what="every message scored or dead-lettered")
    refused = 'fraudstream_labels_rejected_total{reason="schema_violation"}'
    wait_until(
        lambda: (
            metric(worker, "fraudstream_labels_applied_total") >= 10
            and metric(worker, refused) == 1
        ),
        timeout=60,
        what="labels applied and the bad one refused",
    )

    name, version = (
        json.loads((trained_model_dir / "metadata.json").read_text())[key]
        for key in ("name", "version")
    )
    families = text_string_to_metric_families(exposition(worker))
    assert label_problems(families, {name, version}) == []
    log_text = worker.log_path.read_text(errors="replace")
    assert "DEBUG" in log_text, "the check read a verbose log"
    assert leaks(log_text, transactions) == []
