"""Generated bad input: hypothesis draws valid transactions and known mutations of them.

Each drawn :class:`Template` is a valid transaction plus one mutation whose outcome is known
from how it was made (drop a required field: ``schema_violation``; cut the text short:
``invalid_json``; put a byte that UTF-8 never uses into it: ``invalid_encoding``...). The
expected reason comes from the generator, never from the validator under test.

Templates carry no transaction id and no absolute time: :func:`render_stream` and
:func:`render_requests` give them unique ids and times near the moment they are sent, and turn
``duplicate`` templates into exact copies of a transaction the worker has already folded in.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from stream_app import features, geo

MAX_ID_CHARS = 128
MAX_TEXT_CHARS = 64
MAX_MESSAGE_BYTES = 64 * 1024
ID_FIELDS = ("transaction_id", "customer_id", "device_id")
TEXT_FIELDS = ("merchant_category", "transaction_type", "geo_location")
REQUIRED_FIELDS = (*ID_FIELDS, "amount", *TEXT_FIELDS, "timestamp")
ALL_FIELDS = frozenset((*REQUIRED_FIELDS, "merchant_id", "currency", "schema_version"))
CUSTOMERS = tuple(f"gen-c{index}" for index in range(40))
TEN_YEARS = timedelta(days=3650)

Payload = dict[str, Any]
Mutate = Callable[[Payload], bytes]


@dataclass(frozen=True)
class Template:
    """A valid transaction (minus id and time) and how to turn it into the message to send."""

    fields: Payload
    seconds_ago: int
    utc_offset_minutes: int
    kind: str
    reason: str | None  # None: valid, must be scored
    mutate: Mutate


@dataclass(frozen=True)
class GeneratedCase:
    key: bytes
    value: bytes
    reason: str | None
    kind: str
    transaction_id: str


def encode(payload: Any, ascii_only: bool = False) -> bytes:
    return json.dumps(payload, ensure_ascii=ascii_only).encode()


# ---------------------------------------------------------------------------------------------
# Valid transactions


def printable_text(max_size: int) -> st.SearchStrategy[str]:
    """Non-blank text of letters, digits, punctuation, symbols and spaces: all printable."""
    alphabet = st.characters(categories=("L", "N", "P", "S"), include_characters=" ")
    return st.text(alphabet, min_size=1, max_size=max_size).filter(lambda text: text.strip() != "")


# Built once: hypothesis strategies are cheap to draw from and costly to build.
ID_TEXT = printable_text(MAX_ID_CHARS)
SHORT_TEXT = printable_text(MAX_TEXT_CHARS)
VALID_FIELDS = {
    "customer_id": st.sampled_from(CUSTOMERS),
    "amount": st.one_of(
        st.floats(0.01, 1_000_000.0),
        st.integers(1, 1_000_000),
        st.decimals("0.01", "5000", places=2).map(float),
    ),
    "merchant_category": st.one_of(st.sampled_from(features.MERCHANT_CATEGORIES), SHORT_TEXT),
    "transaction_type": st.one_of(st.sampled_from(features.TRANSACTION_TYPES), SHORT_TEXT),
    "device_id": st.one_of(st.integers(0, 6).map(lambda n: f"dev-{n}"), ID_TEXT),
    "geo_location": st.one_of(st.sampled_from(sorted(geo.REGION_COORDINATES)), SHORT_TEXT),
}
OPTIONAL_FIELDS = {
    "merchant_id": st.one_of(st.integers(0, 50).map(lambda n: f"m-{n}"), ID_TEXT),
    "currency": st.from_regex(r"\A[A-Z]{3}\Z"),
    "schema_version": st.just(1),
}


@st.composite
def valid_fields(draw: st.DrawFn) -> Payload:
    fields: Payload = {name: draw(strategy) for name, strategy in VALID_FIELDS.items()}
    for name, strategy in OPTIONAL_FIELDS.items():
        if draw(st.booleans()):
            fields[name] = draw(strategy)
    return fields


def _plain(payload: Payload) -> bytes:
    return encode(payload)


@st.composite
def valid_encoding(draw: st.DrawFn) -> Mutate:
    """Any way of writing a valid transaction: escaped or raw UTF-8, indented, reordered."""
    ascii_only, indent, reverse = (
        draw(st.booleans()),
        draw(st.sampled_from([None, 0, 2])),
        draw(st.booleans()),
    )

    def write(payload: Payload) -> bytes:
        items = dict(reversed(payload.items())) if reverse else payload
        return json.dumps(items, ensure_ascii=ascii_only, indent=indent).encode()

    return write


# ---------------------------------------------------------------------------------------------
# Mutations, each with the reason it must produce


def _set(field: str, value: Any) -> Mutate:
    return lambda payload: encode(payload | {field: value})


def _drop(field: str) -> Mutate:
    return lambda payload: encode({k: v for k, v in payload.items() if k != field})


def _raw_value(field: str, literal: str) -> Mutate:
    """Write ``field``'s value as raw JSON text (for literals json.dumps refuses to write)."""

    def write(payload: Payload) -> bytes:
        marker = "__raw_value__"
        return encode(payload | {field: marker}).replace(f'"{marker}"'.encode(), literal.encode())

    return write


JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=8,
)


@st.composite
def dropped_field(draw: st.DrawFn) -> Mutate:
    return _drop(draw(st.sampled_from(REQUIRED_FIELDS)))


EXTRA_FIELD_NAME = st.text(min_size=1, max_size=30).filter(lambda text: text not in ALL_FIELDS)


@st.composite
def extra_field(draw: st.DrawFn) -> Mutate:
    return _set(draw(EXTRA_FIELD_NAME), draw(JSON_VALUES))


NOT_A_STRING = st.one_of(
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(JSON_SCALARS, max_size=3),
    st.dictionaries(st.text(max_size=5), JSON_SCALARS, max_size=3),
)
NOT_A_NUMBER = st.one_of(
    st.text(max_size=12),  # "12.50" included: numbers in strings are a type error too
    st.booleans(),
    st.none(),
    st.lists(st.floats(0.01, 100.0), min_size=1, max_size=2),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
NOT_A_DATE_TIME = st.one_of(
    st.integers(0, 2**40),  # epoch seconds or milliseconds
    st.floats(0, 2e12),
    st.integers(0, 2**40).map(str),  # epoch as digits
    st.booleans(),
    st.none(),
    st.dates().map(lambda day: day.isoformat()),  # a date without a time of day
    st.sampled_from(["2024-02-30T10:00:00Z", "2024-13-01T00:00:00Z", "2024-11-01T25:00:00Z"]),
    st.text(string.ascii_letters, min_size=1, max_size=20),
)
NOT_SCHEMA_VERSION_1 = st.one_of(
    st.integers().filter(lambda number: number != 1),
    st.sampled_from([1.0, 1.5, "1", True, None, [1]]),
)


@st.composite
def wrong_type(draw: st.DrawFn) -> Mutate:
    field = draw(st.sampled_from([*ID_FIELDS, *TEXT_FIELDS, "merchant_id", "amount", "timestamp"]))
    if field == "amount":
        return _set(field, draw(NOT_A_NUMBER))
    if field == "timestamp":
        return _set(field, draw(NOT_A_DATE_TIME))
    if field == "merchant_id":  # optional: null means absent, so null is no type error here
        return _set(field, draw(NOT_A_STRING))
    return _set(field, draw(st.one_of(NOT_A_STRING, st.none())))


@st.composite
def wrong_schema_version(draw: st.DrawFn) -> Mutate:
    return _set("schema_version", draw(NOT_SCHEMA_VERSION_1))


BAD_AMOUNT: st.SearchStrategy[Mutate] = st.one_of(
    st.floats(max_value=0.0, allow_nan=False, allow_infinity=False).map(
        lambda amount: _set("amount", amount)
    ),
    st.integers(max_value=0).map(lambda amount: _set("amount", amount)),
    st.floats(min_value=1_000_000.01, allow_nan=False, allow_infinity=False).map(
        lambda amount: _set("amount", amount)
    ),
    st.integers(min_value=1_000_001).map(lambda amount: _set("amount", amount)),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "-0.0"]).map(
        lambda literal: _raw_value("amount", literal)
    ),
)


@st.composite
def bad_string(draw: st.DrawFn) -> Mutate:
    """Too long, empty, blank, or with a character that is not printable."""
    field = draw(st.sampled_from([*ID_FIELDS, *TEXT_FIELDS, "merchant_id"]))
    limit = MAX_TEXT_CHARS if field in TEXT_FIELDS else MAX_ID_CHARS
    too_long = "x" * draw(st.integers(limit + 1, 4 * limit))
    return _set(field, draw(st.one_of(st.just(too_long), NOT_PRINTABLE)))


UNPRINTABLE_CHARACTER = st.characters(categories=("Cc", "Cf", "Co", "Zl", "Zp"))
NOT_PRINTABLE = st.one_of(
    st.just(""),
    st.text(" ", min_size=1, max_size=5),
    st.tuples(printable_text(10), UNPRINTABLE_CHARACTER, printable_text(10)).map("".join),
)


