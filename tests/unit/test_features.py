"""Hand-made histories with exact expected feature values, state serialisation and the API.

Each case runs both paths (offline over a frame, online by replay) and checks that they agree
before checking the values, so every expectation here holds for the worker and for training.
"""

from __future__ import annotations

import itertools
import json
import math
from array import array
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd
import pytest

from producers.simulator import world
from stream_app import geo
from stream_app.features import (
    FEATURE_NAMES,
    MERCHANT_CATEGORIES,
    MISSING,
    TRANSACTION_TYPES,
    CustomerState,
    MerchantState,
    feature_vector_to_dict,
    merchant_features,
    observe_label,
    observe_transaction,
    offline_features,
    online_features,
    online_features_batch,
)
from stream_app.features import customer as customer_module
from stream_app.features.core import US_PER_DAY, to_micros
from stream_app.schemas import Label, Transaction
from tests.unit.test_features_parity import (
    History,
    assert_frames_identical,
    random_history,
    replay_online,
    to_transaction,
)

MONDAY = pd.Timestamp("2024-03-04T00:00:00Z")  # a Monday, 00:00 UTC
_ids = itertools.count()


def txn(
    at: pd.Timestamp | str,
    amount: float = 10.0,
    customer: str = "c1",
    merchant: str | None = "m1",
    device: str = "d1",
    region: str = "US-NY",
    currency: str | None = "USD",
    category: str = "grocery",
    kind: str = "purchase",
) -> dict[str, object]:
    return {
        "transaction_id": f"t{next(_ids)}",
        "customer_id": customer,
        "merchant_id": merchant,
        "amount": amount,
        "merchant_category": category,
        "transaction_type": kind,
        "device_id": device,
        "geo_location": region,
        "currency": currency,
        "timestamp": pd.Timestamp(at),
    }


def label(
    at: pd.Timestamp | str, is_fraud: bool = True, merchant: str | None = "m1"
) -> dict[str, object]:
    return {
        "transaction_id": f"l{next(_ids)}",
        "is_fraud": is_fraud,
        "labeled_at": pd.Timestamp(at),
        "merchant_id": merchant,
    }


def features_of(
    rows: list[dict[str, object]], labels: Iterable[dict[str, object]] = ()
) -> pd.DataFrame:
    """Offline features of ``rows``, after checking that the online replay agrees (rows are
    replayed in timestamp order, equal timestamps in list order)."""
    label_frame = pd.DataFrame(
        list(labels), columns=["transaction_id", "is_fraud", "labeled_at", "merchant_id"]
    )
    label_frame["labeled_at"] = pd.to_datetime(label_frame["labeled_at"], utc=True)
    label_frame = label_frame.sort_values("labeled_at", kind="stable").reset_index(drop=True)
    frame = pd.DataFrame(rows)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    offline = offline_features(frame, label_frame)
    arrival_order = frame.sort_values("timestamp", kind="stable")
    assert_frames_identical(offline, replay_online(History(arrival_order, label_frame)).features)
    return offline


def values(frame: pd.DataFrame, row: int, names: Iterable[str]) -> dict[str, float]:
    return {name: float(frame[name].iloc[row]) for name in names}


# ---------------------------------------------------------------------------------------------
# Exact values.


def test_merchant_volume_counts_other_customers_up_to_one_second_before() -> None:
    """As of t - 1 s, from any customer: a transaction 1 s earlier counts, one 0.5 s earlier or
    at the same instant does not (online and offline, which features_of checks agree)."""
    start = MONDAY + pd.Timedelta(hours=9)
    rows = [
        txn(start, customer="a"),
        txn(start + pd.Timedelta(seconds=1), customer="b"),  # exactly 1 s after the first
        txn(start + pd.Timedelta(seconds=1.5), customer="c"),  # 0.5 s after the second
        txn(start + pd.Timedelta(seconds=1.5), customer="d"),  # same instant as the third
    ]
    result = features_of(rows)
    assert result["merchant_txn_count_1h"].tolist() == [0.0, 1.0, 1.0, 1.0]


