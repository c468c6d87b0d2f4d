"""The worker's live rules: records from the reader change the scorer's rules between batches."""

from __future__ import annotations

import json
import threading

from stream_app.metrics import create_worker_metrics
from stream_app.processor import BatchScorer
from stream_app.rules import settings_rules
from stream_app.rules.book import RuleBook
from stream_app.schemas import DeadLetter
from stream_app.scoring import Thresholds
from stream_app.validation import RawRecord
from stream_app.worker.rules_reader import LiveRules
from tests.factories import amount_model, transaction


class ListReader:
    """Stands in for the rules reader: hands over what the test put in."""

    def __init__(self) -> None:
        self.records: list[RawRecord] = []
        self.caught_up = threading.Event()

    def start(self) -> None:
        self.caught_up.set()

    def drain(self) -> list[RawRecord]:
        records, self.records = self.records, []
        return records


def rule_record(offset: int, rule_id: str, value: bytes | None) -> RawRecord:
    return RawRecord("fraud-rules", 0, offset, rule_id.encode(), value)


def test_a_rule_acts_on_the_next_batch_and_a_bad_one_is_dead_lettered() -> None:
    metrics = create_worker_metrics()
    book = RuleBook(settings_rules(review_above_usd=10_000.0))
    scorer = BatchScorer(amount_model(), Thresholds(0.5, 0.9), metrics, rules=book.ruleset)
    reader, letters = ListReader(), list[DeadLetter]()
    live = LiveRules(reader, book, metrics, letters.append)  # type: ignore[arg-type]
    assert metrics.rules_loaded.labels("active")._value.get() == 1

    def batch(offset: int) -> tuple[str, tuple[str, ...], str | None, tuple[str, ...]]:
        value = transaction(f"t{offset}", "c1", 20.0, minutes=offset)
        (verdict,) = scorer.score_batch(
            [RawRecord("transactions", 0, offset, b"c1", value)]
        ).verdicts
        live.count_shadow_hits([verdict])
        codes = tuple(reason.code for reason in verdict.reasons)
        return verdict.decision, codes, verdict.rules_version, verdict.shadow_rule_hits

    before = batch(0)
    assert before[0] == "approve" and before[2] == book.ruleset.version
    deny = {"rule_id": "deny-c1", "kind": "deny_list", "field": "customer_id", "values": ["c1"]}
    shadow = {**deny, "rule_id": "shadow-c1", "mode": "shadow"}
    reader.records = [
        rule_record(0, "deny-c1", json.dumps(deny).encode()),
        rule_record(1, "shadow-c1", json.dumps(shadow).encode()),
        rule_record(2, "broken", b'{"kind": "deny_list"}'),
    ]
    live.apply(scorer)
    decision, codes, version, shadow_hits = batch(1)
    assert (decision, codes[:1], shadow_hits) == ("block", ("rule:deny-c1",), ("shadow-c1",))
    assert version == book.ruleset.version != before[2]
    assert [(letter.reason, letter.offset) for letter in letters] == [("schema_violation", 2)]
    assert metrics.rules_applied._value.get() == 2
    assert metrics.rules_rejected.labels("schema_violation")._value.get() == 1
    assert metrics.rules_loaded.labels("shadow")._value.get() == 1
    assert metrics.shadow_rule_hits.labels("shadow-c1")._value.get() == 1

    reader.records = [rule_record(3, "deny-c1", None)]
    live.apply(scorer)
    assert batch(2)[0] == "approve"
    assert metrics.rules_loaded.labels("active")._value.get() == 1