def _timestamp(days_from_now: int, seconds: int) -> Mutate:
    """A timestamp relative to the render time, which the template's own time is replaced by."""

    def write(payload: Payload) -> bytes:
        now = datetime.fromisoformat(payload["timestamp"])
        moment = now + timedelta(days=days_from_now, seconds=seconds)
        return encode(payload | {"timestamp": moment.isoformat()})

    return write


@st.composite
def far_timestamp(draw: st.DrawFn) -> Mutate:
    """More than ten years back (down to about year 100) or more than a day ahead (to about
    year 9700): out of range, but well inside what a datetime can hold in any time zone. The
    shift applies to the template's own time, which is up to 30 days back and an hour ahead."""
    seconds = draw(st.integers(0, 86_399))
    past = st.integers(-700_000, -(TEN_YEARS.days + 2))
    future = st.integers(32, 2_800_000)
    return _timestamp(draw(st.one_of(past, future)), seconds)


@st.composite
def not_an_object(draw: st.DrawFn) -> Mutate:
    value = draw(st.one_of(JSON_SCALARS, st.text(max_size=30), st.lists(JSON_VALUES, max_size=4)))
    return lambda _payload: encode(value)


@st.composite
def truncated(draw: st.DrawFn) -> Mutate:
    """Cut at a character (not byte) boundary: a proper prefix of an object is never JSON."""
    fraction = draw(st.floats(0.0, 1.0, exclude_max=True))

    def write(payload: Payload) -> bytes:
        text = json.dumps(payload, ensure_ascii=False)
        return text[: int(len(text) * fraction)].encode()

    return write


@st.composite
def not_json_text(draw: st.DrawFn) -> Mutate:
    """Text no JSON document starts or ends like: a stray prefix, garbage after, key=value."""
    prefix = draw(st.sampled_from(["(", "<", "x", "#", ";", "'", "=", "{{"]))
    garbage = draw(st.text(string.ascii_letters + "=&;<>", min_size=1, max_size=20))
    choices: list[Mutate] = [
        lambda payload: prefix.encode() + encode(payload),
        lambda payload: encode(payload) + b" " + garbage.encode(),
        lambda payload: "&".join(f"{k}={v}" for k, v in payload.items()).encode(),
        lambda payload: repr(payload).encode(),  # Python's quotes, not JSON's
    ]
    return choices[draw(st.integers(0, len(choices) - 1))]


# Byte sequences that are never valid UTF-8, whatever follows them at a character boundary.
INVALID_UTF8 = (b"\xff", b"\xfe", b"\x80", b"\xbf", b"\xc0\xaf", b"\xc3", b"\xed\xa0\x80", b"\xf8")


@st.composite
def invalid_encoding(draw: st.DrawFn) -> Mutate:
    bad = draw(st.sampled_from(INVALID_UTF8))
    fraction = draw(st.floats(0.0, 1.0))
    legacy = draw(st.sampled_from(["latin-1", "cp1252", "utf-16", "utf-32"]))

    def insert(payload: Payload) -> bytes:
        text = json.dumps(payload, ensure_ascii=False)
        cut = int(len(text) * fraction)
        return text[:cut].encode() + bad + text[cut:].encode()

    def legacy_encoding(payload: Payload) -> bytes:
        # "é" is one byte in the Latin encodings and a byte-order mark leads UTF-16/32: both
        # bytes UTF-8 never starts a character with. Ascii-escape the rest so it encodes.
        text = json.dumps(payload | {"merchant_category": "é"}, ensure_ascii=True)
        return text.replace("\\u00e9", "é").encode(legacy)

    return insert if draw(st.booleans()) else legacy_encoding


@st.composite
def oversized(draw: st.DrawFn) -> Mutate:
    """Over 64 KiB by whitespace or by one long string (ids or an extra field)."""
    size = draw(st.integers(MAX_MESSAGE_BYTES + 1, MAX_MESSAGE_BYTES + 16 * 1024))
    field = draw(st.sampled_from(["device_id", "customer_id", "note"]))

    def padded(payload: Payload) -> bytes:
        value = encode(payload)
        return value[:-1] + b" " * (size - len(value)) + b"}"

    def long_string(payload: Payload) -> bytes:
        value = encode(payload | {field: ""})
        return encode(payload | {field: "z" * (size - len(value))})

    return padded if draw(st.booleans()) else long_string


