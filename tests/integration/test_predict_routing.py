"""``POST /predict`` with two real workers: whichever worker receives a request, the owner of the
customer's partition answers it from that customer's state; an unreachable owner is a 503."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from stream_app.kafka import producer_config
from stream_app.schemas import Transaction
from stream_app.settings import KafkaSettings, TopicNames
from stream_app.worker.predict_routing import partition_for
from tests.integration.fault_helpers import kill_hard, simulated_transactions
from tests.integration.worker_helpers import health, metric, post, ready
from tests.kafka_helpers import wait_until
from tests.workers import WorkerFactory, WorkerProcess

PARTITIONS = 3
# Fields that differ between two scorings of one request by design: when and how fast.
TIMING_FIELDS = ("scored_at", "latency_ms")


def produce_with_the_projects_producer(
    bootstrap: str, topics: TopicNames, txns: list[Any]
) -> dict[str, int]:
    """Produce as the simulator does; returns each customer's partition as the broker put it."""
    kafka = KafkaSettings(bootstrap_servers=bootstrap, topics=topics)
    producer = Producer(producer_config(kafka, "predict-routing-test"))
    partitions: dict[str, int] = {}
    failures: list[str] = []

    def on_delivery(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            failures.append(str(error))
        else:
            key, partition = message.key(), message.partition()
            assert key is not None and partition is not None
            partitions[key.decode()] = partition

    for txn in txns:
        producer.produce(
            topics.transactions, txn.to_bytes(), txn.customer_id.encode(), on_delivery=on_delivery
        )
    assert producer.flush(30) == 0
    assert failures == []
    return partitions


def two_ready_workers(
    worker_factory: WorkerFactory, topics: TopicNames, model: Path
) -> tuple[WorkerProcess, WorkerProcess]:
    group = {"app_id": "predict-routing-group", "session_timeout_seconds": "20"}
    first = worker_factory(topics, model, **group)
    second = worker_factory(topics, model, **group)

    def both_own_a_share() -> bool:
        shares = [health(worker).get("transactions_partitions", []) for worker in (first, second)]
        return ready(first) and ready(second) and sorted(map(len, shares)) == [1, 2]

    wait_until(both_own_a_share, timeout=120, what="two workers sharing the partitions")
    return first, second


def next_request(history: list[Transaction]) -> bytes:
    """A new transaction one minute after the customer's last one."""
    last = history[-1]
    update = {
        "transaction_id": f"{last.transaction_id}-next",
        "timestamp": last.timestamp + timedelta(minutes=1),
    }
    return last.model_copy(update=update).to_bytes()


def without_timing(answer: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in answer.items() if key not in TIMING_FIELDS}


def test_either_worker_answers_predict_with_the_owners_state(
    kafka_bootstrap: str, topics: TopicNames, worker_factory: WorkerFactory, trained_model_dir: Path
) -> None:
    first, second = two_ready_workers(worker_factory, topics, trained_model_dir)
    txns = simulated_transactions(900, seed=31, customers=60)
    partitions = produce_with_the_projects_producer(kafka_bootstrap, topics, txns)
    # The broker put every customer where /predict's routing looks for it.
    assert partitions == {cid: partition_for(cid, PARTITIONS) for cid in partitions}

    def all_scored() -> bool:
        scored = [metric(w, "fraudstream_transactions_scored_total") for w in (first, second)]
        return sum(scored) == len(txns)

    wait_until(all_scored, timeout=120, what="every transaction scored by the two workers")

    histories: dict[str, list[Transaction]] = defaultdict(list)
    for txn in txns:
        histories[txn.customer_id].append(txn)
    customers = sorted(histories)[:24]
    owners = {partition_for(cid, PARTITIONS) for cid in customers}
    assert len(owners) > 1, "the sample has customers of both workers"
    for customer in customers:
        request = next_request(histories[customer])
        answers = [post(f"{worker.url}/predict", request) for worker in (first, second)]
        assert [status for status, _ in answers] == [200, 200], answers
        (_, from_first), (_, from_second) = answers
        assert without_timing(from_first) == without_timing(from_second)
        # scored against the customer's history, not an empty one
        assert from_first["features"]["cust_txn_count_24h"] >= 1

    forwarded = sum(
        metric(w, 'fraudstream_predict_requests_total{result="forwarded"}') for w in (first, second)
    )
    assert forwarded == len(customers)  # each request was forwarded by exactly one of the two


def test_predict_for_a_customer_of_an_unreachable_owner_is_a_503_with_the_reason(
    kafka_bootstrap: str, topics: TopicNames, worker_factory: WorkerFactory, trained_model_dir: Path
) -> None:
    first, second = two_ready_workers(worker_factory, topics, trained_model_dir)
    txns = simulated_transactions(200, seed=32, customers=40)
    owned_by_second = {
        txn.customer_id: txn
        for txn in txns
        if partition_for(txn.customer_id, PARTITIONS)
        not in health(first)["transactions_partitions"]
    }
    assert owned_by_second
    kill_hard(second)  # the group still lists it as the owner until its session times out
    request = next(iter(owned_by_second.values())).to_bytes()
    status, body = post(f"{first.url}/predict", request)
    assert status == 503
    assert body["reason"] == "owner_unreachable"
    assert second.url.removeprefix("http://") in body["error"]
