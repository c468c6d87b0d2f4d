"""Turn raw Kafka records into transactions, or into dead letters that say why not.

Every record ends as exactly one of the two: bad input never crashes the worker and is never
dropped silently. Reasons are a small fixed vocabulary (they are a metric label).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from pydantic import ValidationError

from stream_app.schemas import (
    MAX_AMOUNT,
    MAX_EVENT_AGE,
    MAX_EVENT_LEAD,
    DeadLetter,
    Transaction,
)

if TYPE_CHECKING:  # only a type: the rules package imports this module
    from stream_app.rules.model import RuleRejection

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
    (outcome,) = parse_transactions((value,), now)
    return outcome


def parse_transactions(
    values: Sequence[bytes | None], now: datetime
) -> list[Transaction | Rejection]:
    """parse_transaction for each of ``values``: the same outcomes, in the same order.

    What is the same for the whole batch is done once (the event-time bounds); each message is
    still decided alone, so a bad one goes to the pydantic path by itself and costs the others
    nothing."""
    earliest, latest = now - MAX_EVENT_AGE, now + MAX_EVENT_LEAD
    canonical, reference = _canonical_transaction, parse_with_pydantic
    outcomes: list[Transaction | Rejection] = []
    append = outcomes.append
    for value in values:
        fast = None if value is None or len(value) > MAX_MESSAGE_BYTES else canonical(value)
        if fast is None:
            append(reference(value, now))
        elif earliest <= fast.timestamp <= latest:
            append(fast)
        else:
            append(_out_of_range(fast, now))
    return outcomes


def parse_with_pydantic(value: bytes | None, now: datetime) -> Transaction | Rejection:
    """The reference: every message through the pydantic model, which decides every rejection
    and its detail. parse_transaction gives the same result, faster for the common message."""
    if value is None or len(value) > MAX_MESSAGE_BYTES:
        size = 0 if value is None else len(value)
        return Rejection("oversized" if size else "invalid_json", f"message of {size} bytes")
    try:
        transaction = Transaction.model_validate_json(value)
    except ValidationError as exc:
        return _classify(value, exc)
    return _check_event_time(transaction, now)


# --- the fast path: the common, plainly valid message, without pydantic's per-field validators
#
# pydantic's validate_json calls seven Python validators per transaction (one per text field),
# two for the timestamp and one for the amount, and the model is built in Rust. Producers
# write transactions in one canonical shape (the model's field order, plain ASCII text without
# escapes), which one regular expression can check whole. A message in that shape whose every
# value the regex and the checks below accept is a valid Transaction; anything else (other key
# order, escapes, non-ASCII text, null, other timestamp spellings, every bad message) goes to
# pydantic as before, so rejections and their details are pydantic's, unchanged. Only an
# acceptance can come from here, and tests/unit/test_validation_fastpath.py holds each to the
# pydantic path: the same field values, the same fields set.

# printable ASCII without the quote and backslash: no escapes to decode, nothing to re-check
_PLAIN_CHAR = r"[ !#-\[\]-~]"
# The first character not a space, so never blank; text that starts with a space is left to
# pydantic (rare, and cheaper than a look-ahead on every field of every message).
_NOT_SPACE = r"[!#-\[\]-~]"
_NUMBER = r"(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"  # a JSON number, not negative
# the one ISO 8601 spelling taken here; datetime.fromisoformat and pydantic agree on all of it
_TIMESTAMP = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)


def _member(name: str, value_pattern: str) -> str:
    return rf'"{name}": ?{value_pattern}'


def _text(name: str, max_length: int) -> str:
    body = rf"{_NOT_SPACE}{_PLAIN_CHAR}{{0,{max_length - 1}}}"
    return _member(name, rf'"(?P<{name}>{body})"')


# Whitespace only as compact JSON (to_bytes) or json.dumps' default (", ", ": ") write it:
# allowing JSON's every whitespace everywhere cost a third of the match for no real producer.
_COMMA = ", ?"
_CURRENCY = r'"(?P<currency>[A-Z]{3})"'
# The fields in Transaction's order (the order its to_bytes writes); lengths as in schemas.py.
_CANONICAL_TRANSACTION = re.compile(
    r"\{"
    rf"(?:{_member('schema_version', '(?P<schema_version>1)')}{_COMMA})?"
    + _COMMA.join(
        [
            _text("transaction_id", 128),
            _text("customer_id", 128),
            _member("amount", rf"(?P<amount>{_NUMBER})"),
            _text("merchant_category", 64),
            _text("transaction_type", 64),
            _text("device_id", 128),
            _text("geo_location", 64),
            _member("timestamp", rf'"(?P<timestamp>{_TIMESTAMP})"'),
        ]
    )
    + rf"(?:{_COMMA}{_text('merchant_id', 128)})?"
    + rf"(?:{_COMMA}{_member('currency', _CURRENCY)})?"
    + r"\}",
    re.ASCII,
)
_set_attribute = object.__setattr__


def _canonical_transaction(value: bytes) -> Transaction | None:
    """The Transaction pydantic would build from ``value``, or None to let pydantic decide."""
    try:
        match = _CANONICAL_TRANSACTION.fullmatch(value.decode("ascii"))
    except UnicodeDecodeError:
        return None
    if match is None:
        return None
    (version, transaction_id, customer_id, amount_text, merchant_category, transaction_type,
     device_id, geo_location, timestamp_text, merchant_id, currency) = match.groups()  # fmt: skip
    amount = float(amount_text)  # correctly rounded, as pydantic's JSON parser is
    if not 0 < amount <= MAX_AMOUNT:
        return None
    try:
        timestamp = datetime.fromisoformat(timestamp_text).astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    transaction = _new_transaction(Transaction)
    _set_attribute(
        transaction,
        "__dict__",
        {
            "schema_version": 1,
            "transaction_id": transaction_id,
            "customer_id": customer_id,
            "amount": amount,
            "merchant_category": merchant_category,
            "transaction_type": transaction_type,
            "device_id": device_id,
            "geo_location": geo_location,
            "timestamp": timestamp,
            "merchant_id": merchant_id,
            "currency": currency,
        },
    )
    # The same four slots model_construct sets, at a fraction of its cost (it loops over the
    # fields in Python); test_validation_fastpath.py guards this against a pydantic upgrade.
    fields_set = _FIELDS_SET[version is not None, merchant_id is not None, currency is not None]
    _set_attribute(transaction, "__pydantic_fields_set__", set(fields_set))
    _set_attribute(transaction, "__pydantic_extra__", None)
    _set_attribute(transaction, "__pydantic_private__", None)
    return transaction


_new_transaction = Transaction.__new__
_REQUIRED_FIELDS = frozenset(
    name for name, field in Transaction.model_fields.items() if field.is_required()
)


def _fields_set(version: bool, merchant_id: bool, currency: bool) -> frozenset[str]:
    present = {"schema_version": version, "merchant_id": merchant_id, "currency": currency}
    return _REQUIRED_FIELDS | {name for name, there in present.items() if there}


# The fields a message set (model_fields_set), by which of the optional three it carries.
_FIELDS_SET = {
    (version, merchant_id, currency): _fields_set(version, merchant_id, currency)
    for version in (False, True)
    for merchant_id in (False, True)
    for currency in (False, True)
}


def _classify(value: bytes, exc: ValidationError) -> Rejection:
    return Rejection(*classify_validation_error(value, exc))


# Why a message that pydantic refused was refused: the reasons shared by every wire message
# validated here and in stream_app.rules (transactions, rules).
PayloadProblem = Literal["invalid_encoding", "invalid_json", "schema_violation"]


def classify_validation_error(value: bytes, exc: ValidationError) -> tuple[PayloadProblem, str]:
    """The dead-letter reason and detail for ``value``, which pydantic refused with ``exc``."""
    # pydantic reports undecodable bytes and malformed JSON alike as json_invalid; tell them apart
    # only on this failure path so the happy path never pays for a second decode.
    if any(error["type"] == "json_invalid" for error in exc.errors()):
        try:
            value.decode("utf-8")
        except UnicodeDecodeError as decode_error:
            return "invalid_encoding", str(decode_error)[:MAX_ERROR_CHARS]
        return "invalid_json", _summarise(exc)
    return "schema_violation", _summarise(exc)


def _summarise(exc: ValidationError) -> str:
    parts = [
        f"{'.'.join(str(loc) for loc in error['loc']) or '<root>'}: {error['msg']}"
        for error in exc.errors(include_url=False, include_input=False)
    ]
    return "; ".join(parts)[:MAX_ERROR_CHARS]


def _check_event_time(transaction: Transaction, now: datetime) -> Transaction | Rejection:
    if not now - MAX_EVENT_AGE <= transaction.timestamp <= now + MAX_EVENT_LEAD:
        return _out_of_range(transaction, now)
    return transaction


def _out_of_range(transaction: Transaction, now: datetime) -> Rejection:
    return Rejection(
        "timestamp_out_of_range",
        f"timestamp {transaction.timestamp.isoformat()} is not within "
        f"-{MAX_EVENT_AGE.days}d/+{_hours(MAX_EVENT_LEAD)}h of {now.isoformat()}",
    )


def _hours(delta: timedelta) -> int:
    return int(delta.total_seconds() // 3600)


def dead_letter(
    record: RawRecord, rejection: Rejection | RuleRejection, failed_at: datetime
) -> DeadLetter:
    """The dead-letter message for a rejected record (a transaction, a label or a rule),
    carrying its original bytes."""
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
