"""The feature vector: its layout, the online (per transaction) and offline (per frame) paths.

Both paths compute every feature from the same definitions (one module per family, each with
its online and offline implementation side by side) and agree exactly on the same history; see
``tests/unit/test_features_parity.py``. All values are computed in float64 and cast to float32
once, at the end, in both paths.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd

from stream_app.features.context import CONTEXT_FEATURES, context_columns, context_features
from stream_app.features.core import Event, prepare_event
from stream_app.features.customer import (
    CUSTOMER_FEATURES,
    customer_features,
    observe_customer,
)
from stream_app.features.customer_offline import customer_columns
from stream_app.features.customer_state import CustomerState
from stream_app.features.merchant import (
    MERCHANT_FEATURES,
    MerchantState,
    merchant_columns,
    merchant_features,
    observe_merchant_scored,
    observe_merchant_transaction,
)
from stream_app.features.offline import FloatArray, prepare_transactions
from stream_app.schemas import Transaction

FEATURE_NAMES: tuple[str, ...] = CONTEXT_FEATURES + CUSTOMER_FEATURES + MERCHANT_FEATURES

FeatureMatrix = npt.NDArray[np.float32]


def online_features(
    txn: Transaction, customer: CustomerState, merchant: MerchantState
) -> FeatureMatrix:
    """The float32 vector (in :data:`FEATURE_NAMES` order) for ``txn`` from the states as they
    are, i.e. before ``txn``; the states are not modified. Call :func:`observe_transaction`
    after scoring."""
    return np.array(event_row(prepare_event(txn), customer, merchant), dtype=np.float32)


def event_row(event: Event, customer: CustomerState, merchant: MerchantState) -> list[float]:
    """Feature values as float64 Python floats, for callers that build their own matrices."""
    return [
        *context_features(event),
        *customer_features(customer, event),
        *merchant_features(merchant, event.t_us),
    ]


def observe_transaction(customer: CustomerState, merchant: MerchantState, txn: Transaction) -> None:
    """Add ``txn`` to both states; call after computing its features."""
    observe_event(customer, merchant, prepare_event(txn))


def observe_event(customer: CustomerState, merchant: MerchantState, event: Event) -> None:
    observe_customer(customer, event)
    observe_merchant_transaction(merchant, event.t_us)


def online_features_batch(
    txns: Sequence[Transaction],
    customers: Sequence[CustomerState],
    merchants: Sequence[MerchantState],
    observe: Sequence[bool] | None = None,
    count_volume: bool = True,
) -> FeatureMatrix:
    """Features for a batch AND the state updates, one transaction after the other.

    ``customers[i]`` and ``merchants[i]`` are the states of ``txns[i]`` (the same object when
    two transactions share a customer), so a customer's second transaction in the batch sees its
    first, exactly as offline. ``observe[i]`` False scores ``txns[i]`` without folding it into
    the states (the worker's replay of a transaction already folded in before a restart);
    default: fold every one. Each transaction is prepared once, and the float64 rows become
    float32 in one conversion at the end: the same cast, element by element, as
    :func:`online_features` does per row, so the two give identical bytes. ``count_volume``
    False leaves merchant volume to the all-partitions reader (the worker), which counts every
    transaction of the topic, these included.
    """
    # The rows go into one flat buffer of C doubles as they are computed, not into a list of
    # lists: a thousand lists alive until the end of the batch survive the garbage collector's
    # young generations and were measured to bring on extra full collections (bench_core
    # --stages). A Python float to float64 and then to float32 rounds exactly as a Python
    # float straight to float32, so the bytes equal online_features' row by row.
    values = array("d")
    extend = values.extend
    if observe is None:
        observe = [True] * len(txns)
    for txn, customer, merchant, folds in zip(txns, customers, merchants, observe, strict=True):
        event = prepare_event(txn)
        extend(event_row(event, customer, merchant))
        if folds:
            observe_customer(customer, event)
            if count_volume:
                observe_merchant_transaction(merchant, event.t_us)
            else:
                observe_merchant_scored(merchant, event.t_us)
    matrix = np.frombuffer(values, dtype=np.float64).astype(np.float32)
    return matrix.reshape(len(txns), len(FEATURE_NAMES))


def offline_features(
    transactions: pd.DataFrame, labels: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Point-in-time features for every transaction: one row per input row, same index and
    order, columns :data:`FEATURE_NAMES`, float32.

    A row sees only transactions before it (timestamp order; equal timestamps in row order)
    and labels with ``labeled_at <= timestamp``; appending later transactions or labels never
    changes it. ``labels`` needs ``is_fraud``, ``labeled_at`` and ``merchant_id`` (missing
    merchant = "unknown"); without labels the risk features read as no labels.
    """
    # Column-major, so that each feature is written contiguously and pandas keeps one block.
    matrix = np.empty((len(transactions), len(FEATURE_NAMES)), dtype=np.float32, order="F")
    if len(transactions):
        columns = _all_columns(transactions, labels)
        for index, name in enumerate(FEATURE_NAMES):
            matrix[:, index] = columns[name]
    return pd.DataFrame(matrix, index=transactions.index, columns=list(FEATURE_NAMES))


def _all_columns(transactions: pd.DataFrame, labels: pd.DataFrame | None) -> dict[str, FloatArray]:
    events = prepare_transactions(transactions)
    return {
        **context_columns(events),
        **customer_columns(events),
        **merchant_columns(events, labels),
    }


def feature_vector_to_dict(vec: npt.ArrayLike) -> dict[str, float]:
    """Name to value for verdict payloads (the exact float32 values, as Python floats)."""
    values = np.asarray(vec, dtype=np.float32).tolist()
    return dict(zip(FEATURE_NAMES, values, strict=True))
