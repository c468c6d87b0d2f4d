"""Bad input never crashes the worker and is never dropped: real broker, real worker process.

The hand-written corpus (tests/malformed_corpus.py) and hypothesis-generated mutations of valid
transactions (tests/malformed_generator.py) go to the transactions topic, mixed with valid
traffic, and to ``POST /predict``. Every bad message must come out of the dead-letter topic at
its own partition and offset with the reason it was made with, every valid one must get exactly
one verdict, the counters must equal the expected counts exactly, and the worker must stay up.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args
from urllib.parse import urlsplit

import pytest
from confluent_kafka import KafkaError, Message, Producer

from stream_app.schemas import DeadLetter, Decision
from stream_app.settings import TopicNames
from stream_app.validation import DeadLetterReason
from tests.factories import simulated_transactions
from tests.integration.worker_helpers import ready, started_worker
from tests.kafka_helpers import consume_all, wait_until
from tests.malformed_corpus import STATUS_BY_REASON, corpus
from tests.malformed_generator import (
    GeneratedCase,
    collect_templates,
    render_requests,
    render_stream,
)
from tests.workers import WorkerFactory, WorkerProcess

log = logging.getLogger(__name__)

REASONS: tuple[str, ...] = get_args(DeadLetterReason)
Message_ = tuple[bytes | None, bytes | None]  # key, value
Position = tuple[int, int]  # partition, offset


# ---------------------------------------------------------------------------------------------
# Helpers: produce with positions, read outputs, read counters, POST in a pool


def produce_recording_positions(
    bootstrap: str, topic: str, messages: Sequence[Message_]
) -> list[Position]:
    """Produce in order (idempotent: no producer-side duplicates) and return where each landed."""
    producer = Producer(
        {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 20}
    )
    positions: list[Position | None] = [None] * len(messages)

    def delivered(index: int) -> Any:
        def report(error: KafkaError | None, message: Message) -> None:
            partition, offset = message.partition(), message.offset()
            assert error is None and partition is not None and offset is not None, error
            positions[index] = (partition, offset)

        return report

    for index, (key, value) in enumerate(messages):
        producer.produce(topic, value, key, on_delivery=delivered(index))
        producer.poll(0)
    assert producer.flush(60) == 0
    assert all(position is not None for position in positions)
    return [position for position in positions if position is not None]


def read_verdict_ids(bootstrap: str, topic: str, expected: int, timeout: float) -> list[str]:
    messages = consume_all(bootstrap, topic, lambda m: len(m) >= expected, timeout=timeout)
    return [json.loads(m.value() or b"")["transaction_id"] for m in messages]


def read_dead_letters(
    bootstrap: str, topic: str, expected: int, timeout: float
) -> list[DeadLetter]:
    messages = consume_all(bootstrap, topic, lambda m: len(m) >= expected, timeout=timeout)
    return [DeadLetter.model_validate_json(m.value() or b"") for m in messages]


def counters(worker: WorkerProcess) -> dict[str, float]:
    """Every sample on /metrics, keyed as written: ``name{label="value"}``."""
    status, body = request(worker.url, "GET", "/metrics", b"")
    assert status == 200
    samples = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def dead_letter_counts(worker: WorkerProcess, total: int = 0, timeout: float = 30) -> Counter[str]:
    """Dead letters by reason, once they add up to at least ``total`` (they are counted when
    the batch is scored; waiting keeps this true if counting ever moves after publishing)."""

    def by_reason() -> Counter[str]:
        samples = counters(worker)
        return Counter(
            {r: int(samples[f'fraudstream_dead_letters_total{{reason="{r}"}}']) for r in REASONS}
        )

    wait_until(lambda: by_reason().total() >= total, timeout, "dead-letter counters")
    return by_reason()


def predict_counts(worker: WorkerProcess) -> Counter[str]:
    samples = counters(worker)
    results = (*REASONS, *get_args(Decision))
    return Counter(
        {
            result: int(samples.get(f'fraudstream_predict_requests_total{{result="{result}"}}', 0))
            for result in results
        }
    )


_connections = threading.local()


def request(url: str, method: str, path: str, body: bytes) -> tuple[int, bytes]:
    """One request on this thread's keep-alive connection; reconnects once if it was closed."""
    for attempt in (1, 2):
        connection = getattr(_connections, url, None)
        if connection is None:
            address = urlsplit(url)
            connection = http.client.HTTPConnection(
                address.hostname or "", address.port, timeout=30
            )
            setattr(_connections, url, connection)
        try:
            connection.request(method, path, body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            return response.status, response.read()
        except (http.client.HTTPException, ConnectionError):
            connection.close()
            setattr(_connections, url, None)
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def post_all(url: str, bodies: Sequence[bytes]) -> list[tuple[int, dict[str, Any]]]:
    """POST every body to /predict, four keep-alive connections at a time; answers in order."""

    def post(body: bytes) -> tuple[int, dict[str, Any]]:
        status, answer = request(url, "POST", "/predict", body)
        return status, json.loads(answer)

    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(post, bodies))


