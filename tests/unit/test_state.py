"""Customer state: changelog records, recovery from them, and no double counting on replay."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from stream_app import features
from stream_app.schemas import Transaction
from stream_app.state import EntityState

pytestmark = pytest.mark.unit


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
    assert json.loads(record.value)["offset"] == 11
    assert state.take_changes() == []


def test_recovered_state_equals_the_original_and_skips_replayed_offsets() -> None:
    original = EntityState()
    for offset, minute in enumerate(range(3)):
        observe(original, txn(f"t{offset}", minute), partition=0, offset=offset)
    (record,) = original.take_changes()

    # what Faust's recovery puts in the table store: the JSON-decoded changelog value
    recovered = EntityState(customers={"c1": json.loads(record.value)})
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
