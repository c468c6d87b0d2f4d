"""Turn raw Kafka records into transactions, or into dead letters that say why not.

Every record ends as exactly one of the two: bad input never crashes the worker and is never
dropped silently. Reasons are a small fixed vocabulary (they are a metric label).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import ValidationError

from stream_app.schemas import MAX_EVENT_AGE, MAX_EVENT_LEAD, DeadLetter, Transaction

MAX_MESSAGE_BYTES = 64 * 1024
MAX_ERROR_CHARS = 2000

DeadLetterReason = Literal[
    "oversized",
    "invalid_encoding",
    "invalid_json",
    "schema_violation",
    "timestamp_out_of_range",
    # decided against the customer's state, not the message alone: see BatchScorer._validate
    "duplicate_transaction_id",
]


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A consumed Kafka record, as the pure core sees it (no client objects)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: DeadLetterReason
    error: str


def parse_transaction(value: bytes | None, now: datetime) -> Transaction | Rejection:
    """Validate one message value; ``now`` bounds plausible event times."""
    if value is None or len(value) > MAX_MESSAGE_BYTES:
        size = 0 if value is None else len(value)
        return Rejection("oversized" if size else "invalid_json", f"message of {size} bytes")
    try:
        transaction = Transaction.model_validate_json(value)
    except ValidationError as exc:
        return _classify(value, exc)
    return _check_event_time(transaction, now)


def _classify(value: bytes, exc: ValidationError) -> Rejection:
    # pydantic reports undecodable bytes and malformed JSON alike as json_invalid; tell them apart
    # only on this failure path so the happy path never pays for a second decode.
    if any(error["type"] == "json_invalid" for error in exc.errors()):
        try:
            value.decode("utf-8")
        except UnicodeDecodeError as decode_error:
            return Rejection("invalid_encoding", str(decode_error)[:MAX_ERROR_CHARS])
        return Rejection("invalid_json", _summarise(exc))
    return Rejection("schema_violation", _summarise(exc))


def _summarise(exc: ValidationError) -> str:
    parts = [
        f"{'.'.join(str(loc) for loc in error['loc']) or '<root>'}: {error['msg']}"
        for error in exc.errors(include_url=False, include_input=False)
    ]
    return "; ".join(parts)[:MAX_ERROR_CHARS]


def _check_event_time(transaction: Transaction, now: datetime) -> Transaction | Rejection:
    if not now - MAX_EVENT_AGE <= transaction.timestamp <= now + MAX_EVENT_LEAD:
        return Rejection(
            "timestamp_out_of_range",
            f"timestamp {transaction.timestamp.isoformat()} is not within "
            f"-{MAX_EVENT_AGE.days}d/+{_hours(MAX_EVENT_LEAD)}h of {now.isoformat()}",
        )
    return transaction


def _hours(delta: timedelta) -> int:
    return int(delta.total_seconds() // 3600)


def dead_letter(record: RawRecord, rejection: Rejection, failed_at: datetime) -> DeadLetter:
    """The dead-letter message for a rejected record, carrying its original bytes."""
    return DeadLetter(
        reason=rejection.reason,
        error=rejection.error,
        source_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key.decode("utf-8", errors="replace") if record.key is not None else None,
        original_value=base64.b64encode(record.value or b"").decode("ascii"),
        failed_at=failed_at.astimezone(UTC),
    )
