"""Malformed messages, one named case per way input goes wrong, with the outcome each must have.

The expected reason and HTTP status of every case are written here by hand: they are the oracle
the validator, the worker and ``POST /predict`` are checked against, so nothing here calls them.
Unit tests run the corpus through ``parse_transaction`` and the batch scorer; the integration
tests send it to the real topic and to ``/predict``.

Messages carry an event time near ``now`` (the corpus is built for the moment it is sent), so
that only the cases about time are rejected for their time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

CORPUS_CUSTOMER = "corpus-c1"
# The HTTP status ``POST /predict`` must answer for each dead-letter reason (and 200: scored).
STATUS_BY_REASON = {
    "invalid_json": 400,
    "invalid_encoding": 400,
    "schema_violation": 422,
    "timestamp_out_of_range": 422,
    "oversized": 413,
    "duplicate_transaction_id": 409,
}
KIB = 1024


@dataclass(frozen=True)
class MalformedCase:
    """One bad message. ``original``: for a duplicate, the valid message that must have been
    scored before this one arrives (same customer, hence same key and partition)."""

    name: str
    value: bytes
    reason: str
    key: bytes = CORPUS_CUSTOMER.encode()
    original: bytes | None = None

    @property
    def status(self) -> int:
        return STATUS_BY_REASON[self.reason]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def valid_payload(now: datetime, transaction_id: str, customer_id: str) -> dict[str, Any]:
    """A transaction the worker scores: every field of the original API plus the optional two."""
    return {
        "transaction_id": transaction_id,
        "customer_id": customer_id,
        "amount": 1500.0,
        "merchant_category": "electronics",
        "transaction_type": "online",
        "device_id": "dev123",
        "geo_location": "IN-MH",
        "timestamp": iso(now - timedelta(hours=1)),
        "merchant_id": "m-corpus",
        "currency": "INR",
    }


def encode(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def corpus(now: datetime) -> list[MalformedCase]:
    """Every case, in a fixed order; names are unique."""
    cases = [
        *_not_json(now),
        *_wrong_encoding(now),
        *_missing_and_extra_fields(now),
        *_wrong_types(now),
        *_nan_and_infinities(now),
        *_bad_amounts(now),
        *_bad_timestamps(now),
        *_oversized(now),
        *_bad_strings(now),
        _duplicate(now),
    ]
    assert len({case.name for case in cases}) == len(cases), "case names must be unique"
    return cases


def _base(now: datetime, name: str) -> dict[str, Any]:
    return valid_payload(now, f"corpus-{name}", CORPUS_CUSTOMER)


def _with(now: datetime, name: str, reason: str, **changes: Any) -> MalformedCase:
    return MalformedCase(name, encode(_base(now, name) | changes), reason)


def _without(now: datetime, name: str, field: str) -> MalformedCase:
    payload = _base(now, name)
    del payload[field]
    return MalformedCase(name, encode(payload), "schema_violation")


def _raw_amount(now: datetime, name: str, literal: bytes) -> MalformedCase:
    """The amount written as raw JSON text (json.dumps cannot write NaN's neighbours)."""
    value = encode(_base(now, name)).replace(b'"amount":1500.0', b'"amount":' + literal)
    assert literal in value
    return MalformedCase(name, value, "schema_violation")


def _not_json(now: datetime) -> list[MalformedCase]:
    valid = encode(_base(now, "not-json"))
    return [
        MalformedCase("plain_text", b"not json at all", "invalid_json"),
        MalformedCase("empty_message", b"", "invalid_json"),
        MalformedCase("whitespace_only", b"  \n\t ", "invalid_json"),
        MalformedCase("truncated_object", valid[: len(valid) // 2], "invalid_json"),
        MalformedCase("python_repr", repr(_base(now, "repr")).encode(), "invalid_json"),
        MalformedCase("trailing_garbage", valid + b" trailing", "invalid_json"),
        MalformedCase("two_objects_in_one_message", valid + valid, "invalid_json"),
        MalformedCase("utf8_byte_order_mark", b"\xef\xbb\xbf" + valid, "invalid_json"),
        MalformedCase(
            "lone_surrogate_escape",
            valid.replace(b'"dev123"', b'"dev\\ud800"'),
            "invalid_json",
        ),
        # deeper than the JSON parser's nesting limit (a few hundred levels)
        MalformedCase(
            "nesting_too_deep",
            valid[:-1] + b',"deep":' + b"[" * 5000 + b"]" * 5000 + b"}",
            "invalid_json",
        ),
    ]


def _wrong_encoding(now: datetime) -> list[MalformedCase]:
    text = json.dumps(_base(now, "latin1") | {"merchant_category": "café"}, ensure_ascii=False)
    valid = encode(_base(now, "bytes"))
    inside_a_string = valid.index(b"dev123") + 3
    return [
        MalformedCase("latin1_encoded", text.encode("latin-1"), "invalid_encoding"),
        MalformedCase("utf16_with_bom", text.encode("utf-16"), "invalid_encoding"),
        MalformedCase("cp1252_encoded", text.encode("cp1252"), "invalid_encoding"),
        MalformedCase(
            "invalid_start_byte",
            valid[:inside_a_string] + b"\xff" + valid[inside_a_string:],
            "invalid_encoding",
        ),
        MalformedCase(
            "overlong_slash",
            valid[:inside_a_string] + b"\xc0\xaf" + valid[inside_a_string:],
            "invalid_encoding",
        ),
        MalformedCase(  # CESU-8 / WTF-8 style: a UTF-16 surrogate encoded as if a character
            "encoded_surrogate",
            valid[:inside_a_string] + b"\xed\xa0\x80" + valid[inside_a_string:],
            "invalid_encoding",
        ),
        MalformedCase(
            "truncated_multibyte_character",
            valid[:inside_a_string] + "é".encode()[:1] + valid[inside_a_string:],
            "invalid_encoding",
        ),
    ]


def _missing_and_extra_fields(now: datetime) -> list[MalformedCase]:
    payload = _base(now, "misspelled")
    payload["ammount"] = payload.pop("amount")
    return [
        MalformedCase("empty_object", b"{}", "schema_violation"),
        _without(now, "missing_transaction_id", "transaction_id"),
        _without(now, "missing_customer_id", "customer_id"),
        _without(now, "missing_amount", "amount"),
        _without(now, "missing_timestamp", "timestamp"),
        _with(now, "extra_field_label_leak", "schema_violation", is_fraud=True),
        MalformedCase("misspelled_field", encode(payload), "schema_violation"),
        _with(now, "null_required_field", "schema_violation", device_id=None),
        MalformedCase("json_array", b'[{"transaction_id":"t1"}]', "schema_violation"),
        MalformedCase("json_string", b'"a transaction"', "schema_violation"),
        MalformedCase("json_null", b"null", "schema_violation"),
    ]


def _wrong_types(now: datetime) -> list[MalformedCase]:
    return [
        _with(now, "amount_as_numeric_string", "schema_violation", amount="1500.00"),
        _with(now, "amount_as_boolean", "schema_violation", amount=True),
        _with(now, "amount_as_list", "schema_violation", amount=[1500]),
        _with(now, "customer_id_as_number", "schema_violation", customer_id=12345),
        _with(now, "device_id_as_object", "schema_violation", device_id={"id": "dev123"}),
        _with(now, "timestamp_as_epoch_seconds", "schema_violation", timestamp=1730455200),
        _with(now, "timestamp_as_digit_string", "schema_violation", timestamp="1730455200"),
        _with(now, "timestamp_as_date_only", "schema_violation", timestamp=now.date().isoformat()),
        _with(now, "schema_version_as_string", "schema_violation", schema_version="1"),
        _with(now, "schema_version_unknown", "schema_violation", schema_version=2),
    ]


def _nan_and_infinities(now: datetime) -> list[MalformedCase]:
    # The JSON parser takes these non-standard literals as numbers; the schema refuses them.
    return [
        _raw_amount(now, "amount_nan", b"NaN"),
        _raw_amount(now, "amount_infinity", b"Infinity"),
        _raw_amount(now, "amount_negative_infinity", b"-Infinity"),
        _raw_amount(now, "amount_overflows_to_infinity", b"1e400"),
    ]


def _bad_amounts(now: datetime) -> list[MalformedCase]:
    return [
        _with(now, "amount_negative", "schema_violation", amount=-3),
        _with(now, "amount_zero", "schema_violation", amount=0),
        _raw_amount(now, "amount_negative_zero", b"-0.0"),
        _with(now, "amount_absurd", "schema_violation", amount=1e12),
        _with(now, "amount_just_over_the_limit", "schema_violation", amount=1_000_000.01),
    ]


def _bad_timestamps(now: datetime) -> list[MalformedCase]:
    out_of_range = "timestamp_out_of_range"
    return [
        _with(now, "timestamp_unix_epoch", out_of_range, timestamp="1970-01-01T00:00:00Z"),
        _with(now, "timestamp_year_1", out_of_range, timestamp="0001-01-01T00:00:00Z"),
        _with(now, "timestamp_ten_years_ago", out_of_range, timestamp=iso(now - timedelta(3651))),
        _with(now, "timestamp_next_week", out_of_range, timestamp=iso(now + timedelta(7))),
        _with(now, "timestamp_year_9999", out_of_range, timestamp="9999-12-31T23:59:59Z"),
        # year 1 an hour ahead of UTC is before the first instant a UTC datetime can hold
        _with(
            now,
            "timestamp_unrepresentable_in_utc",
            "schema_violation",
            timestamp="0001-01-01T00:00:00+01:00",
        ),
        _with(
            now, "timestamp_impossible_date", "schema_violation", timestamp="2024-02-30T10:00:00Z"
        ),
        _with(now, "timestamp_words", "schema_violation", timestamp="yesterday"),
    ]


def _oversized(now: datetime) -> list[MalformedCase]:
    valid = encode(_base(now, "padded"))
    return [
        MalformedCase("padded_past_64_kib", valid[:-1] + b" " * (64 * KIB) + b"}", "oversized"),
        _with(now, "string_of_100_kib", "oversized", device_id="d" * (100 * KIB)),
        # the size cap comes first: an oversized message is not even decoded
        MalformedCase("oversized_and_not_utf8", b"\xff" * (65 * KIB), "oversized"),
    ]


def _bad_strings(now: datetime) -> list[MalformedCase]:
    return [
        _with(now, "customer_id_over_128_chars", "schema_violation", customer_id="c" * 129),
        _with(now, "category_over_64_chars", "schema_violation", merchant_category="x" * 65),
        _with(now, "empty_device_id", "schema_violation", device_id=""),
        _with(now, "blank_customer_id", "schema_violation", customer_id="   "),
        _with(now, "newline_in_transaction_id", "schema_violation", transaction_id="t1\nforged"),
        _with(now, "nul_in_device_id", "schema_violation", device_id="dev\u0000123"),
        _with(now, "zero_width_space_id", "schema_violation", customer_id="\u200b"),
        _with(now, "currency_lowercase", "schema_violation", currency="inr"),
    ]


def _duplicate(now: datetime) -> MalformedCase:
    """A valid transaction sent twice: the second copy is the bad input."""
    customer = "corpus-duplicate-c1"
    original = encode(valid_payload(now, "corpus-duplicate-t1", customer))
    return MalformedCase(
        "duplicate_transaction_id",
        original,
        "duplicate_transaction_id",
        key=customer.encode(),
        original=original,
    )
