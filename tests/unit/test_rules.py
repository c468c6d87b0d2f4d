"""Rules as data: validation, the rule set's version, evaluation semantics and the live book."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from stream_app.features import FEATURE_NAMES
from stream_app.rules import RuleRejection, RuleSet, evaluate, parse_rule, settings_rules
from stream_app.rules.book import RuleBook
from stream_app.rules.model import RULE_ADAPTER, Rule
from stream_app.schemas import Decision, Transaction
from stream_app.scoring import Thresholds
from stream_app.validation import RawRecord

BANDS = Thresholds(review=0.5, block=0.9)
SCORE_OF: dict[Decision, float] = {"approve": 0.1, "review": 0.6, "block": 0.95}


def rule(**fields: Any) -> Rule:
    return RULE_ADAPTER.validate_python({"rule_id": "r1", **fields})


def txn(index: int = 0, **changes: object) -> Transaction:
    fields: dict[str, object] = {
        "transaction_id": f"t{index}",
        "customer_id": f"c{index}",
        "amount": 100.0,
        "merchant_category": "grocery",
        "transaction_type": "pos",
        "device_id": f"d{index}",
        "geo_location": "US-CA",
        "timestamp": "2025-03-01T12:00:00Z",
        "merchant_id": "m1",
    }
    fields.update(changes)
    return Transaction.model_validate(fields)


def matrix(rows: int, **columns: list[float]) -> npt.NDArray[np.float32]:
    values = np.zeros((rows, len(FEATURE_NAMES)), dtype=np.float32)
    for name, column in columns.items():
        values[:, FEATURE_NAMES.index(name)] = column
    return values


def one(
    rules: list[Rule], model: Decision, transaction: Transaction | None = None, **cols: float
) -> tuple[Decision, list[str], tuple[str, ...]]:
    """One transaction whose model decision is ``model``: final decision, reasons, shadow hits."""
    outcome = evaluate(
        RuleSet(tuple(rules)),
        [transaction or txn()],
        matrix(1, **{name: [value] for name, value in cols.items()}),
        np.array([SCORE_OF[model]], dtype=np.float32),
        BANDS,
    )
    return outcome.decisions[0], [r.code for r in outcome.reasons[0]], outcome.shadow_hits[0]


# --- validation -----------------------------------------------------------------------------


def test_the_issue_example_parses_as_a_deny_list_rule() -> None:
    value = (
        b'{"schema_version": 1, "rule_id": "deny-dev-evil", "kind": "deny_list", '
        b'"field": "device_id", "values": ["dev-evil"], "action": "block", "mode": "active", '
        b'"description": "seen in a takeover"}'
    )
    parsed = parse_rule(b"deny-dev-evil", value)
    assert not isinstance(parsed, RuleRejection)
    assert (parsed.kind, parsed.rule_id, parsed.mode) == ("deny_list", "deny-dev-evil", "active")


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (None, b"not json", "invalid_json"),
        (None, b"\xc3\x28", "invalid_encoding"),
        (None, b'{"rule_id": "x", "kind": "nope"}', "schema_violation"),
        (
            None,
            b'{"rule_id": "x", "kind": "deny_list", "field": "email", "values": ["a"]}',
            "schema_violation",
        ),
        (
            None,
            b'{"rule_id": "x", "kind": "deny_list", "field": "device_id", "values": []}',
            "schema_violation",
        ),
        (
            None,
            b'{"rule_id": "x", "kind": "velocity", "feature": "nope", "above": 1}',
            "schema_violation",
        ),
        (
            None,
            b'{"rule_id": "x", "kind": "score_band", "review": 0.9, "block": 0.5}',
            "schema_violation",
        ),
        (None, b'{"rule_id": "x", "kind": "score_band"}', "schema_violation"),
        (
            None,
            b'{"rule_id": "x", "kind": "amount_limit", "usd_above": 5, "mode": "loud"}',
            "schema_violation",
        ),
        (
            None,
            b'{"rule_id": "x", "kind": "amount_limit", "usd_above": 5, "extra": 1}',
            "schema_violation",
        ),
        (b"other", b'{"rule_id": "x", "kind": "amount_limit", "usd_above": 5}', "key_mismatch"),
        (None, b'{"rule_id": "' + b"x" * (1024 * 1024) + b'"}', "oversized"),
    ],
)
def test_a_malformed_rule_is_rejected_with_its_reason(
    key: bytes | None, value: bytes, reason: str
) -> None:
    parsed = parse_rule(key, value)
    assert isinstance(parsed, RuleRejection)
    assert parsed.reason == reason


def test_version_ignores_arrival_and_list_order_but_not_content() -> None:
    a = rule(kind="deny_list", field="device_id", values=["x", "y"])
    b = RULE_ADAPTER.validate_python(
        {"rule_id": "r2", "kind": "amount_limit", "usd_above": 10, "mode": "shadow"}
    )
    a_reordered = rule(kind="deny_list", field="device_id", values=["y", "x", "y"])
    assert RuleSet((a, b)).version == RuleSet((b, a_reordered)).version
    assert RuleSet((a, b)).version != RuleSet((a,)).version
    assert (
        RuleSet((a,)).version
        != RuleSet((rule(kind="deny_list", field="device_id", values=["x"]),)).version
    )
    assert len(RuleSet().version) == 12


# --- evaluation -----------------------------------------------------------------------------


def test_deny_list_escalates_on_every_field_it_names() -> None:
    for field, value in [("customer_id", "c0"), ("merchant_id", "m1"), ("geo_location", "US-CA")]:
        deny = rule(kind="deny_list", field=field, values=[value])
        assert one([deny], "approve")[:2] == ("block", ["rule:r1"])
    review = rule(kind="deny_list", field="device_id", values=["d0"], action="review")
    assert one([review], "approve")[0] == "review"
    assert one([review], "block")[0] == "block"  # escalating rules never relax
    assert one([review], "approve", txn(device_id="other"))[:2] == ("approve", [])


def test_allow_list_caps_the_model_but_a_deny_list_hit_still_wins() -> None:
    allow = rule(kind="allow_list", field="device_id", values=["d0"], action="review")
    assert one([allow], "block")[:2] == ("review", ["rule:r1"])
    assert one([allow], "approve")[0] == "approve"  # a cap, not a floor
    deny = RULE_ADAPTER.validate_python(
        {"rule_id": "r0", "kind": "deny_list", "field": "customer_id", "values": ["c0"]}
    )
    assert one([allow, deny], "approve")[:2] == ("block", ["rule:r0", "rule:r1"])


def test_amount_limit_and_its_merchant_category() -> None:
    limit = rule(kind="amount_limit", usd_above=500)
    assert one([limit], "approve", amount_usd=500.0)[0] == "approve"  # above, not at
    assert one([limit], "approve", amount_usd=500.5)[:2] == ("review", ["rule:r1"])
    travel = rule(kind="amount_limit", usd_above=500, merchant_category="travel", action="block")
    assert one([travel], "approve", amount_usd=900.0)[0] == "approve"
    assert one([travel], "approve", txn(merchant_category="travel"), amount_usd=900.0)[0] == "block"


def test_velocity_reads_the_named_feature() -> None:
    fast = rule(kind="velocity", feature="cust_txn_count_1h", above=10)
    assert one([fast], "approve", cust_txn_count_1h=10.0)[0] == "approve"
    assert one([fast], "approve", cust_txn_count_1h=11.0)[:2] == ("review", ["rule:r1"])


def test_score_band_overrides_the_thresholds_and_names_itself_where_it_changed_a_row() -> None:
    band = rule(kind="score_band", review=0.05)
    assert one([band], "approve")[:2] == ("review", ["rule:r1"])  # 0.1 is now above review
    assert one([band], "review")[:2] == ("review", [])  # unchanged: no hit
    blocking = rule(kind="score_band", block=0.55)
    assert one([blocking], "review")[0] == "block"


def test_shadow_rules_are_recorded_and_never_acted_on() -> None:
    shadow_deny = rule(kind="deny_list", field="device_id", values=["d0"], mode="shadow")
    shadow_band = RULE_ADAPTER.validate_python(
        {"rule_id": "band", "kind": "score_band", "review": 0.05, "mode": "shadow"}
    )
    decision, reasons, shadow = one([shadow_deny, shadow_band], "approve")
    assert (decision, reasons, shadow) == ("approve", [], ("band", "r1"))


def test_a_batch_applies_rules_row_by_row() -> None:
    deny = rule(kind="deny_list", field="device_id", values=["d1"])
    transactions = [txn(index) for index in range(3)]
    scores = np.array([0.1, 0.1, 0.95], dtype=np.float32)
    outcome = evaluate(RuleSet((deny,)), transactions, matrix(3), scores, BANDS)
    assert outcome.decisions == ["approve", "block", "block"]
    assert outcome.model_decisions == ["approve", "approve", "block"]
    assert [len(r) for r in outcome.reasons] == [0, 1, 0]


def test_settings_become_rules_with_the_old_reason_codes() -> None:
    rules = RuleSet(settings_rules({"device_id": ["d0"], "merchant_id": []}, 50.0))
    assert [r.rule_id for r in rules.rules] == ["amount_limit", "deny_list:device_id"]
    # deny-lists before limits, as the settings' rules were always listed
    assert one(list(rules.rules), "approve", amount_usd=60.0)[:2] == (
        "block",
        ["rule:deny_list:device_id", "rule:amount_limit"],
    )


# --- the live book --------------------------------------------------------------------------


def record(offset: int, key: str | None, value: dict[str, Any] | bytes | None) -> RawRecord:
    raw = json.dumps(value).encode() if isinstance(value, dict) else value
    return RawRecord("fraud-rules", 0, offset, key.encode() if key else None, raw)


DENY = {"rule_id": "deny-d0", "kind": "deny_list", "field": "device_id", "values": ["d0"]}


def test_book_puts_deletes_and_keeps_the_last_good_set_on_a_malformed_rule() -> None:
    book = RuleBook()
    empty = book.ruleset.version
    changes = book.apply([record(0, "deny-d0", DENY)])
    assert changes.applied == 1 and not changes.rejected
    with_deny = book.ruleset
    assert with_deny.get("deny-d0") is not None and with_deny.version != empty

    changes = book.apply([record(1, "broken", b"{not json"), record(2, "deny-d0", {"x": 1})])
    assert [rejection.reason for rejection, _ in changes.rejected] == [
        "invalid_json",
        "schema_violation",
    ]
    assert book.ruleset is with_deny  # the last good rule set keeps serving
    (_, letter), _ = changes.rejected
    assert (letter.source_topic, letter.offset, letter.key) == ("fraud-rules", 1, "broken")

    assert book.apply([record(3, "deny-d0", None)]).applied == 1  # tombstone
    assert book.ruleset.version == empty


def test_a_topic_rule_overrides_a_settings_rule_until_it_is_deleted() -> None:
    book = RuleBook(settings_rules(review_above_usd=100.0))
    stricter = {"rule_id": "amount_limit", "kind": "amount_limit", "usd_above": 10}
    book.apply([record(0, "amount_limit", stricter)])
    limit = book.ruleset.get("amount_limit")
    assert limit is not None and limit.kind == "amount_limit" and limit.usd_above == 10
    book.apply([record(1, "amount_limit", None)])
    limit = book.ruleset.get("amount_limit")
    assert limit is not None and limit.kind == "amount_limit" and limit.usd_above == 100
