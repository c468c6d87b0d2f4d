"""Verdicts as the hot path holds them: plain rows, encoded by pydantic without a model each.

The wire schema stays :class:`stream_app.schemas.Verdict`. Building one pydantic model per
verdict (validating its features dict) and dumping it was about a fifth of the core's time,
so the core keeps each verdict as a :class:`VerdictRow` and hands a plain dict to a
``TypeAdapter`` over a TypedDict with the model's fields, in the model's order, with the same
types: pydantic's Rust serializer then writes the bytes ``Verdict.to_bytes`` writes (same float,
datetime and string encoders) without validating or building anything. A hand-written
Python encoder was tried first and measured half as fast as the model (float repr per value).
tests/unit/test_verdicts.py holds every byte to the model's output over many varied verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NotRequired

from pydantic import TypeAdapter
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from stream_app.features import FEATURE_NAMES
from stream_app.schemas import SCHEMA_VERSION, Decision, Reason, Verdict


class VerdictFields(TypedDict):
    """:class:`Verdict`'s fields in its order; optional ones left out when None."""

    schema_version: int
    transaction_id: str
    customer_id: str
    score: float
    decision: str
    model_name: str
    model_version: str
    reasons: tuple[Reason, ...]
    event_time: datetime
    scored_at: datetime
    latency_ms: float
    features: NotRequired[dict[str, float]]
    shadow_score: NotRequired[float]
    shadow_model_version: NotRequired[str]
    rules_version: NotRequired[str]
    shadow_rule_hits: NotRequired[tuple[str, ...]]  # always set, but after the optional ones


_ENCODER: TypeAdapter[VerdictFields] = TypeAdapter(VerdictFields)


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
    rules_version: str | None = None
    shadow_rule_hits: tuple[str, ...] = ()

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
            rules_version=self.rules_version,
            shadow_rule_hits=self.shadow_rule_hits,
        )

    def to_bytes(self) -> bytes:
        """The bytes of ``self.to_model().to_bytes()``, without the model."""
        fields: VerdictFields = {
            "schema_version": SCHEMA_VERSION,
            "transaction_id": self.transaction_id,
            "customer_id": self.customer_id,
            "score": self.score,
            "decision": self.decision,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "reasons": self.reasons,
            "event_time": self.event_time,
            "scored_at": self.scored_at,
            "latency_ms": self.latency_ms,
        }
        if self.feature_values is not None:
            fields["features"] = dict(zip(FEATURE_NAMES, self.feature_values, strict=True))
        if self.shadow_score is not None:
            fields["shadow_score"] = self.shadow_score
        if self.shadow_model_version is not None:
            fields["shadow_model_version"] = self.shadow_model_version
        if self.rules_version is not None:
            fields["rules_version"] = self.rules_version
        fields["shadow_rule_hits"] = self.shadow_rule_hits  # last: the serializer keeps dict order
        return _ENCODER.dump_json(fields, exclude_none=True)  # as WireModel.to_bytes
