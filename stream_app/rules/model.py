"""Rules as data: one pydantic model per rule kind, as they travel on the ``fraud-rules`` topic.

A message's key is its ``rule_id`` and its value one of these models as plain JSON, so
kafka-console-producer and kcat can manage rules; a null value (tombstone) deletes the rule.
``kind`` tells the models apart. Anything that does not validate is a :class:`RuleRejection`
whose reason (a small fixed vocabulary: it is a metric label) goes to the dead-letter topic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter, ValidationError, field_validator, model_validator

from stream_app.features import FEATURE_NAMES
from stream_app.schemas import Decision, TransactionIdentifier, TransactionText, WireModel
from stream_app.validation import classify_validation_error

RULE_SCHEMA_VERSION = 1
MAX_RULE_BYTES = 1024 * 1024  # a deny-list of some thousands of ids fits; a runaway does not
MAX_LIST_VALUES = 100_000

Mode = Literal["active", "shadow"]
ListField = Literal["customer_id", "device_id", "merchant_id", "geo_location"]
RuleRejectionReason = Literal[
    "oversized", "invalid_encoding", "invalid_json", "schema_violation", "key_mismatch"
]
RuleId = Annotated[TransactionIdentifier, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$")]


class RuleBase(WireModel):
    """What every rule has: its id (the message key), whether it acts, and why it exists."""

    schema_version: int = Field(
        default=RULE_SCHEMA_VERSION, strict=True, ge=1, le=RULE_SCHEMA_VERSION
    )
    rule_id: RuleId
    mode: Mode = "active"
    description: str | None = Field(default=None, max_length=500)


class ListRule(RuleBase):
    field: ListField
    values: tuple[TransactionIdentifier, ...] = Field(min_length=1, max_length=MAX_LIST_VALUES)

    @field_validator("values")
    @classmethod
    def _sorted_unique(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        # One spelling per rule, whatever order it was written in: rules_version hashes it.
        return tuple(sorted(set(values)))


class DenyListRule(ListRule):
    """A transaction whose ``field`` is one of ``values`` is escalated to ``action``."""

    kind: Literal["deny_list"]
    action: Decision = "block"


class AllowListRule(ListRule):
    """A transaction whose ``field`` is one of ``values`` has the model's decision capped at
    ``action`` (e.g. ``review`` for a trusted device); escalating rules still win."""

    kind: Literal["allow_list"]
    action: Decision = "approve"


class AmountLimitRule(RuleBase):
    """An amount above ``usd_above`` US dollars (in ``merchant_category`` only, if given) is
    escalated to ``action``."""

    kind: Literal["amount_limit"]
    usd_above: float = Field(gt=0, allow_inf_nan=False)
    merchant_category: TransactionText | None = None
    action: Decision = "review"


class VelocityRule(RuleBase):
    """A transaction whose online feature ``feature`` is above ``above`` is escalated to
    ``action`` (e.g. ``cust_txn_count_1h`` above 10)."""

    kind: Literal["velocity"]
    feature: str
    above: float = Field(allow_inf_nan=False)
    action: Decision = "review"

    @field_validator("feature")
    @classmethod
    def _known_feature(cls, value: str) -> str:
        if value not in FEATURE_NAMES:
            raise ValueError(f"not a feature the worker computes: {value!r}")
        return value


class ScoreBandRule(RuleBase):
    """Overrides the model's review and block thresholds (either or both)."""

    kind: Literal["score_band"]
    review: float | None = Field(default=None, ge=0, le=1)
    block: float | None = Field(default=None, ge=0, le=1)

    @model_validator(mode="after")
    def _a_band(self) -> ScoreBandRule:
        if self.review is None and self.block is None:
            raise ValueError("a score band sets review, block or both")
        if self.review is not None and self.block is not None and self.review > self.block:
            raise ValueError("need review <= block")
        return self


Rule = Annotated[
    DenyListRule | AllowListRule | AmountLimitRule | VelocityRule | ScoreBandRule,
    Field(discriminator="kind"),
]
RULE_ADAPTER: TypeAdapter[Rule] = TypeAdapter(Rule)
# Which kinds raise a decision to their action, in the order their hits are listed as reasons.
ESCALATING_KINDS = ("deny_list", "amount_limit", "velocity")


@dataclass(frozen=True, slots=True)
class RuleRejection:
    reason: RuleRejectionReason
    error: str


def parse_rule(key: bytes | None, value: bytes) -> Rule | RuleRejection:
    """Validate one rule message; its key, when there is one, must be its ``rule_id``."""
    if len(value) > MAX_RULE_BYTES:
        return RuleRejection("oversized", f"rule of {len(value)} bytes")
    try:
        rule = RULE_ADAPTER.validate_json(value)
    except ValidationError as exc:
        return _classify(value, exc)
    if key is not None and key != rule.rule_id.encode("utf-8"):
        shown = key.decode("utf-8", errors="replace")[:128]
        return RuleRejection("key_mismatch", f"key {shown!r} is not rule_id {rule.rule_id!r}")
    return rule


def _classify(value: bytes, exc: ValidationError) -> RuleRejection:
    return RuleRejection(*classify_validation_error(value, exc))
