"""Wire schemas: round trips, the original API's request, and what is refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from stream_app.schemas import DeadLetter, Label, Reason, Transaction, Verdict
from tests.factories import ORIGINAL_API_REQUEST


def test_original_api_request_is_a_valid_transaction() -> None:
    transaction = Transaction.model_validate_json(ORIGINAL_API_REQUEST)
    assert transaction.amount == 1500.0
    assert transaction.timestamp == datetime(2024, 11, 1, 10, tzinfo=UTC)
    assert transaction.merchant_id is None
    assert transaction.schema_version == 1


def test_transaction_round_trips_through_plain_json() -> None:
    original = Transaction.model_validate_json(ORIGINAL_API_REQUEST)
    wire = json.loads(original.to_bytes())
    assert "merchant_id" not in wire  # optional fields absent, not null, on the wire
    assert Transaction.model_validate(wire) == original


def test_naive_timestamps_are_taken_as_utc() -> None:
    payload = json.loads(ORIGINAL_API_REQUEST)
    payload["timestamp"] = "2024-11-01T10:00:00"
    assert Transaction.model_validate(payload).timestamp.tzinfo == UTC


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount", 0),
        ("amount", -5),
        ("amount", 1e12),
        ("amount", "NaN"),
        ("amount", "Infinity"),
        ("customer_id", ""),
        ("currency", "euro"),
        ("unexpected_field", "x"),
    ],
)
def test_invalid_fields_are_refused(field: str, value: object) -> None:
    payload = json.loads(ORIGINAL_API_REQUEST)
    payload[field] = value
    with pytest.raises(ValidationError):
        Transaction.model_validate(payload)


def test_verdict_label_and_dead_letter_round_trip() -> None:
    now = datetime(2024, 11, 1, 10, 0, 1, tzinfo=UTC)
    verdict = Verdict(
        transaction_id="t1",
        customer_id="c1",
        score=0.93,
        decision="block",
        model_name="m",
        model_version="3",
        reasons=(Reason(code="amount", value=1500.0, contribution=1.2),),
        event_time=now,
        scored_at=now,
        latency_ms=4.5,
    )
    label = Label(transaction_id="t1", is_fraud=True, labeled_at=now)
    letter = DeadLetter(
        reason="invalid_json",
        error="x",
        source_topic="transactions",
        partition=1,
        offset=7,
        original_value="eyJ9",
        failed_at=now,
    )
    for message in (verdict, label, letter):
        assert type(message).model_validate_json(message.to_bytes()) == message
