"""The hot path's verdict encoder writes exactly the bytes of the pydantic Verdict model."""

from __future__ import annotations

import itertools
import json
import random
import string
from datetime import UTC, datetime, timedelta, timezone

from stream_app.features import FEATURE_NAMES
from stream_app.schemas import Reason, Verdict
from stream_app.verdicts import VerdictRow, encode_verdicts

# Text pydantic and the stdlib might escape differently: quotes, backslashes, every control
# character, DEL, line and paragraph separators, non-ASCII of every UTF-8 length.
AWKWARD = '"\\/\x7f\u2028\u2029\u00e9\u20ac\U0001f600' + "".join(map(chr, range(32)))


def awkward_text(rng: random.Random) -> str:
    alphabet = string.ascii_letters + string.digits + AWKWARD
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))


def varied_float(rng: random.Random, finite: bool = False) -> float:
    """Floats across every magnitude, both signs, the exponent boundaries and non-finite."""
    kind = rng.randrange(5 if finite else 6)
    if kind == 0:
        return rng.choice([0.0, -0.0, 1e-4, 9.999e-5, 1e-6, 1e-7, 1e15, 1e16, 9999999999999998.0])
    if kind == 5:
        return rng.choice([float("nan"), float("inf"), float("-inf")])
    if kind == 2:
        return float(rng.randint(-(10**7), 10**7))
    value = rng.random() * 10.0 ** rng.randint(-12, 22)
    return -value if kind == 3 else value


def unit_float(rng: random.Random) -> float:
    return rng.choice([0.0, 1.0, rng.random(), rng.random() * 10.0 ** rng.randint(-12, -1)])


def varied_time(rng: random.Random) -> datetime:
    moment = datetime(1, 1, 2, tzinfo=UTC) + timedelta(
        seconds=rng.randrange(3_000 * 365 * 86_400),
        microseconds=rng.choice([0, 1, 500_000, rng.randrange(1_000_000)]),
    )
    if rng.random() < 0.1:  # not UTC: the encoder must hand these to pydantic
        return moment.astimezone(timezone(timedelta(hours=rng.randint(-12, 12))))
    return moment


def varied_reason(rng: random.Random, finite: bool) -> Reason:
    value: float | str | None = rng.choice(
        [None, awkward_text(rng), varied_float(rng, finite), float(rng.randint(0, 99))]
    )
    contribution = rng.choice([None, varied_float(rng, finite), round(rng.random(), 6)])
    return Reason(code=awkward_text(rng), value=value, contribution=contribution)


def latency(rng: random.Random) -> float:
    # never nan, which is no valid latency (ge=0 refuses it)
    return abs(varied_float(rng, finite=True)) if rng.random() < 0.2 else rng.random() * 500


def varied_row(rng: random.Random, finite: bool = False) -> VerdictRow:
    shadow = rng.random() < 0.3
    return VerdictRow(
        transaction_id=awkward_text(rng),
        customer_id=awkward_text(rng),
        score=unit_float(rng),
        decision=rng.choice(["approve", "review", "block"]),
        model_name=awkward_text(rng),
        model_version=awkward_text(rng),
        reasons=tuple(varied_reason(rng, finite) for _ in range(rng.randint(0, 4))),
        event_time=varied_time(rng),
        scored_at=varied_time(rng),
        latency_ms=latency(rng),
        feature_values=None
        if rng.random() < 0.1
        else [
            varied_float(rng, finite) if rng.random() < 0.2 else rng.random() for _ in FEATURE_NAMES
        ],
        shadow_score=unit_float(rng) if shadow else None,
        shadow_model_version=awkward_text(rng) if shadow else None,
        rules_version=awkward_text(rng) if rng.random() < 0.8 else None,
        shadow_rule_hits=tuple(awkward_text(rng) for _ in range(rng.choice([0, 0, 1, 3]))),
    )


def test_every_byte_matches_the_pydantic_model_over_many_varied_verdicts() -> None:
    rng = random.Random(18)  # noqa: S311 - reproducible test data
    for _ in range(5_000):
        row = varied_row(rng)
        assert row.to_bytes() == row.to_model().to_bytes(), row


def test_the_bytes_read_back_as_the_same_verdict() -> None:
    rng = random.Random(7)  # noqa: S311 - reproducible test data
    for _ in range(500):  # finite: pydantic writes nan and inf as null, which it cannot read
        row = varied_row(rng, finite=True)
        decoded = Verdict.model_validate_json(row.to_bytes())
        assert decoded.to_bytes() == row.to_model().to_bytes()
        assert json.loads(row.to_bytes())["transaction_id"] == row.transaction_id


def plain_text(rng: random.Random) -> str:
    """Text the batch encoder writes itself (no escaping needed), with JSON's and %'s own
    punctuation that must come through as it is."""
    alphabet = string.ascii_letters + string.digits + " %-_.:,{}[]@"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))


def plain_row(rng: random.Random) -> VerdictRow:
    """A verdict whose text is all plain, so the batch encoder's own path writes it; numbers,
    times, reasons and every optional-field shape as varied as :func:`varied_row`'s."""
    row = varied_row(rng)
    row.transaction_id, row.customer_id = plain_text(rng), plain_text(rng)
    row.model_name, row.model_version = plain_text(rng), plain_text(rng)
    if row.shadow_model_version is not None or rng.random() < 0.2:
        row.shadow_model_version = plain_text(rng)
    if row.shadow_score is None and rng.random() < 0.2:
        row.shadow_score = unit_float(rng)
    if row.rules_version is not None:
        row.rules_version = plain_text(rng)
    return row


def test_the_batch_encoder_writes_every_byte_of_the_pydantic_model() -> None:
    rng = random.Random(1818)  # noqa: S311 - reproducible test data
    for _ in range(100):
        # Mostly plain rows (the encoder's own path) with some that need escaping mixed in,
        # which it hands to the per-row path: both must land in their place in the batch.
        rows = [
            varied_row(rng) if rng.random() < 0.1 else plain_row(rng)
            for _ in range(rng.choice([0, 1, 2, 50, 200]))
        ]
        encoded = encode_verdicts(rows)
        assert len(encoded) == len(rows)
        for row, payload in zip(rows, encoded, strict=True):
            assert payload == row.to_model().to_bytes(), row


def test_the_batch_encoder_covers_every_optional_field_shape() -> None:
    rng = random.Random(2)  # noqa: S311 - reproducible test data
    rows = []
    for features, shadow_score, shadow_version, rules in itertools.product([False, True], repeat=4):
        row = plain_row(rng)
        row.feature_values = [varied_float(rng) for _ in FEATURE_NAMES] if features else None
        row.shadow_score = unit_float(rng) if shadow_score else None
        row.shadow_model_version = plain_text(rng) if shadow_version else None
        row.rules_version = plain_text(rng) if rules else None
        rows.append(row)
    for row, payload in zip(rows, encode_verdicts(rows), strict=True):
        assert payload == row.to_model().to_bytes(), row


def test_the_batch_encoder_passes_rows_that_need_escaping_to_pydantic() -> None:
    rng = random.Random(3)  # noqa: S311 - reproducible test data
    rows = [plain_row(rng) for _ in range(len(AWKWARD) * 4)]
    for index, (row, awkward) in enumerate(zip(rows, AWKWARD * 4, strict=True)):
        field = ("transaction_id", "customer_id", "model_name", "model_version")[index % 4]
        setattr(row, field, getattr(row, field) + awkward)
    for row, payload in zip(rows, encode_verdicts(rows), strict=True):
        assert payload == row.to_model().to_bytes(), row
