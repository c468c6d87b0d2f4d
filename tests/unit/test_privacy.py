"""No customer data in metric labels, and none in logs beyond ids.

Metric labels must come from fixed vocabularies (a label per customer or per amount would leak
data and explode the series count); logs may name a transaction or customer id but never an
amount, a location or a device. The pure batch core is driven here with transactions whose
values are unmistakable, good and bad input alike; the worker process gets the same check in
tests/integration/test_worker_privacy.py, through the helpers below.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import get_args

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric

from stream_app.metrics import BATCH_BUCKETS, LATENCY_BUCKETS, SCORE_BUCKETS, create_worker_metrics
from stream_app.model import ModelBundle
from stream_app.processor import BatchScorer
from stream_app.rules import RuleSet, settings_rules
from stream_app.rules.model import RuleRejectionReason
from stream_app.schemas import Decision, Label, ModelUpdate, Transaction
from stream_app.scoring import Thresholds
from stream_app.validation import DeadLetterReason, RawRecord
from stream_app.worker.model_checks import FAILURE_REASONS
from stream_app.worker.model_swap import (
    LOAD_BUCKETS,
    SWAP_RESULTS,
    ModelSwapper,
    create_swap_metrics,
)
from tests.factories import amount_model

# Reasons a label is not folded into merchant risk (stream_app.processor, stream_app.worker).
LABEL_REJECTIONS = frozenset({"no_merchant_id", "schema_violation"})
RULE_REJECTIONS = frozenset(get_args(RuleRejectionReason))
HISTOGRAM_BOUNDS = frozenset(
    float(bound) for bound in (*LATENCY_BUCKETS, *BATCH_BUCKETS, *SCORE_BUCKETS, *LOAD_BUCKETS)
) | {float("inf")}


def allowed_label_value(label: str, value: str, model_labels: set[str]) -> bool:
    """Every label name the worker exports, with the only values it may take."""
    decisions, dead_letters = set(get_args(Decision)), set(get_args(DeadLetterReason))
    vocabulary = {
        "decision": decisions,
        "reason": dead_letters | LABEL_REJECTIONS | set(FAILURE_REASONS) | RULE_REJECTIONS,
        "mode": {"active", "shadow"},
        "result": decisions | dead_letters | set(SWAP_RESULTS),
        "model_name": model_labels,
        "model_version": model_labels,
    }
    if label in vocabulary:
        return value in vocabulary[label]
    if label == "partition":
        return value.isdigit() and int(value) < 10_000
    if label == "le":
        return float(value) in HISTOGRAM_BOUNDS
    return False  # a new label name must be added here on purpose, after this review


def label_problems(families: Iterable[Metric], model_labels: set[str]) -> list[str]:
    """Each label value outside its vocabulary, as ``metric{label="value"}``, sorted."""
    return sorted(
        {
            f'{family.name}{{{label}="{value}"}}'
            for family in families
            for sample in family.samples
            for label, value in sample.labels.items()
            if not allowed_label_value(label, value, model_labels)
        }
    )


def private_values(transactions: Iterable[Transaction]) -> set[str]:
    """What must never reach a log line: amounts, locations and devices."""
    values: set[str] = set()
    for txn in transactions:
        values |= {repr(txn.amount), f"{txn.amount:.2f}", txn.geo_location, txn.device_id}
    return values


def leaks(text: str, transactions: Iterable[Transaction]) -> list[str]:
    return sorted(value for value in private_values(transactions) if value in text)


def private_transactions(count: int, now: datetime) -> list[Transaction]:
    """Transactions whose amount, location and device cannot appear in a log by coincidence."""
    tag = uuid.uuid4().hex[:8]
    return [
        Transaction(
            transaction_id=f"txn-{tag}-{index}",
            customer_id=f"cust-{tag}-{index % 5}",
            amount=round(73_000 + index * 101.37 + 0.01, 2),
            merchant_category="electronics",
            transaction_type="online",
            device_id=f"device-{tag}-{index}",
            geo_location=f"ZQ-{tag}{index}",
            timestamp=now - timedelta(minutes=30 - index % 30),
            merchant_id=f"merchant-{tag}-{index % 3}",
        )
        for index in range(count)
    ]


def bad_messages_carrying(txn: Transaction) -> list[bytes]:
    """Invalid input that still holds a customer's amount, place and device."""
    fields = txn.model_dump(mode="json")
    return [
        json.dumps({**fields, "amount": -txn.amount}).encode(),  # schema violation
        json.dumps({**fields, "unexpected": txn.device_id}).encode(),  # unknown field
        json.dumps(fields).encode()[:-5],  # truncated JSON
        json.dumps({**fields, "timestamp": "1990-01-01T00:00:00Z"}).encode(),  # too old
    ]