def test_first_transaction_has_empty_history_values() -> None:
    first = features_of(
        [txn(MONDAY + pd.Timedelta(hours=15), amount=830.0, currency="INR", region="IN-MH")]
    )

    assert values(first, 0, FEATURE_NAMES) == {
        "amount": 830.0,
        "amount_usd": 10.0,
        "hour_of_day": 20.0,  # 15:00 UTC is 20:30 in India
        "day_of_week": 0.0,
        "is_weekend": 0.0,
        "merchant_category_code": float(MERCHANT_CATEGORIES.index("grocery")),
        "transaction_type_code": float(TRANSACTION_TYPES.index("purchase")),
        **{f"cust_txn_count_{w}": 0.0 for w in ("1h", "24h", "7d", "30d")},
        **{f"cust_amount_sum_{w}": 0.0 for w in ("1h", "24h", "7d", "30d")},
        **{f"cust_amount_mean_{w}": MISSING for w in ("1h", "24h", "7d", "30d")},
        "amount_to_mean_30d": MISSING,
        "amount_zscore_30d": 0.0,
        "seconds_since_prev_txn": MISSING,
        "device_first_seen": 1.0,
        "seconds_since_device_first_seen": 0.0,
        "merchant_first_seen": 1.0,
        "region_first_seen": 1.0,
        "region_changed": MISSING,
        "distance_km_from_prev": MISSING,
        "speed_kmh_from_prev": MISSING,
        "merchant_txn_count_1h": 0.0,
        "merchant_txn_count_24h": 0.0,
        **{f"merchant_{kind}_{w}": 0.0 for kind in ("labels", "frauds") for w in ("7d", "30d")},
        "merchant_fraud_rate_7d": MISSING,
        "merchant_fraud_rate_30d": MISSING,
    }


def test_sliding_windows_exclude_an_event_exactly_one_window_earlier() -> None:
    start = MONDAY + pd.Timedelta(hours=9)
    rows = [
        txn(start, amount=10.0),
        txn(start + pd.Timedelta(hours=1), amount=20.5),  # first is exactly 1 h earlier
        txn(start + pd.Timedelta(hours=24), amount=7.25),  # first exactly 24 h earlier
        txn(start + pd.Timedelta(hours=25) - pd.Timedelta(microseconds=1), amount=1.0),
    ]
    names = ["cust_txn_count_1h", "cust_amount_sum_1h", "cust_txn_count_24h", "cust_amount_sum_24h"]

    result = features_of(rows)

    assert values(result, 1, names) == dict(zip(names, [0.0, 0.0, 1.0, 10.0], strict=True))
    assert values(result, 2, names) == dict(zip(names, [0.0, 0.0, 1.0, 20.5], strict=True))
    assert values(result, 3, names) == dict(zip(names, [1.0, 7.25, 2.0, 27.75], strict=True))
    # Merchant volume is "as of 1 s earlier" (merchant.VOLUME_LAG_US): row 2's window
    # (start - 1 s, start + 24 h - 1 s] still holds the first; row 3's the second and third.
    assert result["merchant_txn_count_24h"].tolist() == [0.0, 1.0, 2.0, 2.0]


def test_calendar_windows_start_at_utc_midnight() -> None:
    today = MONDAY + pd.Timedelta(days=40)
    rows = [
        txn(today - pd.Timedelta(days=30), amount=1.0),  # day D-30: in no window
        txn(today - pd.Timedelta(days=29), amount=2.0),  # first moment of the 30-day window
        txn(today - pd.Timedelta(days=6) - pd.Timedelta(microseconds=1), amount=4.0),
        txn(today - pd.Timedelta(days=6), amount=8.0),  # first moment of the 7-day window
        txn(today + pd.Timedelta(hours=23), amount=16.0),
    ]

    last = values(
        features_of(rows),
        4,
        ["cust_txn_count_7d", "cust_amount_sum_7d", "cust_txn_count_30d", "cust_amount_sum_30d"],
    )

    assert last == {
        "cust_txn_count_7d": 1.0,
        "cust_amount_sum_7d": 8.0,
        "cust_txn_count_30d": 3.0,
        "cust_amount_sum_30d": 14.0,
    }


