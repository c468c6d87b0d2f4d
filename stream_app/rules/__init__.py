"""Fraud rules as data: models, rule sets, evaluation, the live book and the CLI.

Rules travel on the compacted ``fraud-rules`` topic (see docs/rules.md); the worker applies them
between batches through :class:`stream_app.rules.book.RuleBook` and stamps each verdict with the
rule set's version.
"""

from stream_app.rules.evaluate import RuleOutcome, evaluate
from stream_app.rules.model import Rule, RuleRejection, parse_rule
from stream_app.rules.ruleset import RuleSet, load_rules, settings_rules

__all__ = [
    "Rule",
    "RuleOutcome",
    "RuleRejection",
    "RuleSet",
    "evaluate",
    "load_rules",
    "parse_rule",
    "settings_rules",
]
