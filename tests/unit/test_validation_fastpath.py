"""The fast path of parse_transaction gives exactly what the pydantic model gives.

parse_transaction accepts canonical messages without running pydantic's validators
(stream_app/validation.py); parse_with_pydantic is the reference. Every message here, good and
bad, must come out of both the same: the same Transaction (values, their types, the timestamp's
zone, the fields set) or the same Rejection (reason and detail).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

from pydantic import BaseModel

from producers.simulator import SimulatorConfig, iter_events
from stream_app.schemas import Transaction
from stream_app.validation import (
    _CANONICAL_TRANSACTION,
    Rejection,
    _canonical_transaction,
    parse_transaction,
    parse_transactions,
    parse_with_pydantic,
)
from tests.malformed_corpus import corpus, valid_payload
from tests.malformed_generator import collect_templates, render_stream

NOW = datetime(2024, 11, 1, 12, tzinfo=UTC)


def assert_same_outcome(value: bytes, now: datetime = NOW) -> bool:
    """Both paths agree on ``value``; True when the fast path itself accepted it."""
    fast, reference = parse_transaction(value, now), parse_with_pydantic(value, now)
    return assert_equal_outcomes(value, fast, reference)


def assert_equal_outcomes(
    value: bytes | None, fast: Transaction | Rejection, reference: Transaction | Rejection
) -> bool:
    """``fast`` is ``reference`` field by field; True when the fast path accepted ``value``."""
    if isinstance(reference, Rejection):
        assert fast == reference, value
        return False
    assert isinstance(fast, Transaction), (value, fast)
    assert fast == reference, value
    assert list(fast.__dict__.items()) == list(reference.__dict__.items()), value
    for name, expected in reference.__dict__.items():
        assert type(fast.__dict__[name]) is type(expected), (name, value)
    assert fast.timestamp.tzinfo is reference.timestamp.tzinfo, value
    assert fast.model_fields_set == reference.model_fields_set, value
    assert fast.__pydantic_extra__ == reference.__pydantic_extra__, value
    assert fast.__pydantic_private__ == reference.__pydantic_private__, value
    assert fast.to_bytes() == reference.to_bytes(), value
    return value is not None and _canonical_transaction(value) is not None


def simulated(count: int) -> list[Transaction]:
    config = SimulatorConfig(seed=7, n_customers=2_000, n_merchants=500)
    events = iter_events(config, max_transactions=count)
    return [event for event in events if isinstance(event, Transaction)]


def test_simulated_transactions_take_the_fast_path_with_identical_values() -> None:
    transactions = simulated(5_000)
    assert len(transactions) >= 4_000
    now = max(transaction.timestamp for transaction in transactions)  # all in range
    accepted = [assert_same_outcome(each.to_bytes(), now) for each in transactions]
    assert all(accepted), "a simulated transaction fell back to pydantic"


def test_the_malformed_corpus_is_rejected_alike() -> None:
    for case in corpus(NOW):
        assert_same_outcome(case.value)


def test_generated_mutations_come_out_alike() -> None:
    cases = render_stream(collect_templates(3_000), NOW, "fastpath")
    fast = sum(assert_same_outcome(case.value) for case in cases)
    # most generated valid messages carry non-ASCII text or other spellings (pydantic decides)
    assert fast > 20, "the generated valid messages never reached the fast path"


# --- variants of one canonical message, around every edge the fast path's regex draws


def canonical(**changes: object) -> dict[str, object]:
    payload: dict[str, object] = {"schema_version": 1, **valid_payload(NOW, "t-1", "c-1")}
    payload.update(changes)
    return {name: value for name, value in payload.items() if value is not ...}


def compact(payload: dict[str, object]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def amount_literals(rng: random.Random) -> Iterator[str]:
    yield from ["0", "0.0", "1", "1500", "1e6", "1000000", "1000000.0000001", "1E-400", "1e400"]
    yield from ["0.1", "00.5", "1.", ".5", "-1", "+1", "1e+3", "2.5E-2", "123456.789e-3"]
    for _ in range(3_000):
        mantissa = str(rng.randrange(1, 10 ** rng.randint(1, 25)))
        point = rng.randint(0, len(mantissa))
        text = mantissa[:point] + ("." + mantissa[point:] if point < len(mantissa) else "")
        yield text  # leading zeros included: both paths must refuse them alike
        yield repr(rng.uniform(0, 1_000_001))


def test_amounts_parse_to_the_same_float() -> None:
    rng = random.Random(1)  # noqa: S311 - reproducible test data
    template = compact(canonical(amount=123.0))
    for literal in amount_literals(rng):
        assert_same_outcome(template.replace(b'"amount":123.0', f'"amount":{literal}'.encode()))


def timestamps(rng: random.Random) -> Iterator[str]:
    yield from ["2024-11-01T10:00:00Z", "2024-11-01T10:00Z", "2024-11-01 10:00:00Z"]
    yield from ["2024-11-01t10:00:00z", "2024-11-01T10:00:00", "2024-11-01T10:00:00+0530"]
    yield from ["2024-02-30T10:00:00Z", "2024-11-01T24:00:00Z", "2024-11-01T23:59:60Z"]
    yield from ["2024-11-01T10:00:00.1234567Z", "2024-11-01T10:00:00.Z", "0001-01-01T00:00:00Z"]
    yield from ["2024-11-01T10:00:00+24:00", "2024-11-01T10:00:00-00:00"]
    yield from ["2024-11-01T10:00:00+05:60", "2024-11-01T10:00:00.000001+23:59"]
    for _ in range(3_000):
        moment = NOW - timedelta(seconds=rng.uniform(-2 * 86_400, 5 * 86_400))
        if rng.random() < 0.5:
            moment = moment.replace(microsecond=0)
        zone = timezone(timedelta(minutes=rng.randint(-23 * 60 - 59, 23 * 60 + 59)))
        text = moment.astimezone(zone).isoformat()
        yield text.replace("+00:00", "Z") if rng.random() < 0.5 else text
        digits = rng.randint(1, 6)  # fractions shorter than isoformat writes
        yield f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond:06d}"[: 20 + digits] + "Z"


def test_timestamps_parse_to_the_same_instant_and_zone() -> None:
    rng = random.Random(2)  # noqa: S311 - reproducible test data
    for text in timestamps(rng):
        assert_same_outcome(compact(canonical(timestamp=text)))


def test_text_fields_agree_at_every_bound() -> None:
    texts = ["a", " a ", " ", "   ", "", "a" * 64, "a" * 65, "a" * 128, "a" * 129, 'q"uote']
    texts += ["back\\slash", "tab\there", "new\nline", "é", "\u200b", "\x7f", "~!#[]{}", "\u3000"]
    # every text field at its length bounds: a schema that tightens one fails here
    text_fields = ["transaction_id", "customer_id", "merchant_category", "transaction_type"]
    for field in [*text_fields, "device_id", "geo_location", "merchant_id"]:
        for text in texts:
            assert_same_outcome(compact(canonical(**{field: text})))
    for currency in ("INR", "inr", "IN", "INRR", "IN1", None, ...):
        assert_same_outcome(compact(canonical(currency=currency)))


def test_shapes_around_the_canonical_one_agree() -> None:
    base = canonical()
    for version in (1, 2, 0, True, 1.0, "1", None, ...):
        assert_same_outcome(compact(canonical(schema_version=version)))
    for missing in base:
        assert_same_outcome(compact({k: v for k, v in base.items() if k != missing}))
    assert_same_outcome(compact(canonical(merchant_id=None)))
    assert_same_outcome(compact(dict(reversed(base.items()))))
    assert_same_outcome(compact({**base, "extra": 1}))
    assert_same_outcome(compact(base)[:-1] + b',"customer_id":"c-2"}')  # a duplicate key
    assert_same_outcome(json.dumps(base).encode())  # ", " and ": " separators
    assert_same_outcome(json.dumps(base, indent=2).encode())
    assert_same_outcome(b" \t\r\n" + compact(base) + b"\n ")
    assert_same_outcome(compact(base) + b"x")
    assert_same_outcome(compact(base).replace(b'"t-1"', b'"t\\u002d1"'))  # an escape


def test_the_fast_path_reads_the_fields_in_the_models_order() -> None:
    assert list(_CANONICAL_TRANSACTION.groupindex) == list(Transaction.model_fields)


def test_built_transactions_carry_the_slots_pydantic_models_have() -> None:
    """The fast path fills a Transaction's four slots itself, as model_construct does; a
    pydantic upgrade that adds a slot, a private attribute or a post-init hook must fail here."""
    assert BaseModel.__slots__ == (
        "__dict__",
        "__pydantic_fields_set__",
        "__pydantic_extra__",
        "__pydantic_private__",
    )
    assert not Transaction.__private_attributes__
    assert Transaction.__pydantic_post_init__ is None
    assert not Transaction.__pydantic_root_model__
    built = _canonical_transaction(compact(canonical()))
    assert isinstance(built, Transaction)
    constructed = Transaction.model_construct(**built.__dict__)
    assert list(built.__dict__.items()) == list(constructed.__dict__.items())


# --- parse_transactions: a whole batch at once, each message's outcome its own


def mixed_values(count: int) -> list[bytes | None]:
    """Simulated (good) messages shuffled among the corpus' and the generator's (mostly bad)."""
    rng = random.Random(3)  # noqa: S311 - reproducible test data
    good = [each.to_bytes() for each in simulated(count)]
    bad = [case.value for case in corpus(NOW)]
    bad += [case.value for case in render_stream(collect_templates(count), NOW, "batch")]
    values: list[bytes | None] = [*good, *bad, None, b"", b"\n", good[0] + b"\n" + good[1]]
    rng.shuffle(values)
    return values


def test_a_batch_gets_each_message_its_own_outcome() -> None:
    values = mixed_values(2_000)
    now = NOW + timedelta(days=400)  # the simulated history (2025) and NOW both in range
    outcomes = parse_transactions(values, now)
    assert len(outcomes) == len(values)
    fast = sum(
        assert_equal_outcomes(value, outcome, parse_with_pydantic(value, now))
        for value, outcome in zip(values, outcomes, strict=True)
    )
    assert fast >= 1_500, "the batch's good messages did not take the fast path"
    assert any(isinstance(outcome, Rejection) for outcome in outcomes)


def test_one_bad_message_does_not_cost_the_good_ones_of_its_batch() -> None:
    good = [each.to_bytes() for each in simulated(50)]
    now = max(Transaction.model_validate_json(value).timestamp for value in good)
    for bad in [b"{", b"\xff", None, good[0][:-1], good[0].replace(b"2025-", b"1970-")]:
        for position in (0, 20, len(good)):
            values = [*good[:position], bad, *good[position:]]
            outcomes = parse_transactions(values, now)
            assert isinstance(outcomes[position], Rejection), (bad, position)
            assert outcomes[position] == parse_with_pydantic(bad, now)
            rest = outcomes[:position] + outcomes[position + 1 :]
            assert rest == [parse_with_pydantic(value, now) for value in good]


def test_an_empty_batch_has_no_outcomes() -> None:
    assert parse_transactions([], NOW) == []
