"""Evaluation metrics against values worked out by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import numpy as np
import pytest

from training.evaluate import (
    CostModel,
    average_precision,
    card_precision_at_k,
    choose_thresholds,
    evaluate_scores,
    pr_curve_points,
    recall_at_fpr,
    roc_auc,
    roc_curve_points,
)

# Six rows, three frauds, no ties: frauds score 0.9, 0.7, 0.4; legit rows 0.8, 0.6, 0.5.
SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
LABELS = np.array([1, 0, 1, 0, 0, 1])


def test_roc_auc_counts_correctly_ordered_pairs() -> None:
    # 0.9 beats all 3 legit rows, 0.7 beats 0.6 and 0.5, 0.4 beats none: 5 of 9 pairs.
    assert roc_auc(LABELS, SCORES) == pytest.approx(5 / 9, abs=1e-12)


def test_roc_auc_counts_ties_as_half() -> None:
    # The fraud ties one legit row (1/2) and beats the other (1): 1.5 of 2 pairs.
    assert roc_auc([1, 0, 0], [0.5, 0.5, 0.2]) == pytest.approx(0.75, abs=1e-12)


def test_average_precision_is_stepwise_not_interpolated() -> None:
    # Frauds found at ranks 1, 3, 6: precision 1, 2/3, 1/2, each adding 1/3 recall.
    assert average_precision(LABELS, SCORES) == pytest.approx((1 + 2 / 3 + 1 / 2) / 3, abs=1e-12)


def test_average_precision_treats_tied_scores_as_one_step() -> None:
    # One threshold (0.5) flags both tied rows at once: recall 1 at precision 1/2.
    assert average_precision([1, 0, 0], [0.5, 0.5, 0.2]) == pytest.approx(0.5, abs=1e-12)


@pytest.mark.parametrize(
    ("max_fpr", "expected"),
    [
        (0.0, 1 / 3),  # only 0.9 is above every legit row
        (0.01, 1 / 3),
        (1 / 3, 2 / 3),  # cut at 0.7: one false alarm (0.8) of three legit rows
        (2 / 3, 2 / 3),  # cut at 0.5 adds false alarms but no fraud
        (1.0, 1.0),
    ],
)
def test_recall_at_fpr(max_fpr: float, expected: float) -> None:
    assert recall_at_fpr(LABELS, SCORES, max_fpr) == pytest.approx(expected, abs=1e-12)


def test_recall_at_fpr_never_splits_tied_scores() -> None:
    # Flagging the fraud at 0.5 also flags the legit row at 0.5 (FPR 1/2 > 0.4).
    assert recall_at_fpr([1, 1, 0, 0], [0.9, 0.5, 0.5, 0.1], max_fpr=0.4) == 0.5


def test_single_class_metrics_raise() -> None:
    with pytest.raises(ValueError, match="positive and one negative"):
        roc_auc([0, 0, 0], [0.1, 0.2, 0.3])


# Card precision@2 fixture: (day, customer, score, fraud).
CARD_ROWS = [
    # Day 1: daily scores A 0.9 (has a fraud at 0.2), B 0.8, C 0.7 (fraud), D 0.1 (fraud).
    # Top 2 = A (compromised), B -> 1/2; A is now detected.
    (1, "A", 0.9, 0),
    (1, "A", 0.2, 1),
    (1, "B", 0.8, 0),
    (1, "C", 0.7, 1),
    (1, "D", 0.1, 1),
    # Day 2: A would rank first but was detected on day 1. Top 2 of C, B, D = C, B -> 1/2.
    (2, "A", 0.95, 1),
    (2, "C", 0.6, 1),
    (2, "B", 0.5, 0),
    (2, "D", 0.4, 1),
    # Day 3: C detected on day 2. D, E, F tie at 0.3; ties go by customer id: D, E -> 2/2.
    (3, "C", 0.99, 1),
    (3, "F", 0.3, 0),
    (3, "E", 0.3, 1),
    (3, "D", 0.3, 1),
    # Day 4: a single candidate; precision still divides by k -> 1/2.
    (4, "G", 0.5, 1),
]


def test_card_precision_at_k_removes_detected_cards_and_divides_by_k() -> None:
    days, customers, scores, frauds = zip(*CARD_ROWS, strict=True)
    result = card_precision_at_k(days, customers, scores, frauds, k=2)
    assert result.per_day == (0.5, 0.5, 1.0, 0.5)
    assert result.mean == pytest.approx(0.625, abs=1e-12)


def test_card_precision_at_k_does_not_depend_on_row_order() -> None:
    shuffled = [CARD_ROWS[i] for i in np.random.default_rng(3).permutation(len(CARD_ROWS))]
    days, customers, scores, frauds = zip(*shuffled, strict=True)
    assert card_precision_at_k(days, customers, scores, frauds, k=2).per_day == (0.5, 0.5, 1.0, 0.5)


# Threshold fixture: frauds at 0.9, 0.8, 0.6, 0.3; legit at 0.7, 0.5, 0.4, 0.2.
#   t      missed  false alarms  cost(100, review 5)  cost(100, block 50)
#   1.0    4       0             400                  400
#   0.9    3       0             300                  300
#   0.8    2       0             200                  200
#   0.7    2       1             205                  250
#   0.6    1       1             105                  150
#   0.5    1       2             110                  200
#   0.4    1       3             115                  250
#   0.3    0       3              15                  150
#   0.2    0       4              20                  200
THRESHOLD_SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
THRESHOLD_LABELS = np.array([1, 1, 0, 1, 0, 0, 1, 0])


def test_thresholds_minimise_cost_and_break_ties_upwards() -> None:
    bands = choose_thresholds(THRESHOLD_LABELS, THRESHOLD_SCORES, CostModel())
    # Review: cheapest is 0.3 (15). Block: 0.6 and 0.3 both cost 150; the higher one wins.
    assert (bands.review, bands.block) == (0.3, 0.6)
    assert (bands.review_cost, bands.block_cost) == (15.0, 150.0)


def test_block_threshold_at_precision_target() -> None:
    # Precision by threshold: 0.9 1/1, 0.8 2/2, 0.7 2/3, 0.6 3/4, then below 3/4.
    costs = CostModel(block_precision=0.9)
    bands = choose_thresholds(THRESHOLD_LABELS, THRESHOLD_SCORES, costs)
    assert (bands.review, bands.block) == (0.3, 0.8)
    bands = choose_thresholds(THRESHOLD_LABELS, THRESHOLD_SCORES, CostModel(block_precision=0.75))
    assert bands.block == 0.6


def test_thresholds_with_amount_based_missed_fraud_cost() -> None:
    # Fraud amounts: 0.9 -> 10, 0.8 -> 500, 0.6 -> 20, 0.3 -> 3 (legit amounts are irrelevant).
    # Review (5 per false alarm): 1.0 533, 0.9 523, 0.8 23, 0.7 28, 0.6 8, 0.5 13, 0.4 18,
    #   0.3 15, 0.2 20 -> 0.6. Block (50) over t >= 0.6: 533, 523, 23, 73, 53 -> 0.8.
    amounts = np.array([10, 500, 1, 20, 1, 1, 3, 1], dtype=float)
    costs = CostModel(missed_fraud_from_amount=True)
    bands = choose_thresholds(THRESHOLD_LABELS, THRESHOLD_SCORES, costs, amounts=amounts)
    assert (bands.review, bands.block) == (0.6, 0.8)
    assert (bands.review_cost, bands.block_cost) == (8.0, 23.0)


def test_thresholds_flag_nothing_when_alarms_cost_more_than_fraud() -> None:
    costs = CostModel(missed_fraud=1.0, false_review=10.0, false_block=100.0)
    bands = choose_thresholds([0, 1, 0], [0.9, 0.5, 0.1], costs)
    assert (bands.review, bands.block) == (1.0, 1.0)


def test_curves_start_at_the_origin_and_end_at_full_recall() -> None:
    roc = roc_curve_points(LABELS, SCORES)
    assert (roc["fpr"][0], roc["tpr"][0]) == (0.0, 0.0)
    assert (roc["fpr"][-1], roc["tpr"][-1]) == (1.0, 1.0)
    pr = pr_curve_points(LABELS, SCORES)
    assert pr["precision"] == pytest.approx([1, 1 / 2, 2 / 3, 2 / 4, 2 / 5, 3 / 6])
    assert pr["recall"][-1] == 1.0


def test_evaluate_scores_keys_and_values() -> None:
    days = np.array([1, 1, 1, 2, 2, 2])
    customers = np.array(["a", "b", "c", "a", "b", "c"])
    metrics = evaluate_scores(LABELS, SCORES, days, customers, k=1)
    # Day 1 top card: a (0.9, fraud) -> 1; day 2: b 0.5 legit beats c 0.4 (a is detected) -> 0.
    assert metrics == pytest.approx(
        {
            "roc_auc": 5 / 9,
            "average_precision": 13 / 18,
            "recall_at_1pct_fpr": 1 / 3,
            "card_precision_at_1": 0.5,
            "rows": 6.0,
            "frauds": 3.0,
        }
    )
