"""The walking skeleton end to end: transactions in, verdicts and dead letters out, real broker."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections import Counter
from pathlib import Path

from stream_app.schemas import DeadLetter, Verdict
from stream_app.settings import TopicNames
from stream_app.worker.openapi import openapi_document
from tests.factories import ORIGINAL_API_REQUEST, simulated_transactions
from tests.integration.worker_helpers import metric, post, produce, started_worker
from tests.kafka_helpers import REPO_ROOT, consume_all
from tests.workers import WorkerFactory

# Ten bad messages, one per way input goes wrong, with the reason each must be dead-lettered for.
BAD_MESSAGES: list[tuple[bytes, str]] = [
    (b"not json", "invalid_json"),
    (b'{"transaction_id": "x",', "invalid_json"),
    (b"\xc3\x28\xa0\xa1", "invalid_encoding"),
    (b"[]", "schema_violation"),
    (b"{}", "schema_violation"),
    (ORIGINAL_API_REQUEST.replace(b"1500", b"-3"), "schema_violation"),
    (ORIGINAL_API_REQUEST.replace(b"1500", b'"many"'), "schema_violation"),
    (ORIGINAL_API_REQUEST.replace(b'"dev123"', b"null"), "schema_violation"),
    (ORIGINAL_API_REQUEST.replace(b"2024-11-01", b"1999-11-01"), "timestamp_out_of_range"),
    (b"{" + b" " * 70_000 + b"}", "oversized"),
]


def test_every_transaction_gets_one_verdict_and_bad_input_is_dead_lettered(
    kafka_bootstrap: str, topics: TopicNames, worker_factory: WorkerFactory, trained_model_dir: Path
) -> None:
    worker = started_worker(worker_factory, topics, trained_model_dir)
    transactions = simulated_transactions(1000)
    messages: list[tuple[bytes | None, bytes]] = [
        (t.customer_id.encode(), t.to_bytes()) for t in transactions
    ]
    for index, (value, _) in enumerate(BAD_MESSAGES):  # spread them through the stream
        messages.insert(index * 97, (b"bad", value))
    produce(kafka_bootstrap, topics.transactions, messages)

    raw_verdicts = consume_all(
        kafka_bootstrap, topics.scores, lambda m: len(m) >= 1000, timeout=120
    )
    verdicts = [Verdict.model_validate_json(m.value() or b"") for m in raw_verdicts]
    assert len(verdicts) == 1000
    assert {v.transaction_id for v in verdicts} == {t.transaction_id for t in transactions}

    raw_letters = consume_all(
        kafka_bootstrap, topics.dead_letters, lambda m: len(m) >= 10, timeout=60
    )
    letters = [DeadLetter.model_validate_json(m.value() or b"") for m in raw_letters]
    assert Counter(letter.reason for letter in letters) == Counter(r for _, r in BAD_MESSAGES)
    assert all(letter.source_topic == topics.transactions for letter in letters)

    flagged = {v.transaction_id for v in verdicts if v.decision != "approve"}
    assert flagged, "a seeded stream with fraud scenarios must raise some alerts"
    raw_alerts = consume_all(
        kafka_bootstrap, topics.alerts, lambda m: len(m) >= len(flagged), timeout=60
    )
    alert_ids = [Verdict.model_validate_json(m.value() or b"").transaction_id for m in raw_alerts]
    assert sorted(alert_ids) == sorted(flagged)

    assert metric(worker, "fraudstream_transactions_scored_total") == 1000
    assert metric(worker, "fraudstream_dead_letters_total") == 10


def test_console_producer_in_console_consumer_out(
    kafka_bootstrap: str, topics: TopicNames, worker_factory: WorkerFactory, trained_model_dir: Path
) -> None:
    started_worker(worker_factory, topics, trained_model_dir)
    subprocess.run(
        [
            str(REPO_ROOT / "deploy/bin/kafka-console-producer"),
            "--bootstrap-server",
            kafka_bootstrap,
            "--topic",
            topics.transactions,
            "--property",
            "parse.key=true",
            "--property",
            "key.separator=|",
        ],
        input=b"c1|" + ORIGINAL_API_REQUEST + b"\n",
        check=True,
        timeout=60,
    )
    consumed = subprocess.run(
        [
            str(REPO_ROOT / "deploy/bin/kafka-console-consumer"),
            "--bootstrap-server",
            kafka_bootstrap,
            "--topic",
            topics.scores,
            "--from-beginning",
            "--max-messages",
            "1",
            "--timeout-ms",
            "90000",
        ],
        capture_output=True,
        check=True,
        timeout=120,
    )
    verdict = Verdict.model_validate_json(consumed.stdout.strip())
    assert verdict.transaction_id == "t1"
    assert verdict.customer_id == "c1"
    assert verdict.decision in {"approve", "review", "block"}
    assert verdict.features is not None
    assert verdict.features["amount"] == 1500.0


def test_predict_answers_the_original_api_request(
    kafka_bootstrap: str, topics: TopicNames, worker_factory: WorkerFactory, trained_model_dir: Path
) -> None:
    worker = started_worker(worker_factory, topics, trained_model_dir)
    status, body = post(f"{worker.url}/predict", ORIGINAL_API_REQUEST)
    assert status == 200
    verdict = Verdict.model_validate(body)
    assert (verdict.transaction_id, verdict.customer_id) == ("t1", "c1")
    metadata = json.loads((trained_model_dir / "metadata.json").read_text())
    assert verdict.model_version == metadata["version"]
    assert verdict.features is not None
    assert verdict.features["amount"] == 1500.0

    status, body = post(f"{worker.url}/predict", ORIGINAL_API_REQUEST.replace(b"1500", b'"x"'))
    assert status == 422
    assert body["reason"] == "schema_violation"
    assert "amount" in str(body["error"])
    status, body = post(f"{worker.url}/predict", b"{nope")
    assert (status, body["reason"]) == (400, "invalid_json")
    status, body = post(f"{worker.url}/predict", b"{" + b" " * 70_000 + b"}")
    assert (status, body["reason"]) == (413, "oversized")
    # a request is not a transaction that happened: the stream's counters do not move
    assert metric(worker, "fraudstream_transactions_scored_total") == 0
    assert metric(worker, "fraudstream_predict_requests_total") == 4


def test_the_worker_serves_its_openapi_document_and_docs_page(
    kafka_bootstrap: str, topics: TopicNames, worker_factory: WorkerFactory, trained_model_dir: Path
) -> None:
    worker = started_worker(worker_factory, topics, trained_model_dir)
    with urllib.request.urlopen(f"{worker.url}/openapi.json", timeout=10) as response:  # noqa: S310
        served = json.load(response)
    assert served == json.loads(json.dumps(openapi_document()))
    with urllib.request.urlopen(f"{worker.url}/docs", timeout=10) as response:  # noqa: S310
        assert response.headers["Content-Type"].startswith("text/html")
        assert "href='/openapi.json'" in response.read().decode()
    # what /predict really answers has exactly the documented fields (optional ones may be left out)
    schemas = served["components"]["schemas"]
    status, body = post(f"{worker.url}/predict", ORIGINAL_API_REQUEST)
    assert status == 200
    assert set(schemas["Verdict"]["required"]) <= set(body) <= set(schemas["Verdict"]["properties"])
    status, body = post(f"{worker.url}/predict", b"{nope")
    assert status == 400
    assert set(body) == set(schemas["Rejection"]["properties"])