def test_amount_profile_against_the_30_day_history() -> None:
    history = [
        txn(MONDAY + pd.Timedelta(hours=h), amount=a) for h, a in ((1, 10.0), (2, 20.0), (3, 30.0))
    ]
    constant = [txn(MONDAY + pd.Timedelta(hours=h), amount=25.0, customer="c2") for h in (1, 2, 3)]
    rows = [*history, txn(MONDAY + pd.Timedelta(hours=4), amount=40.0), *constant]
    rows.append(txn(MONDAY + pd.Timedelta(hours=4), amount=26.0, customer="c2"))

    result = features_of(rows)

    assert float(result["amount_to_mean_30d"].iloc[3]) == 2.0
    # cents 1000, 2000, 3000: mean 2000, variance 2e6/3, so 4000 is sqrt(6) deviations out.
    assert float(result["amount_zscore_30d"].iloc[3]) == pytest.approx(math.sqrt(6), rel=1e-6)
    # A constant history has no spread; the 1-dollar floor on the deviation applies.
    assert float(result["amount_zscore_30d"].iloc[7]) == 1.0
    assert float(result["cust_amount_mean_30d"].iloc[7]) == 25.0


def test_same_timestamp_follows_arrival_order() -> None:
    moment = MONDAY + pd.Timedelta(hours=12)
    rows = [txn(moment, amount=5.0, device="d1"), txn(moment, amount=7.0, device="d2")]

    result = features_of(rows)

    assert values(result, 0, ["cust_txn_count_1h", "seconds_since_prev_txn"]) == {
        "cust_txn_count_1h": 0.0,
        "seconds_since_prev_txn": MISSING,
    }
    assert values(
        result, 1, ["cust_txn_count_1h", "seconds_since_prev_txn", "device_first_seen"]
    ) == {
        "cust_txn_count_1h": 1.0,
        "seconds_since_prev_txn": 0.0,
        "device_first_seen": 1.0,
    }


def test_travel_between_known_and_unknown_regions() -> None:
    start = MONDAY + pd.Timedelta(hours=8)
    rows = [
        txn(start, region="IN-MH", currency=None),
        txn(start + pd.Timedelta(minutes=10), region="US-NY"),
        txn(start + pd.Timedelta(minutes=10), region="GB-ENG"),  # same instant: 1-minute floor
        txn(start + pd.Timedelta(hours=2), region="ZZ-99", currency="XYZ"),
        txn(start + pd.Timedelta(hours=3), region="ZZ-99", currency="XYZ"),
    ]
    names = ["region_changed", "distance_km_from_prev", "speed_kmh_from_prev", "region_first_seen"]
    mumbai_new_york = geo.haversine_km("IN-MH", "US-NY")
    new_york_london = geo.haversine_km("US-NY", "GB-ENG")
    assert mumbai_new_york is not None and new_york_london is not None

    result = features_of(rows)

    assert list(values(result, 1, names).values()) == pytest.approx(
        [1.0, mumbai_new_york, mumbai_new_york * 6, 1.0], rel=1e-6
    )
    assert list(values(result, 2, names).values()) == pytest.approx(
        [1.0, new_york_london, new_york_london * 60, 1.0], rel=1e-6
    )
    assert values(result, 3, names) == {
        "region_changed": 1.0,
        "distance_km_from_prev": MISSING,
        "speed_kmh_from_prev": MISSING,
        "region_first_seen": 1.0,
    }
    assert values(result, 4, names) == {
        "region_changed": 0.0,
        "distance_km_from_prev": MISSING,
        "speed_kmh_from_prev": MISSING,
        "region_first_seen": 0.0,
    }
    # Unknown region and currency: UTC calendar, amount taken as dollars.
    assert values(result, 3, ["hour_of_day", "amount_usd"]) == {
        "hour_of_day": 10.0,
        "amount_usd": 10.0,
    }


