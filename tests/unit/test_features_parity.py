"""Online and offline features agree exactly, and offline features are point-in-time correct.

The history generator puts every timestamp on a 15-minute grid, so ties, gaps of exactly 1 h and
24 h, UTC midnights and labels maturing exactly at a transaction's time all happen many times;
the parity test asserts that they did before trusting the comparison.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_app import geo
from stream_app.features import (
    FEATURE_NAMES,
    CustomerState,
    MerchantState,
    merchant_key,
    observe_label,
    observe_transaction,
    offline_features,
    online_features,
)
from stream_app.schemas import Label, Transaction

S = TypeVar("S")

START = pd.Timestamp("2024-03-01T00:00:00Z")
GRID_MINUTES = 15
KNOWN_REGIONS = sorted(geo.REGION_COORDINATES)
UNKNOWN_REGIONS = ["ZZ-01", "XX-UNK"]
CATEGORIES = ["grocery", "Travel", "electronics", "Online Retail", "space_tourism", "fuel"]
TYPES = ["purchase", "UPI", "online", "teleport", "atm-withdrawal"]
CURRENCIES: list[str | None] = [None, None, "USD", "INR", "EUR", "XYZ"]


@dataclass(frozen=True)
class History:
    transactions: pd.DataFrame
    labels: pd.DataFrame


def random_history(seed: int, customers: int = 300, rows: int = 4000, days: int = 40) -> History:
    """Transactions in arrival order (timestamp, ties in random order) and delayed labels."""
    rng = np.random.default_rng(seed)
    slots = days * 24 * 4
    customer = rng.integers(0, customers, rows)
    transactions = pd.DataFrame(
        {
            "transaction_id": [f"t{index:05d}" for index in range(rows)],
            "customer_id": [f"c{code:04d}" for code in customer],
            "merchant_id": _merchants(rng, customer, rows),
            "amount": _amounts(rng, rows),
            "merchant_category": rng.choice(CATEGORIES, rows),
            "transaction_type": rng.choice(TYPES, rows),
            "device_id": _devices(rng, customer, rows),
            "geo_location": _regions(rng, customer, rows),
            "currency": rng.choice(np.array(CURRENCIES, dtype=object), rows),
            "timestamp": at_slots(_slots(rng, customer, slots)),
        }
    )
    transactions = _heavy_customer(rng, transactions, slots)
    transactions = transactions.iloc[rng.permutation(len(transactions))]
    transactions = transactions.sort_values("timestamp", kind="stable").reset_index(drop=True)
    return History(transactions, _labels(rng, transactions))


def at_slots(slots: npt.NDArray[np.int64]) -> pd.Series:
    return pd.Series(START + pd.to_timedelta(slots * GRID_MINUTES, unit="min"))


def _slots(
    rng: np.random.Generator, customer: npt.NDArray[np.int64], slots: int
) -> npt.NDArray[np.int64]:
    """Random grid slots, a third of them shortly after the customer's previous one: ties,
    gaps of exactly 1 h and 24 h, bursts."""
    result = rng.integers(0, slots, len(customer))
    follows = rng.random(len(customer)) < 0.35
    gaps = rng.choice(np.array([0, 0, 1, 3, 4, 4, 5, 95, 96, 96, 97]), len(customer))
    previous: dict[int, int] = {}
    for index, code in enumerate(customer.tolist()):
        if follows[index] and code in previous:
            result[index] = min(previous[code] + gaps[index], slots)
        previous[code] = int(result[index])
    return result


def _merchants(
    rng: np.random.Generator, customer: npt.NDArray[np.int64], rows: int
) -> list[str | None]:
    favourite = rng.integers(0, 12, rows) + customer % 5
    merchants: list[str | None] = [f"m{code:02d}" for code in favourite]
    for index in np.flatnonzero(rng.random(rows) < 0.05):
        merchants[index] = None if index % 2 else ""
    return merchants


def _amounts(rng: np.random.Generator, rows: int) -> npt.NDArray[np.float64]:
    amounts = np.round(np.exp(rng.normal(3.5, 1.2, rows)), 2)
    amounts[rng.random(rows) < 0.02] = 0.001  # rounds to zero cents
    amounts[rng.random(rows) < 0.05] = 25.0  # exact repeats for constant-amount histories
    return np.clip(amounts, 0.001, 1_000_000.0)


def _devices(rng: np.random.Generator, customer: npt.NDArray[np.int64], rows: int) -> list[str]:
    spare = rng.integers(0, 3, rows)
    return [
        f"d{code}-{extra}" if extra else f"d{code}"
        for code, extra in zip(customer, spare, strict=True)
    ]


def _regions(rng: np.random.Generator, customer: npt.NDArray[np.int64], rows: int) -> list[str]:
    home = [KNOWN_REGIONS[code % len(KNOWN_REGIONS)] for code in customer]
    travel = rng.random(rows)
    pool = KNOWN_REGIONS + UNKNOWN_REGIONS
    return [
        pool[rng.integers(0, len(pool))] if away < 0.15 else region
        for region, away in zip(home, travel, strict=True)
    ]


def _heavy_customer(rng: np.random.Generator, frame: pd.DataFrame, slots: int) -> pd.DataFrame:
    """One customer past every first-seen capacity (16 devices, 64 merchants, 16 regions)."""
    rows = 240
    heavy = pd.DataFrame(
        {
            "transaction_id": [f"h{index:04d}" for index in range(rows)],
            "customer_id": "heavy",
            "merchant_id": [f"hm{index % 80:02d}" for index in range(rows)],
            "amount": _amounts(rng, rows),
            "merchant_category": "gaming",
            "transaction_type": "online",
            "device_id": [f"hd{index % 24}" for index in range(rows)],
            "geo_location": [
                (KNOWN_REGIONS + UNKNOWN_REGIONS)[index % 32] for index in range(rows)
            ],
            "currency": None,
            "timestamp": at_slots(np.sort(rng.integers(0, slots, rows))),
        }
    )
    return pd.concat([frame, heavy], ignore_index=True)


def _labels(rng: np.random.Generator, transactions: pd.DataFrame) -> pd.DataFrame:
    """Labels for 40% of transactions after 0 to 20 days, on the same grid (delay 0 included)."""
    chosen = transactions[rng.random(len(transactions)) < 0.4]
    delay_slots = rng.integers(0, 20 * 96, len(chosen))
    delay_slots[rng.random(len(chosen)) < 0.1] = 0
    labels = pd.DataFrame(
        {
            "transaction_id": chosen["transaction_id"].to_numpy(),
            "is_fraud": rng.random(len(chosen)) < 0.3,
            "labeled_at": chosen["timestamp"].reset_index(drop=True)
            + pd.to_timedelta(delay_slots * GRID_MINUTES, unit="min"),
            "customer_id": chosen["customer_id"].to_numpy(),
            "merchant_id": chosen["merchant_id"].to_numpy(),
        }
    )
    return labels.sort_values("labeled_at", kind="stable").reset_index(drop=True)


def to_transaction(row: Mapping[Any, Any]) -> Transaction:
    fields = {key: value for key, value in row.items() if not _missing(value)}
    fields["timestamp"] = pd.Timestamp(row["timestamp"]).to_pydatetime()
    if not fields.get("merchant_id"):
        fields.pop("merchant_id", None)
    return Transaction.model_validate(fields)


def to_label(row: Mapping[Any, Any]) -> Label:
    merchant = row.get("merchant_id")
    return Label(
        transaction_id=str(row["transaction_id"]),
        is_fraud=bool(row["is_fraud"]),
        labeled_at=pd.Timestamp(row["labeled_at"]).to_pydatetime(),
        merchant_id=None if _missing(merchant) or not merchant else str(merchant),
    )


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


@dataclass(frozen=True)
class Replay:
    features: pd.DataFrame
    customers: dict[str, CustomerState]
    merchants: dict[str, MerchantState]


def replay_online(history: History) -> Replay:
    """The worker's view: labels applied when ``labeled_at`` is reached (before a transaction
    at the same instant), each transaction scored on the state before it, then observed."""
    customers: dict[str, CustomerState] = {}
    merchants: dict[str, MerchantState] = {}
    labels = history.labels.to_dict("records")
    label_times = history.labels["labeled_at"].tolist()
    next_label = 0
    rows = []
    for row in history.transactions.to_dict("records"):
        txn = to_transaction(row)
        while next_label < len(labels) and label_times[next_label] <= row["timestamp"]:
            label = to_label(labels[next_label])
            observe_label(_state(merchants, merchant_key(label.merchant_id), MerchantState), label)
            next_label += 1
        customer = _state(customers, txn.customer_id, CustomerState)
        merchant = _state(merchants, merchant_key(txn.merchant_id), MerchantState)
        rows.append(online_features(txn, customer, merchant))
        observe_transaction(customer, merchant, txn)
    features = pd.DataFrame(
        np.vstack(rows), index=history.transactions.index, columns=list(FEATURE_NAMES)
    )
    return Replay(features, customers, merchants)


def _state(states: dict[str, S], key: str, new: Callable[[], S]) -> S:
    state = states.get(key)
    if state is None:
        state = states[key] = new()
    return state


def shuffle_keeping_ties(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Rows in random order, except that rows with equal timestamps keep their relative order
    (that order is the documented tie-break, i.e. arrival)."""
    rng = np.random.default_rng(seed)
    permutation = rng.permutation(len(frame))
    stamps = frame["timestamp"].to_numpy()[permutation]
    by_position = np.lexsort((np.arange(len(frame)), stamps))
    by_arrival = np.lexsort((permutation, stamps))
    fixed = permutation.copy()
    fixed[by_position] = permutation[by_arrival]
    return frame.iloc[fixed]


