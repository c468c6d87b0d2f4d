"""The rules a worker holds: its settings' rules plus everything read from ``fraud-rules``.

Fed the topic's records in order, between batches. A value replaces the rule of that key, a
tombstone (null value) deletes it, and a record that does not validate changes nothing: it is
returned as a dead letter with its reason, and the last good rule set keeps serving. A topic rule
with the id of a settings rule (``deny_list:device_id``, ``amount_limit``) replaces it for as long
as it exists; deleting it brings the settings' one back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from stream_app.rules.model import Rule, RuleRejection, parse_rule
from stream_app.rules.ruleset import RuleSet
from stream_app.schemas import DeadLetter
from stream_app.validation import RawRecord, dead_letter


@dataclass(frozen=True)
class RuleChanges:
    applied: int = 0  # rules put or deleted
    rejected: list[tuple[RuleRejection, DeadLetter]] = field(default_factory=list)


class RuleBook:
    def __init__(self, settings_rules: Sequence[Rule] = ()) -> None:
        self.settings_rules = {rule.rule_id: rule for rule in settings_rules}
        self.topic_rules: dict[str, Rule] = {}
        self.ruleset = RuleSet(tuple(self.settings_rules.values()))

    def apply(self, records: Sequence[RawRecord], now: datetime | None = None) -> RuleChanges:
        """Fold the records into the book; ``self.ruleset`` is then the new rule set."""
        if not records:
            return RuleChanges()
        applied = 0
        rejected: list[tuple[RuleRejection, DeadLetter]] = []
        for record in records:
            outcome = self._apply_one(record)
            if isinstance(outcome, RuleRejection):
                rejected.append((outcome, rule_dead_letter(record, outcome, now)))
            else:
                applied += 1
        if applied:
            merged = {**self.settings_rules, **self.topic_rules}
            self.ruleset = RuleSet(tuple(merged.values()))
        return RuleChanges(applied, rejected)

    def _apply_one(self, record: RawRecord) -> Rule | RuleRejection | None:
        if record.value is None:  # tombstone: the key names the rule to delete
            if record.key is None:
                return RuleRejection("key_mismatch", "a tombstone without a key deletes nothing")
            self.topic_rules.pop(record.key.decode("utf-8", errors="replace"), None)
            return None
        parsed = parse_rule(record.key, record.value)
        if isinstance(parsed, RuleRejection):
            return parsed
        self.topic_rules[parsed.rule_id] = parsed
        return parsed


def rule_dead_letter(
    record: RawRecord, rejection: RuleRejection, now: datetime | None = None
) -> DeadLetter:
    return dead_letter(record, rejection, now or datetime.now(UTC))