def test_labels_count_from_the_instant_they_mature() -> None:
    moment = MONDAY + pd.Timedelta(days=10, hours=14)
    labels = [
        label(moment - pd.Timedelta(days=30), is_fraud=True),  # before both windows
        label(MONDAY + pd.Timedelta(days=4), is_fraud=True),  # first moment of the 7-day window
        label(MONDAY + pd.Timedelta(days=4) - pd.Timedelta(microseconds=1), is_fraud=False),
        label(moment, is_fraud=False),  # matures exactly at the transaction
        label(moment + pd.Timedelta(microseconds=1), is_fraud=True),  # one microsecond too late
        label(moment - pd.Timedelta(hours=1), is_fraud=True, merchant="m2"),  # another merchant
        label(moment - pd.Timedelta(hours=1), is_fraud=True, merchant=None),  # merchant unknown
    ]
    rows = [txn(moment), txn(moment, merchant=None, customer="c2")]

    result = features_of(rows, labels)

    assert values(
        result, 0, [n for n in FEATURE_NAMES if "_labels_" in n or "_frauds_" in n or "_rate_" in n]
    ) == {
        "merchant_labels_7d": 2.0,
        "merchant_frauds_7d": 1.0,
        "merchant_fraud_rate_7d": 0.5,
        "merchant_labels_30d": 3.0,
        "merchant_frauds_30d": 1.0,
        "merchant_fraud_rate_30d": float(np.float32(1 / 3)),
    }
    assert values(result, 1, ["merchant_labels_7d", "merchant_frauds_7d"]) == {
        "merchant_labels_7d": 1.0,
        "merchant_frauds_7d": 1.0,
    }


def test_unlisted_categories_map_to_other() -> None:
    rows = [
        txn(MONDAY, category="Online Retail", kind="ATM-Withdrawal"),
        txn(MONDAY, category="space_tourism", kind="teleport"),
    ]

    result = features_of(rows)

    assert result["merchant_category_code"].tolist() == [
        float(MERCHANT_CATEGORIES.index("online_retail")),
        0.0,
    ]
    assert result["transaction_type_code"].tolist() == [
        float(TRANSACTION_TYPES.index("atm_withdrawal")),
        0.0,
    ]
    assert MERCHANT_CATEGORIES[0] == TRANSACTION_TYPES[0] == "other"


def test_every_simulated_category_and_channel_has_its_own_code() -> None:
    assert {c.name for c in world.CATEGORIES} <= set(MERCHANT_CATEGORIES[1:])
    assert set(world.CHANNELS) <= set(TRANSACTION_TYPES[1:])


def test_first_seen_sets_stop_admitting_at_capacity() -> None:
    rows = [txn(MONDAY + pd.Timedelta(minutes=i), device=f"d{i}") for i in range(17)]
    rows += [
        txn(MONDAY + pd.Timedelta(hours=1), device="d0"),
        txn(MONDAY + pd.Timedelta(hours=2), device="d16"),
    ]

    result = features_of(rows)["device_first_seen"].tolist()

    assert result[:17] == [1.0] * 17
    assert result[17:] == [0.0, 1.0]  # d16 came after 16 devices: never remembered