def expected_status(reason: str | None) -> int:
    return 200 if reason is None else STATUS_BY_REASON[reason]


def assert_still_up(worker: WorkerProcess) -> None:
    assert worker.process.poll() is None, f"worker exited:\n{worker.log_tail()}"
    assert ready(worker), "worker no longer ready"


# ---------------------------------------------------------------------------------------------
# (a) the corpus in a stream of valid transactions


def test_corpus_in_a_valid_stream_is_dead_lettered_with_its_reasons(
    kafka_bootstrap: str, topics: TopicNames, worker_factory: WorkerFactory, trained_model_dir: Path
) -> None:
    worker = started_worker(worker_factory, topics, trained_model_dir)
    valid = [
        (t.customer_id.encode(), t.to_bytes(), t.transaction_id)
        for t in simulated_transactions(600)
    ]
    messages: list[Message_] = [(key, value) for key, value, _ in valid]
    reasons: list[str | None] = [None] * len(messages)
    valid_ids = [transaction_id for _, _, transaction_id in valid]
    bad: list[tuple[Message_, str | None, str | None]] = [
        ((b"tombstone", None), "invalid_json", None)  # a null value, as kcat -Z writes it
    ]
    for case in corpus(datetime.now(UTC)):
        if case.original is not None:  # scored first, then its copy arrives
            original_id = json.loads(case.original)["transaction_id"]
            bad.append(((case.key, case.original), None, original_id))
        bad.append(((case.key, case.value), case.reason, None))
    for index, (message, reason, transaction_id) in enumerate(bad):  # spread through the stream
        messages.insert(index * 9, message)
        reasons.insert(index * 9, reason)
        if transaction_id is not None:
            valid_ids.append(transaction_id)
    positions = produce_recording_positions(kafka_bootstrap, topics.transactions, messages)
    expected = {p: r for p, r in zip(positions, reasons, strict=True) if r is not None}

    verdict_ids = read_verdict_ids(kafka_bootstrap, topics.scores, len(valid_ids), timeout=180)
    assert sorted(verdict_ids) == sorted(valid_ids), "each valid transaction: one verdict"
    letters = read_dead_letters(kafka_bootstrap, topics.dead_letters, len(expected), timeout=120)
    assert {(d.partition, d.offset): d.reason for d in letters} == expected
    assert len(letters) == len(expected), "one dead letter per bad message"
    sent = dict(zip(positions, messages, strict=True))
    for letter in letters:
        original = sent[(letter.partition, letter.offset)][1] or b""
        assert base64.b64decode(letter.original_value) == original

    assert_still_up(worker)
    # Counter equality takes a missing reason as zero: reasons not sent must read 0 too
    assert dead_letter_counts(worker, len(expected)) == Counter(expected.values())
    assert counters(worker)["fraudstream_transactions_scored_total"] == len(valid_ids)


# ---------------------------------------------------------------------------------------------
# (b) the corpus posted to /predict