MUTATIONS: dict[str, tuple[str, st.SearchStrategy[Mutate]]] = {
    "dropped_field": ("schema_violation", dropped_field()),
    "extra_field": ("schema_violation", extra_field()),
    "wrong_type": ("schema_violation", wrong_type()),
    "wrong_schema_version": ("schema_violation", wrong_schema_version()),
    "bad_amount": ("schema_violation", BAD_AMOUNT),
    "bad_string": ("schema_violation", bad_string()),
    "not_an_object": ("schema_violation", not_an_object()),
    "far_timestamp": ("timestamp_out_of_range", far_timestamp()),
    "truncated": ("invalid_json", truncated()),
    "not_json_text": ("invalid_json", not_json_text()),
    "invalid_encoding": ("invalid_encoding", invalid_encoding()),
    "oversized": ("oversized", oversized()),
}
# Valid transactions are drawn as often as all mutations together; duplicates as often as one.
KINDS = ("valid",) * len(MUTATIONS) + tuple(MUTATIONS) + ("duplicate",)


@st.composite
def templates(draw: st.DrawFn) -> Template:
    kind = draw(st.sampled_from(KINDS))
    fields = draw(valid_fields())
    seconds_ago = draw(st.integers(-3600, 30 * 86_400))  # an hour ahead to 30 days back
    offset = draw(st.integers(-12 * 60, 14 * 60))
    if kind == "valid":
        return Template(fields, seconds_ago, offset, kind, None, draw(valid_encoding()))
    if kind == "duplicate":
        return Template(fields, seconds_ago, offset, kind, "duplicate_transaction_id", _plain)
    reason, mutation = MUTATIONS[kind]
    return Template(fields, seconds_ago, offset, kind, reason, draw(mutation))


def collect_templates(count: int) -> list[Template]:
    """``count`` templates, the same ones on every run (derandomised, no example database)."""
    collected: list[Template] = []

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
            HealthCheck.large_base_example,
        ],
    )
    @given(templates())
    def collect(template: Template) -> None:
        collected.append(template)

    collect()
    assert len(collected) >= count, f"hypothesis generated only {len(collected)} templates"
    return collected[:count]


# ---------------------------------------------------------------------------------------------
# Rendering: ids, times, duplicates


def _payload(template: Template, transaction_id: str, now: datetime) -> Payload:
    zone = timezone(timedelta(minutes=template.utc_offset_minutes))
    moment = (now - timedelta(seconds=template.seconds_ago)).astimezone(zone)
    return {"transaction_id": transaction_id, **template.fields, "timestamp": moment.isoformat()}


def _case(template: Template, transaction_id: str, now: datetime) -> GeneratedCase:
    payload = _payload(template, transaction_id, now)
    value = template.mutate(payload)
    return GeneratedCase(
        payload["customer_id"].encode(), value, template.reason, template.kind, transaction_id
    )


def render_stream(templates: Sequence[Template], now: datetime, prefix: str) -> list[GeneratedCase]:
    """Messages for the topic, in order. A duplicate re-sends the last valid message: same key,
    so same partition, after its original and before the customer's next transaction."""
    cases: list[GeneratedCase] = []
    last_valid: GeneratedCase | None = None
    for index, template in enumerate(templates):
        if template.kind == "duplicate" and last_valid is not None:
            cases.append(
                GeneratedCase(
                    last_valid.key,
                    last_valid.value,
                    template.reason,
                    "duplicate",
                    last_valid.transaction_id,
                )
            )
            continue
        valid = template if template.kind != "duplicate" else _as_valid(template)
        case = _case(valid, f"{prefix}-{index}", now)
        cases.append(case)
        if case.reason is None:
            last_valid = case
    return cases


def render_requests(
    templates: Sequence[Template], now: datetime, prefix: str, scored: Sequence[GeneratedCase]
) -> list[GeneratedCase]:
    """Bodies for ``POST /predict``: new ids, so valid ones are scored; a duplicate re-sends a
    customer's last transaction scored from the topic (``scored``), which its state holds."""
    last_by_customer = {case.key: case for case in scored if case.reason is None}
    latest = list(last_by_customer.values())
    cases = []
    for index, template in enumerate(templates):
        if template.kind == "duplicate" and latest:
            original = latest[index % len(latest)]
            cases.append(
                GeneratedCase(
                    original.key,
                    original.value,
                    template.reason,
                    "duplicate",
                    original.transaction_id,
                )
            )
        else:
            valid = template if template.kind != "duplicate" else _as_valid(template)
            cases.append(_case(valid, f"{prefix}-{index}", now))
    return cases


def _as_valid(template: Template) -> Template:
    """A duplicate with nothing before it to duplicate is sent as the valid transaction it is."""
    return Template(
        template.fields, template.seconds_ago, template.utc_offset_minutes, "valid", None, _plain
    )