def test_seconds_since_device_first_seen_counts_from_the_first_use() -> None:
    rows = [
        txn(MONDAY, device="d1"),
        txn(MONDAY + pd.Timedelta(minutes=10), device="d2"),
        txn(MONDAY + pd.Timedelta(hours=1, microseconds=500_001), device="d1"),
        txn(MONDAY + pd.Timedelta(hours=2), device="d2"),
        txn(MONDAY + pd.Timedelta(hours=2), device="d2"),  # same instant: 0 s more
        txn(MONDAY + pd.Timedelta(days=40), device="d1"),  # past every window: still known
        txn(MONDAY + pd.Timedelta(days=40), device="d3", customer="c2"),
        txn(MONDAY + pd.Timedelta(days=41), device="d1", customer="c2"),  # c1's device
    ]

    result = features_of(rows)

    assert result["seconds_since_device_first_seen"].tolist() == [
        0.0,
        0.0,
        np.float32(3600.500001),
        6600.0,
        6600.0,
        40 * 86400.0,
        0.0,
        0.0,
    ]
    assert result["device_first_seen"].tolist() == [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0]


def test_a_device_past_the_capacity_reads_as_first_used_now() -> None:
    rows = [txn(MONDAY + pd.Timedelta(minutes=i), device=f"d{i}") for i in range(17)]
    rows += [
        txn(MONDAY + pd.Timedelta(hours=1), device="d0"),
        txn(MONDAY + pd.Timedelta(hours=2), device="d16"),
    ]

    result = features_of(rows)["seconds_since_device_first_seen"].tolist()

    assert result == [0.0] * 17 + [3600.0, 0.0]  # d16 was never remembered, like the flag


def test_squared_amounts_past_int64_agree_and_do_not_crash() -> None:
    rows = [txn(MONDAY + pd.Timedelta(seconds=i), amount=1_000_000.0) for i in range(1000)]

    result = features_of(rows)

    assert float(result["cust_amount_sum_30d"].iloc[-1]) == pytest.approx(
        999 * 1_000_000.0, rel=1e-6
    )
    assert np.isfinite(result.to_numpy()).all()


# ---------------------------------------------------------------------------------------------
# State: compact, serialisable, untouched by scoring.


def _replayed_states(
    seed: int,
) -> tuple[dict[str, CustomerState], dict[str, MerchantState], list[Transaction]]:
    history = random_history(seed, customers=40, rows=600, days=45)
    replay = replay_online(history)
    transactions = [to_transaction(row) for row in history.transactions.to_dict("records")]
    return replay.customers, replay.merchants, transactions


def test_states_round_trip_through_json_and_the_binary_snapshot() -> None:
    customers, merchants, transactions = _replayed_states(11)
    probe = transactions[-1]

    for key, customer in customers.items():
        restored = CustomerState.from_dict(json.loads(json.dumps(customer.to_dict())))
        assert restored == customer, key
        assert CustomerState.from_bytes(customer.to_bytes()) == customer, key
    assert any(customer.last_region for customer in customers.values())
    assert CustomerState.from_bytes(CustomerState().to_bytes()) == CustomerState()
    for key, merchant in merchants.items():
        restored_merchant = MerchantState.from_dict(json.loads(json.dumps(merchant.to_dict())))
        assert restored_merchant == merchant, key
        assert merchant_features(
            restored_merchant, to_micros(probe.timestamp)
        ) == merchant_features(merchant, to_micros(probe.timestamp))
    assert any(len(merchant.label_days) for merchant in merchants.values())


def test_from_bytes_rejects_other_versions_and_torn_snapshots() -> None:
    customers, _, _ = _replayed_states(11)
    snapshot = max(customers.values(), key=lambda customer: len(customer.days)).to_bytes()
    with pytest.raises(ValueError, match="version"):
        CustomerState.from_bytes(b"\x01" + snapshot[1:])
    with pytest.raises(ValueError, match="trailing"):
        CustomerState.from_bytes(snapshot + b"\x00")
    for cut in (1, 8, 9, len(snapshot) - 3):
        with pytest.raises(ValueError, match="truncated"):
            CustomerState.from_bytes(snapshot[:-cut])


def _without_first_use(seen: array[int]) -> array[int]:
    """``seen`` as the formats before first-use times held it: the tags alone."""
    return array("I", [tagged for tagged in seen if tagged & 3])