def test_scoring_a_batch_keeps_customer_data_out_of_labels_and_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    now = datetime.now(UTC)
    transactions = private_transactions(60, now)
    registry = CollectorRegistry()
    metrics = create_worker_metrics(registry)
    model = amount_model()
    # Rules that fire on these very customers, so rule reasons are exercised too.
    rules = RuleSet(
        settings_rules(deny={"device_id": [transactions[0].device_id]}, review_above_usd=100.0)
    )
    scorer = BatchScorer(model, Thresholds(review=0.5, block=0.9), metrics, rules=rules)
    swapper = ModelSwapper(model, _NoRegistry(), create_swap_metrics(registry))

    values = [txn.to_bytes() for txn in transactions]
    values += [bad for txn in transactions[:5] for bad in bad_messages_carrying(txn)]
    records = [
        RawRecord("transactions", index % 3, index, b"key", value, timestamp_ms=None)
        for index, value in enumerate(values)
    ]
    result = scorer.score_batch(records)
    scorer.apply_labels(
        [_label(txn, now, merchant=index % 2 == 0) for index, txn in enumerate(transactions)]
    )
    scorer.predict(transactions[1])
    swapper.request(_update())
    assert swapper.wait_idle(30)
    swapper.close()

    assert len(result.verdicts) == len(transactions)
    assert {letter.reason for letter in result.dead_letters} == {
        "schema_violation",
        "invalid_json",
        "timestamp_out_of_range",
    }
    model_labels = {model.metadata.name, model.metadata.version}
    assert label_problems(registry.collect(), model_labels) == []
    assert leaks(caplog.text, transactions) == []
    assert caplog.records, "the swap failure was logged: the log check saw real lines"


def test_the_checks_catch_a_leak() -> None:
    """The helpers above fail on the leaks they exist to catch."""
    txn = private_transactions(1, datetime.now(UTC))[0]
    registry = CollectorRegistry()
    metrics = create_worker_metrics(registry)
    metrics.labels_rejected.labels(txn.device_id).inc()
    metrics.decisions.labels(str(txn.amount)).inc()

    assert label_problems(registry.collect(), set()) == [
        f'fraudstream_decisions{{decision="{txn.amount}"}}',
        f'fraudstream_labels_rejected{{reason="{txn.device_id}"}}',
    ]
    assert leaks(f"scored amount={txn.amount:.2f} at {txn.geo_location}", [txn]) == sorted(
        {repr(txn.amount), f"{txn.amount:.2f}", txn.geo_location}
    )


class _NoRegistry:
    """A model source that fails every load: the swapper's failure path logs and counts."""

    def load(self, uri: str) -> ModelBundle:
        raise ConnectionError(f"no registry for {uri}")

    def alias_version(self, name: str, alias: str) -> str:
        raise ConnectionError("no registry")


def _update() -> ModelUpdate:
    return ModelUpdate(
        model_name="amount",
        model_version="8",
        model_uri="models:/amount/8",
        promoted_at=datetime.now(UTC),
    )


def _label(txn: Transaction, now: datetime, *, merchant: bool) -> Label:
    return Label(
        transaction_id=txn.transaction_id,
        customer_id=txn.customer_id,
        is_fraud=True,
        labeled_at=now,
        merchant_id=txn.merchant_id if merchant else None,
    )
