"""Worker state on a real broker: customers survive a restart, labels feed merchant risk."""

from __future__ import annotations

import uuid
from collections.abc import Hashable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from confluent_kafka import Producer

from producers.simulator import SimulatorConfig, generate_history
from stream_app.features import CUSTOMER_FEATURES, FEATURE_NAMES, offline_features
from stream_app.schemas import Label, Transaction, Verdict
from stream_app.settings import TopicNames
from stream_app.state import encode_key
from tests.integration.worker_helpers import metric, produce, started_worker
from tests.kafka_helpers import (
    consume_all,
    create_topics,
    delete_topics,
    unique_topics,
    wait_until,
)
from tests.workers import WorkerFactory


def payment(txn_id: str, customer: str, amount: float, at: datetime, merchant: str) -> Transaction:
    return Transaction(
        transaction_id=txn_id,
        customer_id=customer,
        amount=amount,
        merchant_category="grocery",
        transaction_type="pos",
        device_id=f"dev-{customer}",
        geo_location="US-CA",
        timestamp=at,
        merchant_id=merchant,
        currency="USD",
    )


def send(bootstrap: str, topic: str, transactions: list[Transaction]) -> None:
    produce(bootstrap, topic, [(t.customer_id.encode(), t.to_bytes()) for t in transactions])


def verdicts(
    bootstrap: str, topics: TopicNames, count: int, partitions: int = 3
) -> dict[str, Verdict]:
    messages = consume_all(
        bootstrap, topics.scores, lambda m: len(m) >= count, timeout=120, partitions=partitions
    )
    parsed = [Verdict.model_validate_json(m.value() or b"") for m in messages]
    assert len(parsed) == count, "every transaction scored exactly once"
    return {v.transaction_id: v for v in parsed}


def test_customer_state_survives_a_restart(
    kafka_bootstrap: str, topics: TopicNames, worker_factory: WorkerFactory, trained_model_dir: Path
) -> None:
    app_id = f"test-restart-{uuid.uuid4().hex[:8]}"
    start = datetime.now(UTC) - timedelta(minutes=50)
    first = [
        payment(f"r{i}", "cust-r", 10.0 * (i + 1), start + timedelta(minutes=i), "m1")
        for i in range(5)
    ]
    worker = started_worker(worker_factory, topics, trained_model_dir, app_id=app_id)
    send(kafka_bootstrap, topics.transactions, first)
    verdicts(kafka_bootstrap, topics, 5)
    assert worker.stop() == 0

    restarted = started_worker(worker_factory, topics, trained_model_dir, app_id=app_id)
    send(
        kafka_bootstrap,
        topics.transactions,
        [payment("r5", "cust-r", 5.0, start + timedelta(minutes=30), "m1")],
    )
    after = verdicts(kafka_bootstrap, topics, 6)["r5"]
    assert after.features is not None
    assert after.features["cust_txn_count_1h"] == 5  # the five before the restart, recovered
    assert after.features["cust_amount_sum_1h"] == 150.0
    assert after.features["device_first_seen"] == 0
    assert metric(restarted, "fraudstream_transactions_scored_total") == 1


def customer_history(customers: int, start: datetime) -> list[Transaction]:
    """A few payments per customer, from several devices, regions and merchants, over days."""
    regions = ["US-CA", "US-NY", "GB-LND", "DE-BE"]
    history = []
    for c in range(customers):
        for i in range(2 + c % 5):
            payment_ = payment(
                f"h{c}-{i}", f"cust-{c}", 5.0 + 7.5 * i + c, start, f"m{(c + i) % 7}"
            )
            history.append(
                payment_.model_copy(
                    update={
                        "timestamp": start + timedelta(hours=30 * i + c, minutes=i * c % 60),
                        "device_id": f"dev-{c}-{i % 2}",
                        "geo_location": regions[(c + i) % len(regions)],
                    }
                )
            )
    return sorted(history, key=lambda t: t.timestamp)


def probe_features(
    kafka_bootstrap: str, topics: TopicNames, probes: list[Transaction], already: int
) -> dict[str, list[Any]]:
    send(kafka_bootstrap, topics.transactions, probes)
    scored = verdicts(kafka_bootstrap, topics, already + len(probes))
    features = {}
    for probe in probes:
        found = scored[probe.transaction_id].features
        assert found is not None
        features[probe.customer_id] = [found[name] for name in CUSTOMER_FEATURES]
    return features


def erase(bootstrap: str, changelog: str, customer_id: str) -> None:
    """A tombstone for the customer, in the changelog partition its states are in."""
    key = encode_key(customer_id)
    states = consume_all(
        bootstrap, changelog, lambda found: any(m.key() == key for m in found), timeout=60
    )
    partition = next(m.partition() or 0 for m in states if m.key() == key)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    producer.produce(changelog, None, key, partition=partition)
    assert producer.flush(30) == 0