def _old_formats(customer: CustomerState) -> tuple[bytes, dict[str, object]]:
    """The customer as binary version 2 and JSON version 1 wrote it: the same layout as the
    current ones but for ``seen``, which held bare tags."""
    bare = CustomerState(
        last_us=customer.last_us,
        last_region=customer.last_region,
        recent=customer.recent,
        days=customer.days,
        seen=_without_first_use(customer.seen),
        transaction_tags=customer.transaction_tags,
    )
    return b"\x02" + bare.to_bytes()[1:], bare.to_dict() | {"version": 1}


def test_old_snapshots_decode_with_the_first_use_of_their_devices_unknown() -> None:
    customers, _, transactions = _replayed_states(11)
    key = max(customers, key=lambda name: len(customers[name].seen))
    customer = customers[key]
    devices = sorted({t.device_id for t in transactions if t.customer_id == key})
    probe = max(transactions, key=lambda transaction: transaction.timestamp)
    index = FEATURE_NAMES.index("seconds_since_device_first_seen")
    old_binary, old_json = _old_formats(customer)

    for restored in (CustomerState.from_bytes(old_binary), CustomerState.from_dict(old_json)):
        assert len(restored.seen) == len(customer.seen)  # two words after each device tag
        assert _without_first_use(restored.seen) == _without_first_use(customer.seen)
        remembered = 0
        for device in devices:
            on_device = probe.model_copy(update={"customer_id": key, "device_id": device})
            old_row = online_features(on_device, restored, MerchantState()).tolist()
            new_row = online_features(on_device, customer, MerchantState()).tolist()
            remembered += new_row[index - 1] == 0.0  # device_first_seen
            # Past the device capacity, a device reads as first used now in both formats.
            assert old_row[index] == (MISSING if new_row[index - 1] == 0.0 else 0.0)
            assert old_row[:index] + old_row[index + 1 :] == new_row[:index] + new_row[index + 1 :]
        assert remembered == 16  # the heavy customer's capacity: the case above is not vacuous


def test_a_device_first_used_after_an_upgrade_gets_its_time() -> None:
    customers, _, transactions = _replayed_states(11)
    key = min(customers, key=lambda name: len(customers[name].seen))
    probe = max(transactions, key=lambda transaction: transaction.timestamp)
    index = FEATURE_NAMES.index("seconds_since_device_first_seen")
    first = probe.model_copy(update={"customer_id": key, "device_id": "new-after-upgrade"})
    later = first.model_copy(update={"timestamp": probe.timestamp + pd.Timedelta(seconds=90)})

    for old in _old_formats(customers[key]):
        restored = (
            CustomerState.from_bytes(old)
            if isinstance(old, bytes)
            else CustomerState.from_dict(old)
        )
        observe_transaction(restored, MerchantState(), first)

        assert online_features(later, restored, MerchantState()).tolist()[index] == 90.0
        assert CustomerState.from_bytes(restored.to_bytes()) == restored
        assert CustomerState.from_dict(json.loads(json.dumps(restored.to_dict()))) == restored


def test_snapshots_with_a_device_tag_lacking_its_first_use_are_refused() -> None:
    customers, _, _ = _replayed_states(11)
    customer = max(customers.values(), key=lambda state: len(state.seen))
    old_binary, old_json = _old_formats(customer)

    with pytest.raises(ValueError, match="wrong length"):
        CustomerState.from_bytes(b"\x03" + old_binary[1:])  # bare tags under the new version
    with pytest.raises(ValueError, match="wrong length"):
        CustomerState.from_dict(old_json | {"version": 2})


def test_from_dict_rejects_other_versions_and_torn_arrays() -> None:
    with pytest.raises(ValueError, match="version"):
        CustomerState.from_dict(CustomerState().to_dict() | {"version": 99})
    with pytest.raises(ValueError, match="version"):
        MerchantState.from_dict(MerchantState().to_dict() | {"version": 0})
    with pytest.raises(ValueError, match="wrong length"):
        CustomerState.from_dict(CustomerState().to_dict() | {"days": [1, 2]})
    with pytest.raises(ValueError, match="wrong length"):
        MerchantState.from_dict(MerchantState().to_dict() | {"label_days": [1]})


