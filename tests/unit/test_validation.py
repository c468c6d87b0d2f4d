"""Every malformed record becomes a dead letter with the right reason and its original bytes."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app.schemas import Transaction
from stream_app.validation import (
    MAX_MESSAGE_BYTES,
    DeadLetterReason,
    RawRecord,
    Rejection,
    dead_letter,
    parse_transaction,
    parse_transactions,
)
from tests.factories import ORIGINAL_API_REQUEST
from tests.malformed_corpus import MalformedCase, corpus
from tests.malformed_generator import Template, render_stream, templates

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


# --- the malformed corpus and generated mutations (tests/malformed_corpus.py, _generator.py)

CORPUS = corpus(NOW)
MESSAGE_ONLY_CASES = [case for case in CORPUS if case.original is None]


def test_the_corpus_covers_every_reason_with_at_least_thirty_cases() -> None:
    assert len(CORPUS) >= 30
    assert {case.reason for case in CORPUS} == set(get_args(DeadLetterReason))


@pytest.mark.parametrize("case", MESSAGE_ONLY_CASES, ids=lambda case: case.name)
def test_corpus_case_is_rejected_with_its_reason(case: MalformedCase) -> None:
    result = parse_transaction(case.value, NOW)
    assert isinstance(result, Rejection), f"{case.name} was accepted"
    assert (result.reason, case.name) == (case.reason, case.name)
    assert result.error


def test_a_duplicate_is_a_valid_message_on_its_own() -> None:
    """Only the customer's state makes the second copy bad (see test_processor)."""
    (duplicate,) = [case for case in CORPUS if case.original is not None]
    assert isinstance(parse_transaction(duplicate.value, NOW), Transaction)


@settings(max_examples=2000, derandomize=True, database=None, deadline=None)
@given(template=templates())
def test_generated_mutations_are_rejected_for_the_reason_they_were_made_with(
    template: Template,
) -> None:
    (case,) = render_stream([template], NOW, "unit")
    result = parse_transaction(case.value, NOW)
    if case.reason in (None, "duplicate_transaction_id"):  # alone, a duplicate is valid
        assert isinstance(result, Transaction), getattr(result, "error", "")
    else:
        assert isinstance(result, Rejection), f"{case.kind} accepted: {case.value[:300]!r}"
        assert result.reason == case.reason, f"{case.kind}: {result.error}"


def test_a_timestamp_beyond_what_utc_can_hold_is_a_schema_violation_not_a_crash() -> None:
    result = parse_transaction(with_fields(timestamp="9999-12-31T23:59:59-01:00"), NOW)
    assert isinstance(result, Rejection)
    assert result.reason == "schema_violation"
    assert "out of range in UTC" in result.error


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(batch=st.lists(templates(), min_size=1, max_size=40))
def test_a_generated_batch_gets_each_message_its_own_reason(batch: list[Template]) -> None:
    """Good and bad messages mixed in one batch: each comes out as it does alone."""
    cases = render_stream(batch, NOW, "batch")
    values = [case.value for case in cases]
    assert parse_transactions(values, NOW) == [parse_transaction(value, NOW) for value in values]
