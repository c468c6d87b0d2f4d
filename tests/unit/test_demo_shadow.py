"""The demo's shadow-rule view: hits read off verdicts, joined to labels by transaction id, and
precision ("n/a" until a hit is labelled), in the live view, the summary and its JSON."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from deploy.demo.dashboard import _shadow_table
from deploy.demo.observer import Tally
from deploy.demo.report import _shadow
from deploy.demo.shadow import (
    DEMO_SHADOW_RULES,
    ShadowRuleStat,
    put_command,
    shadow_hits_of,
    shadow_rule_stats,
    write_rules_file,
)
from stream_app.rules.backtest import read_rules
from stream_app.schemas import Verdict

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def verdict(transaction_id: str, *shadow_hits: str) -> dict[str, Any]:
    """A verdict as the worker writes it on fraud-scores, decoded as the observer decodes it."""
    written = Verdict(
        transaction_id=transaction_id,
        customer_id="c-1",
        event_time=NOW,
        score=0.1,
        decision="approve",
        model_name="fraudstream-xgb",
        model_version="1",
        scored_at=NOW,
        latency_ms=3.0,
        rules_version="abc123def456",
        shadow_rule_hits=shadow_hits,
    )
    decoded: dict[str, Any] = json.loads(written.model_dump_json())
    return decoded


def tally_of(verdicts: list[dict[str, Any]], labels: dict[str, bool]) -> Tally:
    """What the observer's verdict and label handlers leave in the tally."""
    tally = Tally()
    for decoded in verdicts:
        for rule_id in shadow_hits_of(decoded):
            tally.shadow_hits.setdefault(rule_id, set()).add(str(decoded["transaction_id"]))
    tally.labels.update(labels)
    return tally


def render(table: Any) -> str:
    console = Console(width=160, record=True)
    console.print(table)
    return console.export_text()


def row(shown: str, rule_id: str) -> list[str]:
    """The cells of a rule's row in the rendered table."""
    line = next(line for line in shown.splitlines() if f" {rule_id} " in line)
    return [cell.strip() for cell in line.split("│")[1:-1]]


def test_hits_are_read_off_the_verdicts_wire_form() -> None:
    assert shadow_hits_of(verdict("t1", "burst", "big")) == ("burst", "big")
    assert shadow_hits_of(verdict("t2")) == ()
    assert shadow_hits_of({"transaction_id": "t3"}) == ()  # written before rules existed
    assert shadow_hits_of({"shadow_rule_hits": "burst"}) == ()  # not a list: ignored


def test_precision_is_frauds_among_labelled_hits() -> None:
    verdicts = [
        verdict("t1", "burst"),
        verdict("t2", "burst", "big"),
        verdict("t3", "burst"),
        verdict("t4", "big"),
        verdict("t5"),  # no hit: its fraud label counts for no rule
    ]
    labels = {"t1": True, "t2": False, "t4": True, "t5": True}  # t3's label not arrived yet
    stats = tally_of(verdicts, labels).shadow_rules()
    assert stats == [
        ShadowRuleStat("big", hits=2, labelled_hits=2, frauds=1),
        ShadowRuleStat("burst", hits=3, labelled_hits=2, frauds=1),
    ]
    assert [stat.precision for stat in stats] == [0.5, 0.5]


def test_precision_is_na_until_a_hit_is_labelled() -> None:
    tally = tally_of([verdict("t1", "burst")], {"other": True})
    (stat,) = tally.shadow_rules()
    assert (stat.hits, stat.labelled_hits, stat.precision) == (1, 0, None)
    assert stat.precision_text() == "n/a"
    assert stat.to_dict() == {"hits": 1, "labelled_hits": 0, "frauds": 0, "precision": None}
    tally.labels["t1"] = True  # the label arrives after the verdict: joined all the same
    (stat,) = tally.shadow_rules()
    assert (stat.precision, stat.precision_text()) == (1.0, "1.000 (1 of 1 labelled)")


def test_a_verdict_written_twice_counts_once() -> None:
    tally = tally_of([verdict("t1", "burst"), verdict("t1", "burst")], {"t1": False})
    assert shadow_rule_stats(tally.shadow_hits, tally.labels) == [
        ShadowRuleStat("burst", hits=1, labelled_hits=1, frauds=0)
    ]


def test_a_rule_with_no_hit_yet_is_listed_with_zero() -> None:
    assert shadow_rule_stats({"burst": set()}, {"t1": True}) == [ShadowRuleStat("burst", 0, 0, 0)]


def test_live_view_and_summary_show_hits_and_precision() -> None:
    tally = tally_of(
        [verdict("t1", "burst"), verdict("t2", "burst"), verdict("t3", "quiet")],
        {"t1": True, "t2": False, "t9": True},
    )
    shown = render(_shadow_table(tally))
    assert row(shown, "burst") == ["burst", "2", "2", "1", "0.500"]
    assert row(shown, "quiet") == ["quiet", "1", "0", "0", "n/a"]
    summary = {stat.rule_id: stat.to_dict() for stat in tally.shadow_rules()}
    assert _shadow(summary["burst"]) == "2 / 0.500 (2 labelled)"
    assert _shadow(summary["quiet"]) == "1 / n/a (0 labelled)"


def test_the_demo_rules_are_valid_shadow_rules_for_the_cli(tmp_path: Path) -> None:
    """The file the demo hands to ``fraudstream-rules put`` parses with the CLI's own reader
    (the worker's models), and every rule in it is a shadow rule."""
    path = write_rules_file(tmp_path / "rules.jsonl")
    rules = read_rules(path)
    assert [rule.rule_id for rule in rules] == [rule["rule_id"] for rule in DEMO_SHADOW_RULES]
    assert {rule.mode for rule in rules} == {"shadow"}
    assert put_command(path)[-3:] == ["stream_app.rules.cli", "put", str(path)]
