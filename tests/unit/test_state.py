"""Customer state: changelog records, recovery from them, and no double counting on replay."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from stream_app import features
from stream_app.schemas import Transaction
from stream_app.state import (
    RECENT_TRANSACTION_IDS,
    EntityState,
    decode_customer,
    encode_key,
    has_transaction,
    remember_transaction,
    transaction_tag,
)


def txn(txn_id: str, minute: int) -> Transaction:
    return Transaction(
        transaction_id=txn_id,
        customer_id="c1",
        amount=10.0,
        merchant_category="grocery",
        transaction_type="pos",
        device_id="d1",
        geo_location="US-CA",
        timestamp=datetime(2025, 3, 1, 12, minute, tzinfo=UTC),
        merchant_id="m1",
        currency="USD",
    )


def observe(state: EntityState, transaction: Transaction, partition: int, offset: int) -> None:
    if not state.already_observed(transaction.customer_id, offset):
        customer = state.customer(transaction.customer_id)
        features.observe_transaction(customer, state.merchant(transaction.merchant_id), transaction)
        state.record_change(transaction.customer_id, partition, offset)


def test_changes_are_encoded_once_per_customer_for_its_partition() -> None:
    state = EntityState()
    observe(state, txn("a", 0), partition=2, offset=10)
    observe(state, txn("b", 1), partition=2, offset=11)
    (record,) = state.take_changes()
    assert (record.partition, json.loads(record.key)) == (2, "c1")
    assert decode_customer(record.value)[1] == 11
    assert state.take_changes() == []


def test_recovered_state_equals_the_original_and_skips_replayed_offsets() -> None:
    original = EntityState()
    for offset, minute in enumerate(range(3)):
        observe(original, txn(f"t{offset}", minute), partition=0, offset=offset)
    (record,) = original.take_changes()

    # what Faust's recovery puts in the table store: the changelog value's raw bytes
    recovered = EntityState(customers={"c1": record.value})
    assert recovered.customer("c1").to_dict() == original.customer("c1").to_dict()
    # offset 2 was folded in before the "crash": replaying it must not count it twice
    observe(recovered, txn("t2", 2), partition=0, offset=2)
    assert recovered.customer("c1").to_dict() == original.customer("c1").to_dict()
    assert recovered.take_changes() == []
    observe(recovered, txn("t3", 3), partition=0, offset=3)
    assert len(recovered.take_changes()) == 1


def test_peek_does_not_create_customers() -> None:
    state = EntityState()
    assert state.peek_customer("nobody").to_dict() == features.CustomerState().to_dict()
    assert "nobody" not in state.customers


def test_a_customer_remembers_only_its_last_few_transaction_ids() -> None:
    customer = features.CustomerState()
    ids = [f"t{index}" for index in range(RECENT_TRANSACTION_IDS + 3)]
    for transaction_id in ids:
        remember_transaction(customer, transaction_id)
    assert len(customer.transaction_tags) == RECENT_TRANSACTION_IDS
    assert [has_transaction(customer, t) for t in ids] == [False] * 3 + [True] * (
        RECENT_TRANSACTION_IDS
    )


def test_transaction_tags_are_stable_across_processes() -> None:
    # hash() would differ per process (PYTHONHASHSEED) and break the check after a restart
    assert transaction_tag("t1") == 0x14E7FBB9619074E5
    assert 0 <= transaction_tag("x" * 128) < 2**63


def test_remembered_ids_survive_the_changelog_round_trip() -> None:
    original = EntityState()
    customer = original.customer("c1")
    features.observe_transaction(customer, original.merchant("m1"), txn("a", 0))
    remember_transaction(customer, "a")
    original.record_change("c1", partition=0, offset=5)
    (record,) = original.take_changes()

    recovered = EntityState(customers={"c1": record.value})
    assert recovered.is_duplicate("c1", "a")
    assert not recovered.is_duplicate("c1", "b")
    assert not recovered.is_duplicate("c2", "a")  # ids are per customer
    assert "c2" not in recovered.customers


def test_states_written_before_duplicate_checks_still_recover() -> None:
    state = features.CustomerState().to_dict()
    del state["transaction_tags"]
    recovered = EntityState(customers={"c1": {"offset": 3, "state": state}})
    assert not recovered.is_duplicate("c1", "a")
    assert recovered.already_observed("c1", 3)


def test_json_states_written_before_the_binary_format_still_recover() -> None:
    original = EntityState()
    for offset, minute in enumerate(range(3)):
        observe(original, txn(f"t{offset}", minute), partition=0, offset=offset)
    customer = original.customer("c1")
    legacy = json.dumps({"offset": 2, "state": customer.to_dict()}).encode()
    for stored in (legacy, json.loads(legacy)):  # raw bytes, or as a JSON-valued table held it
        recovered = EntityState(customers={"c1": stored})
        assert recovered.customer("c1") == customer
        assert recovered.already_observed("c1", 2)
        assert not recovered.already_observed("c1", 3)


def test_a_snapshot_whose_offset_starts_with_a_brace_is_not_taken_for_json() -> None:
    state = EntityState()
    observe(state, txn("t0", 0), partition=0, offset=ord("{"))
    (record,) = state.take_changes()
    assert decode_customer(record.value)[1] == ord("{")


def test_an_unreadable_state_starts_the_customer_empty_and_is_counted() -> None:
    original = EntityState()
    observe(original, txn("t0", 0), partition=0, offset=4)
    (record,) = original.take_changes()
    unreadable: list[str] = []
    for stored in (record.value[:-3], b"{not json", b"\x07" + record.value[1:], {"offset": 1}):
        recovered = EntityState(customers={"c1": stored})
        recovered.on_unreadable = lambda: unreadable.append("c1")
        assert recovered.customer("c1") == features.CustomerState()
        assert not recovered.already_observed("c1", 0)
    assert len(unreadable) == 4


@pytest.mark.parametrize(
    "customer_id",
    [chr(code) for code in range(0x80)]
    + ["C00012345", 'a"b', "a\\b", "a\\", "caf\u00e9", "\u2028", "x\x7f", " ", "\U0001f600"],
)
def test_changelog_keys_are_the_json_strings_faust_decodes(customer_id: str) -> None:
    assert encode_key(customer_id) == json.dumps(customer_id).encode()
    assert json.loads(encode_key(customer_id)) == customer_id
