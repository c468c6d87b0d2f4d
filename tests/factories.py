"""Test data built on demand: tiny boosters on the real feature layout, and wire transactions.

Every builder is seeded, so a test that uses one gets the same model or messages on every run and
can assert exact results. Change a builder's numbers and the tests that pin its scores change too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import xgboost as xgb

from producers.simulator import SimulatorConfig, iter_events
from stream_app.features import FEATURE_NAMES
from stream_app.model import ModelBundle, ModelMetadata
from stream_app.schemas import Transaction
from stream_app.worker.model_checks import synthetic_canary

# --- boosters ----------------------------------------------------------------------------------

SWAP_MODEL_NAME = "fraudstream-xgb"
AMOUNT_INDEX = FEATURE_NAMES.index("amount")
SIGNAL = FEATURE_NAMES.index("amount_usd")


def booster(
    matrix: npt.NDArray[Any],
    labels: npt.NDArray[Any],
    feature_names: Sequence[str],
    *,
    seed: int,
    rounds: int,
    **params: Any,
) -> xgb.Booster:
    """A small, single-threaded, seeded booster: depth-2 trees, logistic unless told otherwise."""
    return xgb.train(
        {"objective": "binary:logistic", "nthread": 1, "seed": seed, "max_depth": 2, **params},
        xgb.DMatrix(matrix, label=labels.astype(np.float32), feature_names=list(feature_names)),
        num_boost_round=rounds,
    )


def bundle(
    trained: xgb.Booster,
    name: str,
    version: str,
    feature_names: tuple[str, ...],
    review: float = 0.5,
    block: float = 0.9,
) -> ModelBundle:
    metadata = ModelMetadata(
        name=name,
        version=version,
        feature_names=feature_names,
        review_threshold=review,
        block_threshold=block,
    )
    return ModelBundle(booster=trained, metadata=metadata)


def amount_model() -> ModelBundle:
    """A booster that learned 'amount above 1,000 is fraud', on the real feature layout."""
    rng = np.random.default_rng(3)
    matrix = rng.uniform(0, 10, size=(2000, len(FEATURE_NAMES))).astype(np.float32)
    matrix[:, AMOUNT_INDEX] = rng.uniform(1, 2000, size=2000)
    labels = matrix[:, AMOUNT_INDEX] > 1000
    trained = booster(matrix, labels, FEATURE_NAMES, seed=3, rounds=30)
    return bundle(trained, "amount", "7", FEATURE_NAMES)


def quantile_model(
    version: str,
    *,
    names: tuple[str, ...] = FEATURE_NAMES,
    quantile: float = 0.5,
    objective: str = "binary:logistic",
    label_scale: float = 1.0,
    min_child_weight: float = 1.0,
) -> ModelBundle:
    """A booster that learned 'amount above a quantile', on realistic rows of the real layout."""
    matrix = synthetic_canary(rows=600, seed=100)
    labels = (matrix[:, SIGNAL] > np.quantile(matrix[:, SIGNAL], quantile)) * label_scale
    trained = booster(
        matrix,
        labels,
        names,
        seed=0,
        rounds=8,
        objective=objective,
        min_child_weight=min_child_weight,
    )
    return bundle(trained, SWAP_MODEL_NAME, version, names)


def tiny_bundle(review: float = 0.3, block: float = 0.8) -> ModelBundle:
    """A booster on three made-up features where only ``b`` carries signal: high ``b``, fraud."""
    rng = np.random.default_rng(7)
    features = rng.normal(size=(400, 3)).astype(np.float32)
    labels = features[:, 1] > 0.5
    trained = booster(features, labels, ["a", "b", "c"], seed=7, rounds=20)
    return bundle(trained, "tiny", "1", ("a", "b", "c"), review, block)


def saved(model: ModelBundle, folder: Path) -> Path:
    model.save(folder)
    return folder


# --- wire transactions -------------------------------------------------------------------------

# The request body of the original API, byte for byte: it must stay a valid transaction.
ORIGINAL_API_REQUEST = (
    b'{"transaction_id":"t1","customer_id":"c1","amount":1500,"merchant_category":"electronics",'
    b'"transaction_type":"online","device_id":"dev123","geo_location":"IN-MH",'
    b'"timestamp":"2024-11-01T10:00:00Z"}'
)


def transaction(txn_id: str, customer: str, amount: float, minutes: int = 0) -> bytes:
    """One transaction as JSON bytes, an hour ago plus ``minutes``."""
    moment = datetime.now(UTC) - timedelta(hours=1) + timedelta(minutes=minutes)
    return json.dumps(
        {
            "transaction_id": txn_id,
            "customer_id": customer,
            "amount": amount,
            "merchant_category": "electronics",
            "transaction_type": "online",
            "device_id": "dev1",
            "geo_location": "IN-MH",
            "timestamp": moment.isoformat(),
            "merchant_id": "m1",
        }
    ).encode()


def simulated_transactions(count: int, seed: int = 11) -> list[Transaction]:
    """The simulator's first ``count`` transactions (its label events left out)."""
    config = SimulatorConfig(seed=seed, n_customers=300, n_merchants=500)
    events = iter_events(config, max_transactions=count)
    return [event for event in events if isinstance(event, Transaction)]
