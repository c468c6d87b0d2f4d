"""Wire schemas: one pydantic model per topic, shared by producers, the worker and tests.

Messages are plain UTF-8 JSON objects with no framework envelope, so Kafka's console tools and
kcat read and write them as they are. Each carries ``schema_version`` so that consumers can tell
old messages from new ones when a schema grows.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

SCHEMA_VERSION = 1

# Amounts outside this range are not card payments we score; they go to the dead-letter topic.
MAX_AMOUNT = 1_000_000.0
# Event times this far from "now" are clock errors or replays of ancient data, not live traffic.
MAX_EVENT_AGE = timedelta(days=3650)
MAX_EVENT_LEAD = timedelta(days=1)

Identifier = Annotated[str, Field(min_length=1, max_length=128)]
ShortText = Annotated[str, Field(min_length=1, max_length=64)]
# A date and a time of day, as ISO 8601 writes them. Checked before pydantic parses the value,
# which would otherwise also take epoch numbers (seconds or milliseconds? it guesses) and bare
# dates (midnight in which zone?) as datetimes.
_ISO_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _printable(value: str) -> str:
    """Ids and codes end up in keys, logs and reason codes: no control characters (a newline
    would forge a log line), no invisible format characters, not blank."""
    if not value.isprintable() or not value.strip():
        raise ValueError("must be printable text, not blank")
    return value


# Transaction text fields: bounded (a 64 KiB message cap alone would allow 60,000-character
# ids held in every customer's state) and printable.
TransactionIdentifier = Annotated[Identifier, AfterValidator(_printable)]
TransactionText = Annotated[ShortText, AfterValidator(_printable)]
Decision = Literal["approve", "review", "block"]


class WireModel(BaseModel):
    """Base for every message: strict about unknown fields so typos are caught, not ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode("utf-8")


def _utc(value: datetime) -> datetime:
    """Naive timestamps are taken as UTC: the original API sent ISO strings with a trailing Z."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:  # 0001-01-01T00:00+01:00 has no UTC equivalent
        # pydantic turns ValueError into a validation error; an OverflowError would escape it.
        raise ValueError("date and time out of range in UTC") from exc


class Transaction(WireModel):
    """A card or payment transaction on ``transactions``, keyed by ``customer_id``.

    Strict about types where pydantic would otherwise guess: ``"amount": "12.5"`` or ``true``
    and ``"schema_version": "1"`` are producer bugs to surface, not values to coerce.
    """

    schema_version: int = Field(default=SCHEMA_VERSION, strict=True, ge=1, le=SCHEMA_VERSION)
    transaction_id: TransactionIdentifier
    customer_id: TransactionIdentifier
    amount: float = Field(strict=True, gt=0, le=MAX_AMOUNT)
    merchant_category: TransactionText
    transaction_type: TransactionText
    device_id: TransactionIdentifier
    geo_location: TransactionText = Field(description="ISO 3166-2 region code such as IN-MH")
    timestamp: datetime
    merchant_id: TransactionIdentifier | None = None
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] | None = None

    @field_validator("amount")
    @classmethod
    def _finite_amount(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("amount must be a finite number")
        return value

    @field_validator("timestamp", mode="before")
    @classmethod
    def _iso_timestamp(cls, value: Any) -> Any:
        if isinstance(value, datetime) or (isinstance(value, str) and _ISO_DATE_TIME.match(value)):
            return value
        raise ValueError("must be an ISO 8601 date and time, such as 2024-11-01T10:00:00Z")

    @field_validator("timestamp")
    @classmethod
    def _utc_timestamp(cls, value: datetime) -> datetime:
        return _utc(value)


class Reason(WireModel):
    """Why a verdict came out as it did: a feature's contribution or a named rule."""

    code: str
    value: float | str | None = None
    contribution: float | None = None


class Verdict(WireModel):
    """The worker's decision on one transaction.

    Every verdict goes to ``fraud-scores``; review and block verdicts also to ``fraud-alerts``.
    """

    schema_version: int = SCHEMA_VERSION
    transaction_id: str
    customer_id: str
    score: float = Field(ge=0, le=1)
    decision: Decision
    model_name: str
    model_version: str
    reasons: tuple[Reason, ...] = ()
    event_time: datetime
    scored_at: datetime
    latency_ms: float = Field(
        ge=0, description="Kafka record timestamp of the transaction to the verdict."
    )
    features: dict[str, float] | None = None
    shadow_score: float | None = Field(default=None, ge=0, le=1)
    shadow_model_version: str | None = None
    rules_version: str | None = Field(
        default=None,
        description="Version (short hash) of the rule set the verdict was decided with.",
    )
    shadow_rule_hits: tuple[str, ...] = Field(
        default=(), description="Ids of the shadow rules that would have fired; never acted on."
    )


class Label(WireModel):
    """Delayed ground truth for a transaction on ``transaction-labels`` (chargeback, analyst)."""

    schema_version: int = SCHEMA_VERSION
    transaction_id: Identifier
    is_fraud: bool
    labeled_at: datetime
    source: ShortText = "chargeback"
    customer_id: Identifier | None = None
    merchant_id: Identifier | None = None
    scenario: ShortText | None = None

    @field_validator("labeled_at")
    @classmethod
    def _utc_labeled_at(cls, value: datetime) -> datetime:
        return _utc(value)


class DeadLetter(WireModel):
    """A message the worker could not use, where it came from and why (``transactions-dlq``)."""

    schema_version: int = SCHEMA_VERSION
    reason: str = Field(description="Stable machine-readable cause, e.g. invalid_json")
    error: str = Field(description="Human-readable detail, truncated")
    source_topic: str
    partition: int
    offset: int
    key: str | None = None
    original_value: str = Field(description="The original bytes, base64-encoded")
    failed_at: datetime


class ModelUpdate(WireModel):
    """A model was promoted (``model-updates``): workers load it and swap between batches."""

    schema_version: int = SCHEMA_VERSION
    model_name: str
    model_version: str
    alias: str = "champion"
    model_uri: str = Field(description="models:/<name>/<version>, or a local folder path")
    promoted_at: datetime
    run_id: str | None = None


class RetrainRequest(WireModel):
    """Drift asked for a new model (``retrain-requests``); handled once per request_id."""

    schema_version: int = SCHEMA_VERSION
    request_id: Identifier
    requested_at: datetime
    window_start: datetime
    window_end: datetime
    drifted_features: tuple[str, ...] = ()
    drift_share: float | None = None
    report_uri: str | None = None