def assert_frames_identical(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Exact equality, reporting the features and a row that differ."""
    assert list(actual.columns) == list(FEATURE_NAMES)
    actual = actual.loc[expected.index]
    differs = actual.to_numpy() != expected.to_numpy()
    if differs.any():
        rows, columns = np.nonzero(differs)
        names = sorted({FEATURE_NAMES[column] for column in columns})
        first = expected.index[rows[0]]
        pytest.fail(
            f"{differs.sum()} values differ in {names}; first at row {first}: "
            f"actual={actual.loc[first].to_dict()} expected={expected.loc[first].to_dict()}"
        )


def coverage(history: History) -> dict[str, int]:
    """How often the generated history hits the boundaries the parity test is meant to cover."""
    frame = history.transactions.assign(
        merchant=[merchant_key(m or None) for m in history.transactions["merchant_id"]]
    )
    stamps = frame.groupby("customer_id")["timestamp"]
    gaps = stamps.diff().dropna()
    label_keys = set(
        zip(
            history.labels["merchant_id"].map(lambda m: merchant_key(m or None)),
            history.labels["labeled_at"],
            strict=True,
        )
    )
    return {
        "customer_ties": int((gaps == pd.Timedelta(0)).sum()),
        "gap_exactly_1h": int((gaps == pd.Timedelta(hours=1)).sum()),
        "gap_exactly_24h": int((gaps == pd.Timedelta(hours=24)).sum()),
        "at_midnight": int((frame["timestamp"] == frame["timestamp"].dt.floor("D")).sum()),
        "label_matures_at_txn": sum(
            (m, t) in label_keys for m, t in zip(frame["merchant"], frame["timestamp"], strict=True)
        ),
        "unknown_region": int(frame["geo_location"].isin(UNKNOWN_REGIONS).sum()),
    }


@pytest.mark.parametrize("seed", [7, 2024])
def test_online_replay_equals_offline_features(seed: int) -> None:
    history = random_history(seed)
    hits = coverage(history)
    assert min(hits.values()) >= 5, hits

    offline = offline_features(shuffle_keeping_ties(history.transactions, seed), history.labels)
    online = replay_online(history).features

    assert_frames_identical(offline, online)


def test_offline_ignores_labels_of_unknown_transactions_merchants_not_in_frame() -> None:
    history = random_history(3, customers=50, rows=400, days=10)
    stray = history.labels.assign(merchant_id="nowhere", transaction_id="stray")
    with_stray = pd.concat([history.labels, stray], ignore_index=True)

    assert_frames_identical(
        offline_features(history.transactions, with_stray),
        offline_features(history.transactions, history.labels),
    )


# ---------------------------------------------------------------------------------------------
# Point-in-time: rows never change when later transactions and labels are appended.

SLOTS = 8 * 24 * 2  # eight days of 30-minute slots

transaction_rows = st.lists(
    st.tuples(
        st.integers(0, 3),  # customer
        st.sampled_from(["m0", "m1", None]),
        st.sampled_from(["d0", "d1", "d2"]),
        st.sampled_from(["IN-MH", "US-NY", "ZZ-1"]),
        st.sampled_from([1.0, 19.99, 250.0, 4000.0]),
        st.integers(0, SLOTS),
    ),
    min_size=1,
    max_size=40,
)
# Later arrivals at the same instant as the newest existing row: after it by the tie rule.
late_ties = st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["m0", None])), max_size=3)
label_rows = st.lists(
    st.tuples(st.sampled_from(["m0", "m1", None]), st.booleans(), st.integers(0, SLOTS)),
    max_size=25,
)


def _frames(
    txns: list[tuple[int, str | None, str, str, float, int]],
    labels: list[tuple[str | None, bool, int]],
) -> History:
    step = pd.Timedelta(minutes=30)
    transactions = pd.DataFrame(
        {
            "transaction_id": [f"t{index}" for index in range(len(txns))],
            "customer_id": [f"c{row[0]}" for row in txns],
            "merchant_id": [row[1] for row in txns],
            "amount": [row[4] for row in txns],
            "merchant_category": "grocery",
            "transaction_type": "purchase",
            "device_id": [row[2] for row in txns],
            "geo_location": [row[3] for row in txns],
            "timestamp": pd.to_datetime([START + step * row[5] for row in txns], utc=True),
        }
    )
    label_frame = pd.DataFrame(
        {
            "transaction_id": [f"l{index}" for index in range(len(labels))],
            "is_fraud": [row[1] for row in labels],
            "labeled_at": pd.to_datetime([START + step * row[2] for row in labels], utc=True),
            "merchant_id": [row[0] for row in labels],
        }
    )
    return History(transactions, label_frame)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(transaction_rows, label_rows, late_ties, st.integers(0, SLOTS))
def test_appending_the_future_changes_no_existing_row(
    txns: list[tuple[int, str | None, str, str, float, int]],
    labels: list[tuple[str | None, bool, int]],
    ties: list[tuple[int, str | None]],
    cut_slot: int,
) -> None:
    past_txns = [row for row in txns if row[5] < cut_slot]
    future_txns = [row for row in txns if row[5] >= cut_slot]
    if past_txns:
        newest = max(row[5] for row in past_txns)
        future_txns += [(c, m, "d9", "US-NY", 5.0, newest) for c, m in ties]
    past_labels = [row for row in labels if row[2] < cut_slot]
    future_labels = [row for row in labels if row[2] >= cut_slot]
    past = _frames(past_txns, past_labels)
    everything = _frames(past_txns + future_txns, past_labels + future_labels)

    before = offline_features(past.transactions, past.labels)
    after = offline_features(everything.transactions, everything.labels)

    assert_frames_identical(after.iloc[: len(past_txns)], before)
