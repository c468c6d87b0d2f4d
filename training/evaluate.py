"""Model evaluation: ranking metrics, card precision@k and cost-based decision thresholds.

Every function here is pure (arrays in, numbers out) so each can be checked against values worked
out by hand. Scores are read as "higher is more suspicious"; a threshold ``t`` flags every row
with ``score >= t``, the same rule the worker's decision policy applies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

FloatArray = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike

DEFAULT_TOP_K = 100
DEFAULT_MAX_FPR = 0.01
# Curves are logged for humans and plots; a few hundred points draw the same picture as a million.
MAX_CURVE_POINTS = 500


def _as_labels(y_true: ArrayLike) -> npt.NDArray[np.bool_]:
    labels = np.asarray(y_true).astype(bool)
    if labels.ndim != 1:
        raise ValueError("labels must be one-dimensional")
    return labels


def _as_scores(scores: ArrayLike, size: int) -> FloatArray:
    values = np.asarray(scores, dtype=np.float64)
    if values.shape != (size,):
        raise ValueError(f"expected {size} scores, got shape {values.shape}")
    return values


def _require_both_classes(labels: npt.NDArray[np.bool_]) -> None:
    """Ranking metrics are undefined with one class; say so rather than return NaN."""
    if labels.all() or not labels.any():
        raise ValueError("ranking metrics need at least one positive and one negative row")


def roc_auc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve: the chance a random fraud outranks a random legit row."""
    labels = _as_labels(y_true)
    _require_both_classes(labels)
    return float(roc_auc_score(labels, _as_scores(scores, labels.size)))


