"""A rule set: the rules in force at one moment, with a stable version to stamp on verdicts.

``rules_version`` is a short hash of the canonical JSON of every rule (active and shadow, sorted
by id), so every worker holding the same rules names them the same way, whatever order the
rules arrived in, and a verdict says exactly which rules decided it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from stream_app.rules.model import (
    AmountLimitRule,
    DenyListRule,
    ListField,
    Rule,
)

VERSION_CHARS = 12
DENY_FIELDS: tuple[ListField, ...] = ("customer_id", "device_id", "merchant_id")


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...] = ()
    _by_id: dict[str, Rule] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_id = {rule.rule_id: rule for rule in self.rules}
        ordered = tuple(sorted(by_id.values(), key=lambda rule: rule.rule_id))
        object.__setattr__(self, "rules", ordered)
        object.__setattr__(self, "_by_id", by_id)

    @cached_property
    def version(self) -> str:
        canonical = json.dumps(
            [rule.model_dump(mode="json") for rule in self.rules],
            sort_keys=True,
            separators=(",", ":"),
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:VERSION_CHARS]

    def get(self, rule_id: str) -> Rule | None:
        return self._by_id.get(rule_id)

    def with_rule(self, rule: Rule) -> RuleSet:
        return RuleSet((*(r for r in self.rules if r.rule_id != rule.rule_id), rule))

    def without(self, rule_id: str) -> RuleSet:
        return RuleSet(tuple(r for r in self.rules if r.rule_id != rule_id))

    def in_mode(self, mode: str) -> tuple[Rule, ...]:
        return tuple(rule for rule in self.rules if rule.mode == mode)

    @property
    def active(self) -> tuple[Rule, ...]:
        return self.in_mode("active")

    @property
    def shadow(self) -> tuple[Rule, ...]:
        return self.in_mode("shadow")


def settings_rules(
    deny: Mapping[str, Iterable[str]] | None = None, review_above_usd: float | None = None
) -> tuple[Rule, ...]:
    """The worker settings' deny-list and amount limit as rules, under fixed ids
    (``deny_list:<field>``, ``amount_limit``), so they are decided and named like any other."""
    rules: list[Rule] = []
    for name, values in (deny or {}).items():
        if name not in DENY_FIELDS:
            raise ValueError(f"deny-list fields must be among {DENY_FIELDS}, got {name!r}")
        listed = tuple(str(value) for value in values)
        if listed:
            rules.append(
                DenyListRule(
                    rule_id=f"deny_list:{name}",
                    kind="deny_list",
                    field=name,
                    values=listed,
                    description="from the worker's deny-list file",
                )
            )
    if review_above_usd is not None:
        rules.append(
            AmountLimitRule(
                rule_id="amount_limit",
                kind="amount_limit",
                usd_above=review_above_usd,
                description="from FRAUDSTREAM_WORKER__REVIEW_ABOVE_USD",
            )
        )
    return tuple(rules)


def load_rules(deny_list_path: Path | None, review_above_usd: float | None) -> RuleSet:
    """The settings' rules; the deny-list file is JSON: ``{"customer_id": [...], ...}`` with
    keys among :data:`DENY_FIELDS`."""
    deny = json.loads(deny_list_path.read_text()) if deny_list_path is not None else {}
    return RuleSet(settings_rules(deny, review_above_usd))