def test_state_keeps_only_what_windows_need() -> None:
    customers, merchants, _ = _replayed_states(5)

    for customer in customers.values():
        days = [customer.days[i] >> 32 for i in range(0, len(customer.days), 3)]
        assert len(days) <= 30 and days == sorted(days)
        assert all(
            customer.recent[i] > (customer.last_us or 0) - US_PER_DAY
            for i in range(0, len(customer.recent), 2)
        )
    for merchant in merchants.values():
        assert merchant.clock_day is not None
        assert len(merchant.label_days) <= 3 * 33
        assert all(
            moment >= (merchant.clock_day - 1) * US_PER_DAY for moment in merchant.label_times
        )
        times = merchant.txn_times.tolist()
        expired = [moment for moment in times if times and moment <= times[-1] - US_PER_DAY]
        assert len(expired) < 64  # dropped in chunks of 64


def test_online_features_do_not_change_state() -> None:
    customers, merchants, transactions = _replayed_states(2)
    probe = transactions[len(transactions) // 2]
    customer, merchant = customers[probe.customer_id], merchants[probe.merchant_id or "unknown"]
    before = (customer.to_dict(), merchant.to_dict())

    online_features(probe, customer, merchant)

    assert (customer.to_dict(), merchant.to_dict()) == before


def test_late_label_of_an_old_day_is_folded_and_counted() -> None:
    merchant = MerchantState()
    observe_transaction(
        CustomerState(), merchant, to_transaction(txn(MONDAY + pd.Timedelta(days=10)))
    )
    observe_label(
        merchant, Label(transaction_id="x", is_fraud=True, labeled_at=MONDAY + pd.Timedelta(days=5))
    )
    later = to_micros(MONDAY + pd.Timedelta(days=10, hours=1))

    assert merchant.label_days.tolist() == [(to_micros(MONDAY) // US_PER_DAY) + 5, 1, 1]
    assert merchant_features(merchant, later)[2:5] == [1.0, 1.0, 1.0]


def test_merchant_volume_tolerates_transactions_out_of_order() -> None:
    # Customers sit on different partitions, so a merchant's transactions interleave loosely.
    merchant = MerchantState()
    for minutes in (60, 30, 0):
        moment = MONDAY + pd.Timedelta(hours=10, minutes=minutes)
        observe_transaction(CustomerState(), merchant, to_transaction(txn(moment)))
    at_10_45 = to_micros(MONDAY + pd.Timedelta(hours=10, minutes=45))

    assert merchant.txn_times.tolist() == sorted(merchant.txn_times.tolist())
    assert merchant_features(merchant, at_10_45)[:2] == [2.0, 2.0]  # 11:00 is still ahead


# ---------------------------------------------------------------------------------------------
# API surface.


def test_batch_equals_sequential_and_sees_earlier_rows_of_the_batch() -> None:
    rows = [txn(MONDAY + pd.Timedelta(minutes=m), amount=float(m + 1)) for m in range(3)]
    rows.append(txn(MONDAY + pd.Timedelta(minutes=3), customer="c2"))
    transactions = [to_transaction(row) for row in rows]
    shared_customer, other_customer, merchant = CustomerState(), CustomerState(), MerchantState()
    owners = [shared_customer, shared_customer, shared_customer, other_customer]

    batch = online_features_batch(transactions, owners, [merchant] * 4)

    expected = features_of(rows).to_numpy()
    np.testing.assert_array_equal(batch, expected)
    assert batch.dtype == np.float32 and batch.shape == (4, len(FEATURE_NAMES))
    assert batch[2, FEATURE_NAMES.index("cust_txn_count_1h")] == 2.0


def test_feature_vector_to_dict_keeps_order_and_float32_values() -> None:
    vector = online_features(
        to_transaction(txn(MONDAY, amount=0.1)), CustomerState(), MerchantState()
    )

    as_dict = feature_vector_to_dict(vector)

    assert list(as_dict) == list(FEATURE_NAMES)
    assert all(type(value) is float for value in as_dict.values())
    assert np.array(list(as_dict.values()), dtype=np.float32).tobytes() == vector.tobytes()
    assert json.loads(json.dumps(as_dict)) == as_dict


def test_offline_keeps_index_and_order_of_an_unsorted_frame() -> None:
    rows = [txn(MONDAY + pd.Timedelta(hours=h), amount=float(h)) for h in (3, 1, 2)]
    frame = pd.DataFrame(rows, index=["x", "y", "z"])

    result = offline_features(frame)

    assert list(result.index) == ["x", "y", "z"]
    assert result["cust_txn_count_24h"].tolist() == [2.0, 0.0, 1.0]
    assert (result.dtypes == np.float32).all()


def test_offline_without_labels_or_optional_columns() -> None:
    frame = pd.DataFrame([txn(MONDAY)]).drop(columns=["merchant_id", "currency"])

    result = offline_features(frame)

    assert float(result["merchant_labels_30d"].iloc[0]) == 0.0
    assert float(result["merchant_fraud_rate_30d"].iloc[0]) == MISSING
    assert offline_features(frame.iloc[:0]).shape == (0, len(FEATURE_NAMES))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns=["device_id"]), "device_id"),
        (lambda f: f.assign(timestamp=pd.NaT), "missing timestamps"),
        (lambda f: f.assign(amount=np.nan), "amount"),
    ],
)
def test_offline_rejects_unusable_frames(
    change: Callable[[pd.DataFrame], pd.DataFrame], message: str
) -> None:
    frame = pd.DataFrame([txn(MONDAY)])

    with pytest.raises(ValueError, match=message):
        offline_features(change(frame))