def test_a_customer_recovered_from_the_changelog_has_every_feature_it_had_before(
    kafka_bootstrap: str, topics: TopicNames, worker_factory: WorkerFactory, trained_model_dir: Path
) -> None:
    """The same history and probes on two workers, one restarted before the probes: every
    customer feature of every probe is equal (merchant state is per process, so not compared).
    The restarted worker read its changelog in bulk (stream_app/worker/bulk_recovery.py), and
    one customer erased by a tombstone in the changelog starts over with no history."""
    start = datetime.now(UTC) - timedelta(days=8)
    history = customer_history(24, start)
    probes = [
        payment(f"p{c}", f"cust-{c}", 42.0, start + timedelta(days=7, hours=c), "m-new")
        for c in range(24)
    ]
    straight = started_worker(worker_factory, topics, trained_model_dir)
    send(kafka_bootstrap, topics.transactions, history)
    verdicts(kafka_bootstrap, topics, len(history))
    expected = probe_features(kafka_bootstrap, topics, probes, len(history))
    assert straight.stop() == 0

    other = unique_topics("restart")
    create_topics(kafka_bootstrap, other)
    try:
        app_id = f"test-recover-{uuid.uuid4().hex[:8]}"
        first = started_worker(worker_factory, other, trained_model_dir, app_id=app_id)
        send(kafka_bootstrap, other.transactions, history)
        verdicts(kafka_bootstrap, other, len(history))
        assert first.stop() == 0
        changelog = f"{app_id}-customer-state-changelog"
        erase(kafka_bootstrap, changelog, "cust-0")

        restarted = started_worker(worker_factory, other, trained_model_dir, app_id=app_id)
        recovered = probe_features(kafka_bootstrap, other, probes, len(history))
        log = restarted.log_path.read_text()
        assert "changelog read in bulk" in log and "Faust recovers instead" not in log
    finally:
        delete_topics(kafka_bootstrap, other)

    erased = recovered.pop("cust-0")
    assert erased[CUSTOMER_FEATURES.index("cust_txn_count_30d")] == 0
    assert expected.pop("cust-0")[CUSTOMER_FEATURES.index("cust_txn_count_30d")] > 0
    assert recovered == expected


def test_labels_feed_merchant_risk(
    kafka_bootstrap: str, topics: TopicNames, worker_factory: WorkerFactory, trained_model_dir: Path
) -> None:
    worker = started_worker(worker_factory, topics, trained_model_dir)
    now = datetime.now(UTC)
    labels = [
        Label(
            transaction_id=f"old{i}",
            is_fraud=i < 3,
            labeled_at=now - timedelta(hours=2),
            merchant_id="m-risky",
        )
        for i in range(4)
    ]
    produce(
        kafka_bootstrap,
        topics.labels,
        [(label.transaction_id.encode(), label.to_bytes()) for label in labels],
    )
    wait_until(
        lambda: metric(worker, "fraudstream_labels_applied_total") == 4,
        timeout=60,
        what="the worker to fold 4 labels into merchant risk",
    )
    send(kafka_bootstrap, topics.transactions, [payment("x1", "cust-x", 99.0, now, "m-risky")])
    verdict = verdicts(kafka_bootstrap, topics, 1)["x1"]
    assert verdict.features is not None
    assert verdict.features["merchant_labels_7d"] == 4
    assert verdict.features["merchant_frauds_7d"] == 3
    assert verdict.features["merchant_fraud_rate_7d"] == 0.75


def test_online_features_equal_offline_on_a_replayed_history(
    kafka_bootstrap: str, worker_factory: WorkerFactory, trained_model_dir: Path
) -> None:
    """The worker's features for a simulated history equal training's offline features.

    One partition and one worker (two workers on three partitions:
    tests/integration/test_merchant_volume.py).
    """
    topics = unique_topics("parity")
    create_topics(kafka_bootstrap, topics, partitions=1)
    try:
        config = SimulatorConfig(
            seed=17, n_customers=150, n_merchants=450, start=datetime(2026, 1, 5, tzinfo=UTC)
        )
        history, _ = generate_history(config, days=4)
        transactions = [Transaction.model_validate(row) for row in wire_rows(history)]
        single = {"FRAUDSTREAM_KAFKA__PARTITIONS": "1"}
        started_worker(worker_factory, topics, trained_model_dir, extra_env=single)
        send(kafka_bootstrap, topics.transactions, transactions)
        online = verdicts(kafka_bootstrap, topics, len(transactions), partitions=1)
        expected = offline_features(history)
        for row, transaction in zip(expected.itertuples(index=False), transactions, strict=True):
            features = online[transaction.transaction_id].features
            assert features is not None
            assert [features[name] for name in FEATURE_NAMES] == list(row), transaction
    finally:
        delete_topics(kafka_bootstrap, topics)


def wire_rows(history: pd.DataFrame) -> list[dict[Hashable, Any]]:
    columns = [name for name in Transaction.model_fields if name in history.columns]
    return history[columns].to_dict(orient="records")