def test_corpus_posted_to_predict_is_answered_with_its_status_and_reason(
    kafka_bootstrap: str, topics: TopicNames, worker_factory: WorkerFactory, trained_model_dir: Path
) -> None:
    worker = started_worker(worker_factory, topics, trained_model_dir)
    cases = corpus(datetime.now(UTC))
    originals = [(case.key, case.original) for case in cases if case.original is not None]
    # a duplicate is refused only once the stream has scored its original
    produce_recording_positions(kafka_bootstrap, topics.transactions, originals)
    read_verdict_ids(kafka_bootstrap, topics.scores, len(originals), timeout=120)

    answers = post_all(worker.url, [case.value for case in cases])
    for case, (status, body) in zip(cases, answers, strict=True):
        assert (case.name, status, body.get("reason")) == (case.name, case.status, case.reason)
        assert body["error"]

    assert_still_up(worker)
    assert predict_counts(worker) == Counter(case.reason for case in cases)
    assert counters(worker)["fraudstream_transactions_scored_total"] == len(originals)


# ---------------------------------------------------------------------------------------------
# (c) hypothesis-generated mutations, to the topic and to /predict


def check_generated_cases(
    count: int, bootstrap: str, topics: TopicNames, worker: WorkerProcess
) -> None:
    started = time.monotonic()
    templates = collect_templates(count)
    log.info("hypothesis generated %d cases in %.1fs", count, time.monotonic() - started)
    stream = render_stream(templates, datetime.now(UTC), "topic")
    started = time.monotonic()
    check_topic(stream, bootstrap, topics, worker, timeout=120 + count / 20)
    log.info("topic: %d cases checked in %.1fs", count, time.monotonic() - started)
    requests = render_requests(templates, datetime.now(UTC), "predict", stream)
    check_predict(requests, worker)
    assert_still_up(worker)


def check_topic(
    cases: Sequence[GeneratedCase],
    bootstrap: str,
    topics: TopicNames,
    worker: WorkerProcess,
    timeout: float,
) -> None:
    messages: list[Message_] = [(case.key, case.value) for case in cases]
    positions = produce_recording_positions(bootstrap, topics.transactions, messages)
    expected = {p: c.reason for p, c in zip(positions, cases, strict=True) if c.reason}
    valid_ids = [case.transaction_id for case in cases if case.reason is None]
    assert set(expected.values()) == set(REASONS), "every reason generated"

    verdict_ids = read_verdict_ids(bootstrap, topics.scores, len(valid_ids), timeout)
    assert sorted(verdict_ids) == sorted(valid_ids), "each valid transaction: one verdict"
    letters = read_dead_letters(bootstrap, topics.dead_letters, len(expected), timeout)
    assert len(letters) == len(expected), "one dead letter per bad message"
    assert {(d.partition, d.offset): d.reason for d in letters} == expected
    assert dead_letter_counts(worker, len(expected)) == Counter(expected.values())
    assert counters(worker)["fraudstream_transactions_scored_total"] == len(valid_ids)


def check_predict(cases: Sequence[GeneratedCase], worker: WorkerProcess) -> None:
    started = time.monotonic()
    answers = post_all(worker.url, [case.value for case in cases])
    log.info("posted %d cases to /predict in %.1fs", len(cases), time.monotonic() - started)
    wrong = [
        (case.kind, case.reason, status, body.get("reason"), case.value[:200])
        for case, (status, body) in zip(cases, answers, strict=True)
        if status != expected_status(case.reason) or body.get("reason") != case.reason
    ]
    assert wrong == []
    counts = predict_counts(worker)
    expected = Counter(case.reason for case in cases if case.reason is not None)
    assert Counter({r: counts[r] for r in REASONS}) == expected
    scored = sum(counts[decision] for decision in get_args(Decision))
    assert scored == sum(1 for case in cases if case.reason is None)


def test_a_thousand_generated_cases_on_the_topic_and_predict(
    kafka_bootstrap: str, topics: TopicNames, worker_factory: WorkerFactory, trained_model_dir: Path
) -> None:
    worker = started_worker(worker_factory, topics, trained_model_dir)
    check_generated_cases(1_000, kafka_bootstrap, topics, worker)


@pytest.mark.slow
def test_ten_thousand_generated_cases_on_the_topic_and_predict(
    kafka_bootstrap: str, topics: TopicNames, worker_factory: WorkerFactory, trained_model_dir: Path
) -> None:
    worker = started_worker(worker_factory, topics, trained_model_dir)
    check_generated_cases(10_000, kafka_bootstrap, topics, worker)
