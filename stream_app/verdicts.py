"""Verdicts as the hot path holds them: plain rows, encoded straight to JSON bytes.

The wire schema stays :class:`stream_app.schemas.Verdict`. Building one pydantic object per
verdict and dumping it was about a fifth of the core's time (bench/bench_core.py), so the core
keeps each verdict as a :class:`VerdictRow` and writes the bytes the model's ``to_bytes``
(``model_dump_json(exclude_none=True)``) would write, field by field. Exact by construction
where the two agree (strings via the stdlib's C JSON string encoder, which escapes as
pydantic does; floats whose ``repr`` has no exponent; UTC datetimes), and handed to pydantic
for just that value where they may not (exponent or non-finite floats, other time zones).
tests/unit/test_verdicts.py holds every byte to the model's output over many varied verdicts.
"""

from __future__ import annotations

import json.encoder
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import TypeAdapter

from stream_app.features import FEATURE_NAMES
from stream_app.schemas import SCHEMA_VERSION, Decision, Reason, Verdict

_FLOAT: TypeAdapter[float] = TypeAdapter(float)
_DATETIME: TypeAdapter[datetime] = TypeAdapter(datetime)
# The C encoder behind json.dumps(ensure_ascii=False): non-ASCII kept, control characters
# escaped as \b \t \n \f \r or \u00xx (lowercase), exactly as pydantic (serde_json) does.
json_string = json.encoder.encode_basestring
# One %s per feature, names in FEATURE_NAMES order (plain identifiers: no escaping needed).
_FEATURES = ",".join(f'"{name}":%s' for name in FEATURE_NAMES)


def json_float(value: float) -> str:
    """A float as pydantic writes it. ``repr`` agrees with pydantic unless it uses an exponent
    (pydantic writes 3e-05 as 0.00003 and 2.5e-07 as 2.5e-7) or is nan/inf (pydantic: null)."""
    text = repr(float(value))
    if "e" in text or "n" in text:
        return _FLOAT.dump_json(value).decode()
    return text


def json_datetime(value: datetime) -> str:
    if value.tzinfo is UTC:  # isoformat's +00:00 is pydantic's Z; microseconds alike
        return f'"{value.isoformat()[:-6]}Z"'
    return _DATETIME.dump_json(value).decode()


def json_reason(reason: Reason) -> str:
    parts = [f'"code":{json_string(reason.code)}']
    if reason.value is not None:
        value = reason.value
        text = json_string(value) if isinstance(value, str) else json_float(value)
        parts.append(f'"value":{text}')
    if reason.contribution is not None:
        parts.append(f'"contribution":{json_float(reason.contribution)}')
    return "{" + ",".join(parts) + "}"


def json_features(values: list[float]) -> str:
    texts = ",".join(map(repr, values))
    if "e" in texts or "n" in texts:  # some value needs pydantic's own form
        return _FEATURES % tuple(json_float(value) for value in values)
    return _FEATURES % tuple(texts.split(","))


# Not frozen: a frozen dataclass sets each field through object.__setattr__, measurably slower
# for one object per transaction. Nothing mutates a row after the core built it.
@dataclass(slots=True)
class VerdictRow:
    """One verdict, with the attributes of :class:`Verdict`; ``to_model`` gives the model."""

    transaction_id: str
    customer_id: str
    score: float
    decision: Decision
    model_name: str
    model_version: str
    reasons: tuple[Reason, ...]
    event_time: datetime
    scored_at: datetime
    latency_ms: float
    feature_values: list[float] | None  # in FEATURE_NAMES order
    shadow_score: float | None = None
    shadow_model_version: str | None = None

    @property
    def features(self) -> dict[str, float] | None:
        if self.feature_values is None:
            return None
        return dict(zip(FEATURE_NAMES, self.feature_values, strict=True))

    def to_model(self) -> Verdict:
        return Verdict(
            schema_version=SCHEMA_VERSION,
            transaction_id=self.transaction_id,
            customer_id=self.customer_id,
            score=self.score,
            decision=self.decision,
            model_name=self.model_name,
            model_version=self.model_version,
            reasons=self.reasons,
            event_time=self.event_time,
            scored_at=self.scored_at,
            latency_ms=self.latency_ms,
            features=self.features,
            shadow_score=self.shadow_score,
            shadow_model_version=self.shadow_model_version,
        )

    def to_bytes(self) -> bytes:
        """The bytes of ``self.to_model().to_bytes()``, without the model."""
        parts = [
            f'{{"schema_version":{SCHEMA_VERSION}',
            f'"transaction_id":{json_string(self.transaction_id)}',
            f'"customer_id":{json_string(self.customer_id)}',
            f'"score":{json_float(self.score)}',
            f'"decision":"{self.decision}"',
            f'"model_name":{json_string(self.model_name)}',
            f'"model_version":{json_string(self.model_version)}',
            f'"reasons":[{",".join(map(json_reason, self.reasons))}]',
            f'"event_time":{json_datetime(self.event_time)}',
            f'"scored_at":{json_datetime(self.scored_at)}',
            f'"latency_ms":{json_float(self.latency_ms)}',
        ]
        if self.feature_values is not None:
            parts.append(f'"features":{{{json_features(self.feature_values)}}}')
        if self.shadow_score is not None:
            parts.append(f'"shadow_score":{json_float(self.shadow_score)}')
        if self.shadow_model_version is not None:
            parts.append(f'"shadow_model_version":{json_string(self.shadow_model_version)}')
        return (",".join(parts) + "}").encode()
