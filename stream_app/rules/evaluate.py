"""Rules applied to a scored batch: the final decisions, the rule reasons, the shadow hits.

How a row's decision comes out, in order:

1. The model's score is banded by the thresholds, or by the active ``score_band`` rules'
   thresholds where they set one (the lowest, if several do: the strictest band wins).
2. Active ``allow_list`` hits cap that decision at their action (the lowest, if several).
3. Active ``deny_list``, ``amount_limit`` and ``velocity`` hits raise it to their action: they
   never relax a decision, and they win over an allow-list.

Every active hit is named in the row's reasons as ``rule:<rule_id>`` (escalating kinds first,
then allow-lists, then score bands; by id within a kind), before the model's own reasons. A
``shadow`` rule is evaluated the same way but only listed in the row's shadow hits. A score band
"hits" a row when it changes the row's decision.

Pure and batch-wide: numeric rules compare whole feature columns at once, list rules walk one
column of identifiers per field, and an empty rule set costs one ``decide`` call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from stream_app.features import FEATURE_NAMES
from stream_app.rules.model import (
    ESCALATING_KINDS,
    AllowListRule,
    AmountLimitRule,
    DenyListRule,
    Rule,
    ScoreBandRule,
    VelocityRule,
)
from stream_app.rules.ruleset import RuleSet
from stream_app.schemas import Decision, Reason, Transaction
from stream_app.scoring import Thresholds, decide

AMOUNT_USD = FEATURE_NAMES.index("amount_usd")
BY_SEVERITY: tuple[Decision, ...] = ("approve", "review", "block")
SEVERITY: dict[Decision, int] = {decision: rank for rank, decision in enumerate(BY_SEVERITY)}
NO_REASONS: tuple[Reason, ...] = ()
NO_HITS: tuple[str, ...] = ()
KIND_ORDER = {kind: rank for rank, kind in enumerate((*ESCALATING_KINDS, "allow_list"))}


@dataclass(frozen=True)
class RuleOutcome:
    """Per row of the batch, in batch order."""

    model_decisions: list[Decision]  # banded by the (score-band adjusted) thresholds
    decisions: list[Decision]  # after every active rule
    reasons: list[tuple[Reason, ...]]  # the active rules' hits, to put before the model's
    shadow_hits: list[tuple[str, ...]]  # ids of the shadow rules that would have fired


@dataclass(frozen=True)
class Batch:
    transactions: Sequence[Transaction]
    matrix: npt.NDArray[np.float32]  # FEATURE_NAMES columns


def evaluate(
    ruleset: RuleSet,
    transactions: Sequence[Transaction],
    matrix: npt.NDArray[np.float32],
    scores: npt.NDArray[np.float32],
    thresholds: Thresholds,
) -> RuleOutcome:
    rows = len(transactions)
    model = decide(scores, thresholds)
    if not ruleset.rules:
        return RuleOutcome(model, model, [NO_REASONS] * rows, [NO_HITS] * rows)
    batch = Batch(transactions, matrix)
    active, shadow = ruleset.active, ruleset.shadow
    bands = [rule for rule in active if isinstance(rule, ScoreBandRule)]
    banded = decide(scores, banded_thresholds(thresholds, bands)) if bands else model
    decisions = list(banded)
    # Sparse, by row: most rows hit no rule, and a list per row cost more than the rules. Reasons
    # are built unvalidated (model_construct): code and value are a str and a str or float here.
    reasons: dict[int, list[Reason]] = {}
    caps: dict[int, int] = {}
    raises: dict[int, int] = {}
    for rule in sorted(active, key=_reason_order):
        if isinstance(rule, ScoreBandRule):
            continue
        severity, code = SEVERITY[rule.action], f"rule:{rule.rule_id}"
        allows = isinstance(rule, AllowListRule)
        for index, value in matches(rule, batch):
            reasons.setdefault(index, []).append(Reason.model_construct(code=code, value=value))
            if allows:
                caps[index] = min(caps.get(index, severity), severity)
            else:
                raises[index] = max(raises.get(index, severity), severity)
    for band in bands:
        for index in _changed_rows(model, banded):
            reason = Reason.model_construct(code=f"rule:{band.rule_id}", value=float(scores[index]))
            reasons.setdefault(index, []).append(reason)
    for index, cap in caps.items():
        decisions[index] = BY_SEVERITY[min(SEVERITY[decisions[index]], cap)]
    for index, floor in raises.items():
        decisions[index] = BY_SEVERITY[max(SEVERITY[decisions[index]], floor)]
    return RuleOutcome(
        banded,
        decisions,
        [tuple(reasons[index]) if index in reasons else NO_REASONS for index in range(rows)],
        shadow_hits(shadow, batch, scores, thresholds, model),
    )


def banded_thresholds(thresholds: Thresholds, bands: Sequence[ScoreBandRule]) -> Thresholds:
    """The thresholds with the bands' overrides: the lowest of each the bands set."""
    reviews = [band.review for band in bands if band.review is not None]
    blocks = [band.block for band in bands if band.block is not None]
    block = min(blocks) if blocks else thresholds.block
    review = min(reviews) if reviews else thresholds.review
    return Thresholds(review=min(review, block), block=block)


def matches(rule: Rule, batch: Batch) -> list[tuple[int, float | str]]:
    """The rows a (non-band) rule fires on, with the value that made it fire."""
    if isinstance(rule, DenyListRule | AllowListRule):
        listed = frozenset(rule.values)
        column = [getattr(transaction, rule.field) for transaction in batch.transactions]
        return [(index, value) for index, value in enumerate(column) if value in listed]
    if isinstance(rule, AmountLimitRule):
        # float64, as the settings' limit always compared: a float32 compare would round the limit
        amounts = batch.matrix[:, AMOUNT_USD].astype(np.float64)
        above = np.flatnonzero(amounts > rule.usd_above).tolist()
        if rule.merchant_category is not None:
            category = rule.merchant_category
            above = [i for i in above if batch.transactions[i].merchant_category == category]
        return [(index, round(float(amounts[index]), 2)) for index in above]
    if isinstance(rule, VelocityRule):
        values = batch.matrix[:, FEATURE_NAMES.index(rule.feature)].astype(np.float64)
        above_limit = np.flatnonzero(values > rule.above).tolist()
        return [(index, float(values[index])) for index in above_limit]
    raise TypeError(f"no row matcher for {type(rule).__name__}")


def shadow_hits(
    shadow: Sequence[Rule],
    batch: Batch,
    scores: npt.NDArray[np.float32],
    thresholds: Thresholds,
    model: list[Decision],
) -> list[tuple[str, ...]]:
    rows = len(batch.transactions)
    if not shadow:
        return [NO_HITS] * rows
    hits: dict[int, list[str]] = {}
    for rule in shadow:
        if isinstance(rule, ScoreBandRule):
            fired = _changed_rows(model, decide(scores, banded_thresholds(thresholds, [rule])))
        else:
            fired = [index for index, _ in matches(rule, batch)]
        for index in fired:
            hits.setdefault(index, []).append(rule.rule_id)
    return [tuple(hits[index]) if index in hits else NO_HITS for index in range(rows)]


def _changed_rows(before: list[Decision], after: list[Decision]) -> list[int]:
    return [index for index, (b, a) in enumerate(zip(before, after, strict=True)) if b != a]


def _reason_order(rule: Rule) -> tuple[int, str]:
    return KIND_ORDER.get(rule.kind, len(KIND_ORDER)), rule.rule_id