def average_precision(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Step-wise area under the PR curve: sum of (R_n - R_n-1) * P_n, not interpolated.

    This is the model-selection metric: with fraud at well under 1 % of traffic, AUC barely moves
    while average precision tracks what analysts feel (how clean the top of the queue is).
    """
    labels = _as_labels(y_true)
    _require_both_classes(labels)
    return float(average_precision_score(labels, _as_scores(scores, labels.size)))


@dataclass(frozen=True)
class CumulativeCounts:
    """Counts of flagged rows for each distinct threshold, from the highest threshold down.

    ``thresholds[j]`` is the j-th highest distinct score; flagging ``score >= thresholds[j]``
    catches ``true_positives[j]`` frauds (weighted by ``positive_weight``) and
    ``false_positives[j]`` legit rows.
    """

    thresholds: FloatArray
    true_positives: FloatArray
    false_positives: FloatArray
    positive_total: float
    negative_total: float


def cumulative_counts(
    y_true: ArrayLike, scores: ArrayLike, positive_weight: ArrayLike | None = None
) -> CumulativeCounts:
    """Flagged frauds and false alarms at every distinct score, in one sort (O(n log n))."""
    labels = _as_labels(y_true)
    values = _as_scores(scores, labels.size)
    weights = np.ones(labels.size)
    if positive_weight is not None:
        weights = _as_scores(positive_weight, labels.size)
    order = np.argsort(-values, kind="stable")
    sorted_scores, sorted_labels = values[order], labels[order]
    tp = np.cumsum(np.where(sorted_labels, weights[order], 0.0))
    fp = np.cumsum(~sorted_labels, dtype=np.float64)
    # The last row of each run of tied scores: a threshold flags all ties together.
    group_ends = np.flatnonzero(np.r_[sorted_scores[1:] != sorted_scores[:-1], True])
    return CumulativeCounts(
        thresholds=sorted_scores[group_ends],
        true_positives=tp[group_ends],
        false_positives=fp[group_ends],
        positive_total=float(tp[-1]) if tp.size else 0.0,
        negative_total=float(fp[-1]) if fp.size else 0.0,
    )


def recall_at_fpr(y_true: ArrayLike, scores: ArrayLike, max_fpr: float = DEFAULT_MAX_FPR) -> float:
    """The highest recall of any threshold whose false-positive rate is at most ``max_fpr``.

    Thresholds are the distinct scores (ties are flagged together, never split), so this is the
    recall an operator gets by picking the lowest cut-off that keeps false alarms within budget.
    """
    labels = _as_labels(y_true)
    _require_both_classes(labels)
    counts = cumulative_counts(labels, scores)
    fpr = counts.false_positives / counts.negative_total
    tpr = counts.true_positives / counts.positive_total
    allowed = fpr <= max_fpr
    return float(tpr[allowed].max()) if allowed.any() else 0.0


@dataclass(frozen=True)
class CardPrecision:
    mean: float
    per_day: tuple[float, ...]


def card_precision_at_k(
    days: ArrayLike,
    customer_ids: ArrayLike,
    scores: ArrayLike,
    y_true: ArrayLike,
    k: int = DEFAULT_TOP_K,
) -> CardPrecision:
    """Daily share of truly compromised cards among the k most suspicious, averaged over days.

    The exact rule (the Fraud Detection Handbook's card precision top-k):
    - a customer's daily score is the maximum score of their transactions that day, and they are
      compromised that day if any of those transactions is fraud;
    - each day, the k customers with the highest daily score are checked (ties: lower
      customer id first); precision for the day is (compromised among them) / k, so a day with
      fewer than k candidates cannot reach 1;
    - a customer found compromised (a true positive) on a day is blocked from then on and drops
      out of every later day's candidates, so one card is not counted twice;
    - the result is the mean over the days present, in day order.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    labels = _as_labels(y_true)
    frame = pd.DataFrame(
        {
            "day": np.asarray(days),
            "customer": np.asarray(customer_ids),
            "score": _as_scores(scores, labels.size),
            "fraud": labels,
        }
    )
    daily = frame.groupby(["day", "customer"], sort=True).agg(
        score=("score", "max"), fraud=("fraud", "max")
    )
    detected: set[Any] = set()
    per_day: list[float] = []
    for _, day_rows in daily.groupby(level="day", sort=True):
        candidates = day_rows.droplevel("day")
        candidates = candidates[~candidates.index.isin(detected)]
        top = candidates.sort_values("score", ascending=False, kind="stable").head(k)
        hits = top.index[top["fraud"].to_numpy(dtype=bool)]
        detected.update(hits)
        per_day.append(len(hits) / k)
    mean = float(np.mean(per_day)) if per_day else 0.0
    return CardPrecision(mean=mean, per_day=tuple(per_day))


def utc_days(timestamps: pd.Series) -> npt.NDArray[np.datetime64]:
    """Calendar day (UTC) of each timestamp, the unit card precision@k groups by."""
    stamps = pd.to_datetime(timestamps, utc=True)
    return stamps.dt.floor("D").to_numpy(dtype="datetime64[ns]")


@dataclass(frozen=True)
class CostModel:
    """What a wrong decision costs, in one currency; the thresholds minimise these costs.

    ``missed_fraud`` is charged for each fraud left approved; with ``missed_fraud_from_amount``
    the fraud's own amount is charged instead (a chargeback loses the money). ``false_review`` is
    analyst time spent on a legit transaction; ``false_block`` is a legit customer declined (lost
    sale, support call, churn). If ``block_precision`` is set, the block threshold instead is the
    lowest one whose precision reaches it.
    """

    missed_fraud: float = 100.0
    missed_fraud_from_amount: bool = False
    false_review: float = 5.0
    false_block: float = 50.0
    block_precision: float | None = None

    def __post_init__(self) -> None:
        if min(self.missed_fraud, self.false_review, self.false_block) < 0:
            raise ValueError("costs must not be negative")
        if self.block_precision is not None and not 0 < self.block_precision <= 1:
            raise ValueError("block_precision must be in (0, 1]")


@dataclass(frozen=True)
class ThresholdBands:
    review: float
    block: float
    review_cost: float
    block_cost: float


@dataclass(frozen=True)
class _Candidates:
    """Candidate thresholds (descending) with the missed-fraud cost and false alarms of each."""

    thresholds: FloatArray
    missed_cost: FloatArray
    false_alarms: FloatArray
    true_alarms: FloatArray


def _candidates(
    labels: npt.NDArray[np.bool_], scores: FloatArray, fraud_costs: FloatArray
) -> _Candidates:
    counts = cumulative_counts(labels, scores, fraud_costs)
    caught_frauds = cumulative_counts(labels, scores).true_positives
    thresholds, caught_cost = counts.thresholds, counts.true_positives
    false_alarms, true_alarms = counts.false_positives, caught_frauds
    if thresholds.size == 0 or thresholds[0] < 1.0:
        # "Flag nothing" is a candidate too (threshold 1.0, above every score).
        thresholds = np.r_[1.0, thresholds]
        caught_cost, false_alarms, true_alarms = (
            np.r_[0.0, caught_cost],
            np.r_[0.0, false_alarms],
            np.r_[0.0, true_alarms],
        )
    return _Candidates(
        thresholds=thresholds,
        missed_cost=counts.positive_total - caught_cost,
        false_alarms=false_alarms,
        true_alarms=true_alarms,
    )


def _cheapest(candidates: _Candidates, false_alarm_cost: float, lowest: float) -> tuple[int, float]:
    """Index and cost of the cheapest threshold >= ``lowest``; ties go to the highest threshold."""
    cost = candidates.missed_cost + false_alarm_cost * candidates.false_alarms
    cost = np.where(candidates.thresholds >= lowest, cost, np.inf)
    index = int(np.argmin(cost))  # candidates are descending, so argmin's first hit is highest
    return index, float(cost[index])


def _lowest_with_precision(candidates: _Candidates, target: float, lowest: float) -> int:
    flagged = candidates.true_alarms + candidates.false_alarms
    precision = np.divide(
        candidates.true_alarms, flagged, out=np.zeros_like(flagged), where=flagged > 0
    )
    eligible = np.flatnonzero((precision >= target) & (candidates.thresholds >= lowest))
    return int(eligible[-1]) if eligible.size else 0


def choose_thresholds(
    y_true: ArrayLike,
    scores: ArrayLike,
    costs: CostModel,
    amounts: ArrayLike | None = None,
) -> ThresholdBands:
    """Review and block thresholds that minimise the cost of errors on a labelled holdout.

    The rule, with candidates = every distinct score plus 1.0 ("flag nothing"):
    - review = argmin_t  sum(missed-fraud cost of frauds with score < t)
                         + false_review * #(legit with score >= t)
    - block  = argmin_{t >= review}  the same sum with false_block in place of false_review,
      i.e. the threshold that would be best if every flagged transaction were declined; or, when
      ``costs.block_precision`` is set, the lowest t >= review whose precision reaches it
      (1.0 if none does).
    Equal costs are resolved towards the higher threshold: same cost, fewer alerts.
    """
    labels = _as_labels(y_true)
    values = _as_scores(scores, labels.size)
    if costs.missed_fraud_from_amount:
        if amounts is None:
            raise ValueError("amount-based missed-fraud cost needs the amounts")
        fraud_costs = _as_scores(amounts, labels.size)
    else:
        fraud_costs = np.full(labels.size, costs.missed_fraud)
    candidates = _candidates(labels, values, fraud_costs)
    review_index, review_cost = _cheapest(candidates, costs.false_review, lowest=0.0)
    review = float(candidates.thresholds[review_index])
    if costs.block_precision is None:
        block_index, _ = _cheapest(candidates, costs.false_block, lowest=review)
    else:
        block_index = _lowest_with_precision(candidates, costs.block_precision, lowest=review)
    block = float(candidates.thresholds[block_index])
    block_cost = candidates.missed_cost + costs.false_block * candidates.false_alarms
    return ThresholdBands(review, block, review_cost, float(block_cost[block_index]))


def _thin(points: Sequence[FloatArray], limit: int = MAX_CURVE_POINTS) -> list[list[float]]:
    """Keep at most ``limit`` evenly spaced points (always the first and the last)."""
    size = len(points[0])
    keep = np.unique(np.linspace(0, size - 1, num=min(size, limit)).round().astype(int))
    return [np.asarray(values)[keep].tolist() for values in points]


def roc_curve_points(y_true: ArrayLike, scores: ArrayLike) -> dict[str, list[float]]:
    """ROC curve as JSON-ready lists, from (0, 0) to (1, 1)."""
    counts = cumulative_counts(y_true, scores)
    fpr = np.r_[0.0, counts.false_positives / max(counts.negative_total, 1.0)]
    tpr = np.r_[0.0, counts.true_positives / max(counts.positive_total, 1.0)]
    thresholds = np.r_[np.inf, counts.thresholds]
    fpr_kept, tpr_kept, thresholds_kept = _thin([fpr, tpr, thresholds])
    thresholds_kept = [min(value, 1.0) for value in thresholds_kept]  # JSON has no infinity
    return {"fpr": fpr_kept, "tpr": tpr_kept, "thresholds": thresholds_kept}


def pr_curve_points(y_true: ArrayLike, scores: ArrayLike) -> dict[str, list[float]]:
    """Precision-recall curve as JSON-ready lists, from the highest threshold down."""
    counts = cumulative_counts(y_true, scores)
    recall = counts.true_positives / max(counts.positive_total, 1.0)
    precision = counts.true_positives / (counts.true_positives + counts.false_positives)
    recall_kept, precision_kept, thresholds_kept = _thin([recall, precision, counts.thresholds])
    return {"recall": recall_kept, "precision": precision_kept, "thresholds": thresholds_kept}


def evaluate_scores(
    y_true: ArrayLike,
    scores: ArrayLike,
    days: ArrayLike,
    customer_ids: ArrayLike,
    *,
    k: int = DEFAULT_TOP_K,
    max_fpr: float = DEFAULT_MAX_FPR,
) -> dict[str, float]:
    """The standard metric set for one labelled holdout, keyed as they are logged."""
    labels = _as_labels(y_true)
    values = _as_scores(scores, labels.size)
    return {
        "roc_auc": roc_auc(labels, values),
        "average_precision": average_precision(labels, values),
        f"recall_at_{max_fpr * 100:g}pct_fpr": recall_at_fpr(labels, values, max_fpr),
        f"card_precision_at_{k}": card_precision_at_k(days, customer_ids, values, labels, k).mean,
        "rows": float(labels.size),
        "frauds": float(labels.sum()),
    }
