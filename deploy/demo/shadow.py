"""Shadow rules in the demo: the one it puts on ``fraud-rules`` at start, and, per shadow rule,
how often it would have fired and how precise it would have been.

A verdict names the shadow rules that would have fired in ``shadow_rule_hits`` (never acted
on); the labels arrive later on ``transaction-labels``. The join is by transaction id, done
when the view is drawn, so a label that arrives before or after its verdict counts the same.
Precision is the share of fraud among a rule's hits whose label has arrived: "n/a" until one has.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.stack import python_command

# The demo's own shadow rule, so the view has something to show: a customer's 5th transaction
# within an hour. Card testing and account takeover come in bursts in the simulator; so do
# some busy legitimate customers, which is what the precision tells apart.
DEMO_SHADOW_RULES: tuple[dict[str, Any], ...] = (
    {
        "rule_id": "demo-shadow-burst-1h",
        "kind": "velocity",
        "feature": "cust_txn_count_1h",
        "above": 4,
        "mode": "shadow",
        "description": "demo: more than 4 transactions of one customer within an hour",
    },
)


@dataclass(frozen=True)
class ShadowRuleStat:
    """One shadow rule so far: transactions it would have fired on, and those labelled."""

    rule_id: str
    hits: int
    labelled_hits: int
    frauds: int

    @property
    def precision(self) -> float | None:
        return self.frauds / self.labelled_hits if self.labelled_hits else None

    def precision_text(self) -> str:
        if self.precision is None:
            return "n/a"
        return f"{self.precision:.3f} ({self.frauds:,} of {self.labelled_hits:,} labelled)"

    def to_dict(self) -> dict[str, Any]:
        precision = self.precision
        return {
            "hits": self.hits,
            "labelled_hits": self.labelled_hits,
            "frauds": self.frauds,
            "precision": None if precision is None else round(precision, 4),
        }


def shadow_hits_of(verdict: Mapping[str, Any]) -> tuple[str, ...]:
    """The rule ids a decoded verdict lists as shadow hits (none if the field is missing or
    not a list: a verdict from before rules, or a foreign writer)."""
    hits = verdict.get("shadow_rule_hits")
    if not isinstance(hits, list | tuple):
        return ()
    return tuple(str(rule_id) for rule_id in hits)


def shadow_rule_stats(
    hits: Mapping[str, Collection[str]], labels: Mapping[str, bool]
) -> list[ShadowRuleStat]:
    """Per rule (sorted by id): its hit transactions joined to the labels by transaction id."""
    stats = []
    for rule_id in sorted(hits):
        labelled = [labels[tid] for tid in hits[rule_id] if tid in labels]
        stats.append(ShadowRuleStat(rule_id, len(hits[rule_id]), len(labelled), sum(labelled)))
    return stats


def write_rules_file(path: Path, rules: Iterable[Mapping[str, Any]] = DEMO_SHADOW_RULES) -> Path:
    """The rules as ``fraudstream-rules put`` reads them: one JSON object per line."""
    path.write_text("".join(json.dumps(dict(rule)) + "\n" for rule in rules))
    return path


def put_command(path: Path) -> list[str]:
    """``fraudstream-rules put FILE`` with the demo's interpreter: it validates every rule
    with the worker's own models before producing it, so a broken demo rule fails the start."""
    return python_command("stream_app.rules.cli", "put", str(path))
