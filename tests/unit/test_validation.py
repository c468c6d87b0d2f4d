"""Every malformed record becomes a dead letter with the right reason and its original bytes."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from stream_app.schemas import Transaction
from stream_app.validation import (
    MAX_MESSAGE_BYTES,
    RawRecord,
    Rejection,
    dead_letter,
    parse_transaction,
)
from tests.unit.test_schemas import ORIGINAL_API_REQUEST

pytestmark = pytest.mark.unit

NOW = datetime(2024, 11, 1, 12, tzinfo=UTC)


def with_fields(**changes: object) -> bytes:
    payload = json.loads(ORIGINAL_API_REQUEST)
    payload.update(changes)
    return json.dumps(payload).encode()


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"not json at all", "invalid_json"),
        (b'{"transaction_id": "t1",', "invalid_json"),
        (b"\xff\xfe\x00garbage", "invalid_encoding"),
        (b"[1, 2, 3]", "schema_violation"),
        (b'"just a string"', "schema_violation"),
        (b"{}", "schema_violation"),
        (with_fields(amount="lots"), "schema_violation"),
        (with_fields(amount=-1), "schema_violation"),
        (ORIGINAL_API_REQUEST.replace(b"1500", b"NaN"), "schema_violation"),
        (with_fields(extra="field"), "schema_violation"),
        (with_fields(timestamp="1970-01-01T00:00:00Z"), "timestamp_out_of_range"),
        (with_fields(timestamp="2031-01-01T00:00:00Z"), "timestamp_out_of_range"),
        (b" " * (MAX_MESSAGE_BYTES + 1), "oversized"),
    ],
)
def test_bad_input_is_rejected_with_its_reason(value: bytes, reason: str) -> None:
    result = parse_transaction(value, NOW)
    assert isinstance(result, Rejection)
    assert result.reason == reason
    assert result.error


def test_a_valid_message_parses() -> None:
    result = parse_transaction(ORIGINAL_API_REQUEST, NOW)
    assert isinstance(result, Transaction)
    assert result.transaction_id == "t1"


def test_event_time_bounds_are_inclusive_of_a_day_ahead() -> None:
    almost_a_day_ahead = (NOW + timedelta(hours=23)).isoformat()
    assert isinstance(
        parse_transaction(with_fields(timestamp=almost_a_day_ahead), NOW), Transaction
    )


def test_schema_errors_name_the_field() -> None:
    result = parse_transaction(with_fields(amount="lots"), NOW)
    assert isinstance(result, Rejection)
    assert "amount" in result.error


def test_dead_letter_keeps_original_bytes_and_source() -> None:
    record = RawRecord("transactions", 2, 41, b"c1", b"\xff\xfe", timestamp_ms=1)
    rejection = parse_transaction(record.value, NOW)
    assert isinstance(rejection, Rejection)
    letter = dead_letter(record, rejection, NOW)
    assert base64.b64decode(letter.original_value) == b"\xff\xfe"
    assert (letter.source_topic, letter.partition, letter.offset, letter.key) == (
        "transactions",
        2,
        41,
        "c1",
    )
    assert letter.reason == "invalid_encoding"
