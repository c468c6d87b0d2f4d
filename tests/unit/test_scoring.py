"""Decision bands, threshold overrides and reason codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import xgboost as xgb

from stream_app.features import FEATURE_NAMES
from stream_app.model import ModelBundle
from stream_app.rules import RuleSet, evaluate, load_rules, settings_rules
from stream_app.schemas import Decision, Reason, Transaction
from stream_app.scoring import TOP_REASONS, Thresholds, decide, thresholds_for, top_reasons
from tests.factories import tiny_bundle


def test_bands_are_inclusive_at_their_lower_edge() -> None:
    scores = np.array([0.0, 0.29, 0.3, 0.79, 0.8, 1.0], dtype=np.float32)
    assert decide(scores, Thresholds(review=0.3, block=0.8)) == [
        "approve",
        "approve",
        "review",
        "review",
        "block",
        "block",
    ]


def test_configured_thresholds_override_the_models() -> None:
    bundle = tiny_bundle(review=0.3, block=0.8)
    assert thresholds_for(bundle, None, None) == Thresholds(0.3, 0.8)
    assert thresholds_for(bundle, 0.5, None) == Thresholds(0.5, 0.8)
    assert thresholds_for(bundle, None, 0.95) == Thresholds(0.3, 0.95)


def test_inverted_bands_are_refused() -> None:
    with pytest.raises(ValueError, match="review <= block"):
        Thresholds(review=0.9, block=0.5)


def test_reasons_name_the_feature_that_raised_the_score() -> None:
    bundle = tiny_bundle()
    suspicious = np.array([[0.0, 3.0, 0.0]], dtype=np.float32)
    (reasons,) = top_reasons(bundle, suspicious)
    assert reasons[0].code == "b"
    assert reasons[0].value == 3.0
    assert all(reason.contribution is not None and reason.contribution > 0 for reason in reasons)


def test_reasons_for_no_rows_is_empty() -> None:
    assert top_reasons(tiny_bundle(), np.empty((0, 3), dtype=np.float32)) == []


def one_row_reasons(bundle: ModelBundle, row: npt.NDArray[np.float32]) -> tuple[Reason, ...]:
    """top_reasons as it was written before it worked on the batch: one row, validated Reasons."""
    names = bundle.metadata.feature_names
    matrix = xgb.DMatrix(row[None, :], feature_names=list(names), nthread=1)
    contributions = bundle.booster.predict(matrix, pred_contribs=True, approx_contribs=True)[0, :-1]
    order = np.argsort(-contributions)[:TOP_REASONS]
    return tuple(
        Reason(
            code=names[index],
            value=float(row[index]),
            contribution=round(float(contributions[index]), 6),
        )
        for index in order
        if contributions[index] > 0
    )


def test_a_batch_gets_the_reasons_each_of_its_rows_gets_alone() -> None:
    bundle = tiny_bundle()
    rng = np.random.default_rng(18)
    rows = rng.choice([0.0, 1.0, 3.0, -2.5, 0.1], size=(200, 3)).astype(np.float32)
    batch = top_reasons(bundle, rows)
    assert {len(reasons) for reasons in batch} == {0, 1, 2, 3}  # every count, none padded
    assert [reason.to_bytes() for each in batch for reason in each] == [
        reason.to_bytes() for row in rows for reason in one_row_reasons(bundle, row)
    ]
    assert batch == [one_row_reasons(bundle, row) for row in rows]


def rule_txn(**changes: object) -> Transaction:
    fields: dict[str, object] = {
        "transaction_id": "t1",
        "customer_id": "c1",
        "amount": 100.0,
        "merchant_category": "grocery",
        "transaction_type": "pos",
        "device_id": "d1",
        "geo_location": "US-CA",
        "timestamp": "2025-03-01T12:00:00Z",
        "merchant_id": "m1",
    }
    fields.update(changes)
    return Transaction.model_validate(fields)


# The model's decision is simulated by its score against these bands.
BANDS = Thresholds(review=0.5, block=0.9)
SCORE_OF: dict[Decision, float] = {"approve": 0.1, "review": 0.6, "block": 0.95}


def apply_rules(
    transaction: Transaction,
    amount_usd: float,
    decision: Decision,
    reasons: tuple[Reason, ...],
    rules: RuleSet,
) -> tuple[Decision, tuple[Reason, ...]]:
    """One transaction through stream_app.rules.evaluate, as the worker applies it."""
    row = np.zeros((1, len(FEATURE_NAMES)), dtype=np.float32)
    row[0, FEATURE_NAMES.index("amount_usd")] = amount_usd
    scores = np.array([SCORE_OF[decision]], dtype=np.float32)
    outcome = evaluate(rules, [transaction], row, scores, BANDS)
    return outcome.decisions[0], outcome.reasons[0] + reasons


def test_deny_list_blocks_and_names_the_rule(tmp_path: Path) -> None:
    deny = tmp_path / "deny.json"
    deny.write_text(json.dumps({"device_id": ["d-stolen"]}))
    rules = load_rules(deny, review_above_usd=None)
    decision, reasons = apply_rules(rule_txn(device_id="d-stolen"), 100.0, "approve", (), rules)
    assert decision == "block"
    assert reasons[0].code == "rule:deny_list:device_id"
    assert apply_rules(rule_txn(), 100.0, "approve", (), rules) == ("approve", ())


def test_amount_limit_reviews_but_never_relaxes_a_block() -> None:
    rules = RuleSet(settings_rules(review_above_usd=5000.0))
    decision, reasons = apply_rules(rule_txn(), 7500.0, "approve", (), rules)
    assert (decision, reasons[0].code) == ("review", "rule:amount_limit")
    model_reason = Reason(code="amount", value=7500.0, contribution=1.0)
    decision, reasons = apply_rules(rule_txn(), 7500.0, "block", (model_reason,), rules)
    assert decision == "block"
    assert [r.code for r in reasons] == ["rule:amount_limit", "amount"]


def test_unknown_deny_list_fields_are_refused(tmp_path: Path) -> None:
    deny = tmp_path / "deny.json"
    deny.write_text(json.dumps({"email": ["x"]}))
    with pytest.raises(ValueError, match="deny-list fields"):
        load_rules(deny, None)