def test_batch_with_rows_left_unobserved_scores_them_without_folding_them_in() -> None:
    """``observe`` False (a replay of a transaction folded in before a restart): the row is
    scored on the state as it is and leaves it unchanged, exactly like the per-row path."""
    rows = [txn(MONDAY + pd.Timedelta(minutes=m), amount=float(m + 1)) for m in range(4)]
    transactions = [to_transaction(row) for row in rows]
    observe = [True, False, True, False]
    batch_customer, batch_merchant = CustomerState(), MerchantState()

    batch = online_features_batch(transactions, [batch_customer] * 4, [batch_merchant] * 4, observe)

    customer, merchant = CustomerState(), MerchantState()
    expected = []
    for transaction, folds in zip(transactions, observe, strict=True):
        expected.append(online_features(transaction, customer, merchant))
        if folds:
            observe_transaction(customer, merchant, transaction)
    assert batch.tobytes() == np.vstack(expected).tobytes()
    assert batch_customer == customer and batch_merchant == merchant
    assert batch[2, FEATURE_NAMES.index("cust_txn_count_1h")] == 1.0  # row 1 was not folded


def test_the_scanned_calendar_windows_equal_the_bisected_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Few day buckets are summed by a scan; many by bisection. Both on the same buckets:
    days before, inside and after both windows, counts, cents and wrapping squares."""
    rng = np.random.default_rng(5)
    today = 20_000
    for _ in range(3_000):
        chosen = np.sort(rng.choice(np.arange(today - 40, today + 3), rng.integers(0, 7), False))
        buckets: list[int] = []
        for day in chosen.tolist():
            count, cents = int(rng.integers(1, 6)), int(rng.integers(0, 10**6))
            squares = int(rng.integers(-(2**63), 2**63 - 1, dtype=np.int64))
            buckets += [day << customer_module._DAY_SHIFT | count, cents, squares]
        days = array("q", buckets)
        scanned = customer_module._day_windows(days, today)
        monkeypatch.setattr(customer_module, "_SCANNED_DAYS", 0)
        assert customer_module._day_windows(days, today) == scanned
        monkeypatch.undo()
