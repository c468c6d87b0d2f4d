"""Scores to decisions, and the reasons a reviewer sees: pure functions over arrays.

Bands: ``score >= block`` blocks, ``score >= review`` goes to review, anything lower is approved.
The thresholds come from the model's metadata (chosen at training time from the cost of missed
fraud against the cost of a false alarm) unless the worker's settings override them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import xgboost as xgb

from stream_app.model import ModelBundle
from stream_app.schemas import Decision, Reason, Transaction

TOP_REASONS = 3


@dataclass(frozen=True)
class Thresholds:
    review: float
    block: float

    def __post_init__(self) -> None:
        if not 0 <= self.review <= self.block <= 1:
            raise ValueError(f"need 0 <= review <= block <= 1, got {self}")


def thresholds_for(
    bundle: ModelBundle, review_override: float | None, block_override: float | None
) -> Thresholds:
    """The model's stored bands, with any configured override taking precedence."""
    review = bundle.metadata.review_threshold if review_override is None else review_override
    block = bundle.metadata.block_threshold if block_override is None else block_override
    return Thresholds(review=review, block=block)


def decide(scores: npt.NDArray[np.float32], thresholds: Thresholds) -> list[Decision]:
    """One decision per score, by band."""
    return [
        "block"
        if score >= thresholds.block
        else "review"
        if score >= thresholds.review
        else "approve"
        for score in scores.tolist()
    ]


def top_reasons(
    bundle: ModelBundle, features: npt.NDArray[np.float32], top: int = TOP_REASONS
) -> list[tuple[Reason, ...]]:
    """The features that pushed each row's score up the most (XGBoost ``pred_contribs``).

    Only positive contributions are reasons: a feature that lowered the score did not make the
    transaction suspicious. Callers pass just the flagged rows. The contributions are XGBoost's
    approximate ones (Saabas: each split's change in expectation credited to its feature):
    exact TreeSHAP took 75 ms for 50 rows of a 300-tree model on one thread, this takes about
    1 ms. On the 300 highest-scored of 41,337 simulated transactions the top reason agreed with
    TreeSHAP's for 87 % of rows (top-3 overlap 87 %). Exact values are a call away offline
    (``pred_contribs=True`` alone) when an analyst needs them.
    """
    if len(features) == 0:
        return []
    names = bundle.metadata.feature_names
    # nthread=1: building the DMatrix with XGBoost's default thread pool took 13-17 ms per batch
    # on 2 busy cores (threads spinning on each other), against 0.6 ms on the calling thread.
    matrix = xgb.DMatrix(features, feature_names=list(names), nthread=1)
    contributions = bundle.booster.predict(matrix, pred_contribs=True, approx_contribs=True)
    contributions = contributions[:, :-1]  # the last column is the bias
    reasons: list[tuple[Reason, ...]] = []
    for row_features, row_contributions in zip(features, contributions, strict=True):
        order = np.argsort(-row_contributions)[:top]
        reasons.append(
            tuple(
                Reason(
                    code=names[index],
                    value=float(row_features[index]),
                    contribution=round(float(row_contributions[index]), 6),
                )
                for index in order
                if row_contributions[index] > 0
            )
        )
    return reasons


# --- rules: hard business rules combined with the model; each hit is named as a reason -------

DENY_FIELDS = ("customer_id", "device_id", "merchant_id")
SEVERITY: dict[Decision, int] = {"approve": 0, "review": 1, "block": 2}


@dataclass(frozen=True)
class Rules:
    """A deny-list per identifier field (hit: block) and an amount limit in USD (hit: review)."""

    deny: Mapping[str, frozenset[str]] = field(default_factory=dict)
    review_above_usd: float | None = None


def load_rules(deny_list_path: Path | None, review_above_usd: float | None) -> Rules:
    """Rules from settings; the deny-list file is JSON: ``{"customer_id": [...], ...}`` with
    keys among :data:`DENY_FIELDS`."""
    deny: dict[str, frozenset[str]] = {}
    if deny_list_path is not None:
        raw = json.loads(deny_list_path.read_text())
        unknown = set(raw) - set(DENY_FIELDS)
        if unknown:
            raise ValueError(f"deny-list fields must be among {DENY_FIELDS}, got {sorted(unknown)}")
        deny = {name: frozenset(str(value) for value in values) for name, values in raw.items()}
    return Rules(deny=deny, review_above_usd=review_above_usd)


def apply_rules(
    transaction: Transaction,
    amount_usd: float,
    decision: Decision,
    reasons: tuple[Reason, ...],
    rules: Rules,
) -> tuple[Decision, tuple[Reason, ...]]:
    """Escalate (never relax) the model's decision for each rule that fires."""
    hits: list[tuple[Decision, Reason]] = []
    for name, denied in rules.deny.items():
        value = getattr(transaction, name)
        if value is not None and value in denied:
            hits.append(("block", Reason(code=f"rule:deny_list:{name}", value=value)))
    if rules.review_above_usd is not None and amount_usd > rules.review_above_usd:
        hits.append(("review", Reason(code="rule:amount_limit", value=round(amount_usd, 2))))
    for rule_decision, _ in hits:
        if SEVERITY[rule_decision] > SEVERITY[decision]:
            decision = rule_decision
    return decision, tuple(reason for _, reason in hits) + reasons
