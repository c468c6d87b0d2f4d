"""Backtest a rule set over labelled history: what each rule would have caught, and at what cost.

Every rule in the file is measured as if it were active (a shadow rule is exactly the kind of
rule one backtests before switching it on). Features are the offline, point-in-time features the
model trains on, which equal the worker's online ones (tests/unit/test_features_parity.py), so a
velocity rule fires here on the rows it would have fired on in the stream. With a model, its
scores and stored thresholds give the model's own decisions; without one, the model is taken to
approve everything and the rules are measured alone.

Per rule: hits (rows it fires on: for a score band, rows whose decision it changes), hits per
day, precision and recall against ``is_fraud``, and the change in alerts (review or block
decisions) of the model with that rule added, against the model alone. A last row does the same
for the whole rule set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from stream_app.features import FEATURE_NAMES, offline_features
from stream_app.model import ModelBundle
from stream_app.rules.evaluate import Batch, evaluate, matches
from stream_app.rules.model import Rule, RuleRejection, ScoreBandRule, parse_rule
from stream_app.rules.ruleset import RuleSet
from stream_app.schemas import Decision, Transaction
from stream_app.scoring import Thresholds
from stream_app.store import TRANSACTION_COLUMNS

NO_MODEL = Thresholds(review=1.0, block=1.0)  # scores of 0 stay below both bands


@dataclass(frozen=True)
class RuleStats:
    name: str
    hits: int
    hits_per_day: float
    precision: float | None
    recall: float | None
    alerts_change: int


@dataclass(frozen=True)
class History:
    """Labelled transactions with their point-in-time features and (maybe) model scores."""

    transactions: Sequence[Transaction]
    matrix: npt.NDArray[np.float32]
    is_fraud: npt.NDArray[np.bool_]
    scores: npt.NDArray[np.float32]
    thresholds: Thresholds
    days: float


def read_rules(path: Path) -> list[Rule]:
    """One rule per line (blank lines and ``#`` comments skipped); a bad line is an error."""
    rules: list[Rule] = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parsed = parse_rule(None, line.encode("utf-8"))
        if isinstance(parsed, RuleRejection):
            raise ValueError(f"{path}:{number}: {parsed.reason}: {parsed.error}")
        rules.append(parsed)
    return rules


def build_history(
    transactions: pd.DataFrame,
    labels: pd.DataFrame | None,
    model: ModelBundle | None,
) -> History:
    """``transactions`` needs the lake's transaction columns and ``is_fraud``."""
    frame = transactions.sort_values("timestamp", kind="stable").reset_index(drop=True)
    matrix = offline_features(frame, labels).to_numpy(dtype=np.float32)
    if model is None:
        scores, thresholds = np.zeros(len(frame), dtype=np.float32), NO_MODEL
    else:
        ordered = matrix[:, [FEATURE_NAMES.index(name) for name in model.metadata.feature_names]]
        scores = model.predict(np.ascontiguousarray(ordered))
        thresholds = Thresholds(model.metadata.review_threshold, model.metadata.block_threshold)
    times = pd.to_datetime(frame["timestamp"], utc=True)
    span = (times.max() - times.min()).total_seconds() / 86_400 if len(frame) else 0.0
    return History(
        transactions=_transactions(frame),
        matrix=matrix,
        is_fraud=frame["is_fraud"].to_numpy(dtype=bool),
        scores=scores,
        thresholds=thresholds,
        days=max(span, 1.0),
    )


def _transactions(frame: pd.DataFrame) -> list[Transaction]:
    # model_construct: the rows are trusted history, and validating each would dominate the run.
    columns = [name for name in TRANSACTION_COLUMNS if name in frame.columns]
    present = frame[columns].notna().to_numpy()
    values = frame[columns].astype(object).to_numpy()
    return [
        Transaction.model_construct(
            **{name: value for name, value, known in zip(columns, row, seen, strict=True) if known}
        )
        for row, seen in zip(values, present, strict=True)
    ]


def backtest(rules: Sequence[Rule], history: History) -> list[RuleStats]:
    as_active = [rule.model_copy(update={"mode": "active"}) for rule in rules]
    model = _decide(RuleSet(), history)
    model_alerts = _alerting(model)
    stats, any_fired = [], np.zeros(len(model), dtype=bool)
    for rule in as_active:
        fired, alerts = _fired(rule, history, model), _alerting(_decide(RuleSet((rule,)), history))
        any_fired |= fired
        stats.append(_stats(rule.rule_id, fired, history, int(alerts.sum() - model_alerts.sum())))
    alerts = _alerting(_decide(RuleSet(tuple(as_active)), history))
    change = int(alerts.sum() - model_alerts.sum())
    stats.append(_stats("all rules (any fired)", any_fired, history, change))
    stats.append(_stats("model alone (its alerts)", model_alerts, history, 0))
    return stats


def _fired(rule: Rule, history: History, model: list[Decision]) -> npt.NDArray[np.bool_]:
    fired = np.zeros(len(model), dtype=bool)
    if isinstance(rule, ScoreBandRule):  # a band "fires" where it changes the decision
        banded = _decide(RuleSet((rule,)), history)
        rows = [index for index, (m, b) in enumerate(zip(model, banded, strict=True)) if m != b]
    else:
        rows = [index for index, _ in matches(rule, Batch(history.transactions, history.matrix))]
    fired[rows] = True
    return fired


def _decide(ruleset: RuleSet, history: History) -> list[Decision]:
    return evaluate(
        ruleset, history.transactions, history.matrix, history.scores, history.thresholds
    ).decisions


def _alerting(decisions: list[Decision]) -> npt.NDArray[np.bool_]:
    return np.array([decision != "approve" for decision in decisions], dtype=bool)


def _stats(
    name: str, fired: npt.NDArray[np.bool_], history: History, alerts_change: int
) -> RuleStats:
    hits = int(fired.sum())
    caught = int((fired & history.is_fraud).sum())
    frauds = int(history.is_fraud.sum())
    return RuleStats(
        name=name,
        hits=hits,
        hits_per_day=hits / history.days,
        precision=caught / hits if hits else None,
        recall=caught / frauds if frauds else None,
        alerts_change=alerts_change,
    )


def format_table(stats: Sequence[RuleStats], history: History) -> str:
    header = (
        f"{'rule':<32} {'hits':>8} {'hits/day':>9} {'precision':>9} {'recall':>7} {'Δ alerts':>9}"
    )
    lines = [
        f"{len(history.transactions):,} transactions over {history.days:.1f} days, "
        f"{int(history.is_fraud.sum()):,} fraud",
        header,
        "-" * len(header),
    ]
    for row in stats:
        lines.append(
            f"{row.name[:32]:<32} {row.hits:>8,} {row.hits_per_day:>9.1f} "
            f"{_share(row.precision):>9} {_share(row.recall):>7} {row.alerts_change:>+9,}"
        )
    return "\n".join(lines)


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
