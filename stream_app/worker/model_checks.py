"""Model checks before a swap: why a loaded bundle must not serve, and the canary it is tried on.

Pure functions over a bundle and a feature matrix, with no thread, registry or metric: the
swapper (:mod:`stream_app.worker.model_swap`) calls :func:`validation_problem` on its loader
thread and counts what it returns. Kept apart so the checks can be read, and tested, without the
swap machinery around them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt

from stream_app import features
from stream_app.model import ModelBundle
from stream_app.schemas import Transaction

Key = tuple[str, str]  # (model name, version): what "already in service / loading" compares
FloatMatrix = npt.NDArray[np.float32]
# Why a version was not swapped in: a fixed vocabulary, so it can be a metric label.
FailureReason = Literal[
    "registry_error",  # the registry did not answer (or refused) an alias lookup or a download
    "corrupt_artifact",  # files missing, unreadable or inconsistent (a broken booster, bad JSON)
    "unsafe_artifact",  # a pickle or a file type we never write
    "wrong_identity",  # the metadata names another model or version than the update
    "feature_mismatch",  # the feature list differs from the one the worker computes
    "bad_scores",  # canary scores not finite, outside [0, 1], constant, or not computable
]
FAILURE_REASONS: tuple[FailureReason, ...] = get_args(FailureReason)
CANARY_ROWS = 200
REASON_CHARS = 300  # MLflow errors embed whole urllib3 chains; one log line stays readable


@dataclass(frozen=True)
class Refusal:
    """Why a loaded bundle must not serve: a label-safe reason and a human-readable detail."""

    reason: FailureReason
    detail: str


def validation_problem(
    bundle: ModelBundle, expected: Key, feature_names: tuple[str, ...], canary: FloatMatrix
) -> Refusal | None:
    """Why ``bundle`` must not serve, or None if it may."""
    identity = (bundle.metadata.name, bundle.metadata.version)
    if identity != expected:
        detail = (
            f"metadata names {identity[0]} v{identity[1]}, expected {expected[0]} v{expected[1]}"
        )
        return Refusal("wrong_identity", detail)
    if bundle.metadata.feature_names != feature_names:
        detail = feature_list_problem(bundle.metadata.feature_names, feature_names)
        return Refusal("feature_mismatch", detail)
    try:
        problem = canary_problem(bundle.predict(canary), len(canary))
    except Exception as exc:  # e.g. XGBoost refusing the canary: the model is unusable
        problem = one_line(exc)
    return None if problem is None else Refusal("bad_scores", problem)


def feature_list_problem(actual: tuple[str, ...], expected: tuple[str, ...]) -> str:
    missing = [name for name in expected if name not in actual]
    extra = [name for name in actual if name not in expected]
    if not missing and not extra:
        return "feature list in a different order than the worker computes"
    return f"feature list differs: missing={missing[:5]} unexpected={extra[:5]}"


def canary_problem(scores: FloatMatrix, rows: int) -> str | None:
    """Scores a probability model can produce: one per row, finite, in [0, 1], not constant."""
    if scores.shape != (rows,):
        return f"canary scores have shape {scores.shape}, expected ({rows},)"
    if not np.isfinite(scores).all():
        return "canary scores are not all finite"
    if scores.min() < 0 or scores.max() > 1:
        return f"canary scores outside [0, 1]: {scores.min():.4g}..{scores.max():.4g}"
    if scores.max() == scores.min():
        return f"canary scores are all {scores[0]:.4g}: the model ignores its input"
    return None


def score_correlation(new: FloatMatrix, old: FloatMatrix) -> float | None:
    """Pearson correlation of two score vectors; None when either is constant."""
    new64, old64 = new.astype(np.float64), old.astype(np.float64)
    new64, old64 = new64 - new64.mean(), old64 - old64.mean()
    norm = float(np.sqrt((new64 @ new64) * (old64 @ old64)))
    return float(new64 @ old64) / norm if norm > 0 else None


def synthetic_canary(rows: int = CANARY_ROWS, seed: int = 0) -> FloatMatrix:
    """A fixed, realistic feature matrix: seeded transactions run through the worker's own
    feature code, so every feature (counts, first-seen flags, distances) takes plausible values.

    The worker may pass rows of recent real traffic instead; this is the default so that a
    worker can validate a swap from its first second.
    """
    rng = np.random.default_rng(seed)
    customers: dict[str, features.CustomerState] = {}
    merchants: dict[str, features.MerchantState] = {}
    transactions = _canary_transactions(rng, rows)
    return features.online_features_batch(
        transactions,
        [customers.setdefault(txn.customer_id, features.CustomerState()) for txn in transactions],
        [
            merchants.setdefault(features.merchant_key(txn.merchant_id), features.MerchantState())
            for txn in transactions
        ],
    )


_CANARY_START = datetime(2025, 1, 6, tzinfo=UTC)
_CANARY_REGIONS = ("IN-MH", "IN-KA", "US-CA", "US-NY", "GB-ENG", "DE-BE", "BR-SP")


def _canary_transactions(rng: np.random.Generator, rows: int) -> list[Transaction]:
    """About 25 customers over two days: repeat customers, some new devices and regions."""
    seconds = np.cumsum(rng.exponential(900.0, rows))
    result = []
    for index in range(rows):
        customer = int(rng.integers(0, 25))
        roams = rng.random() < 0.1
        result.append(
            Transaction(
                transaction_id=f"canary-{index}",
                customer_id=f"canary-c{customer}",
                amount=round(float(np.clip(rng.lognormal(3.5, 1.3), 0.5, 50_000)), 2),
                merchant_category=features.MERCHANT_CATEGORIES[int(rng.integers(1, 16))],
                transaction_type=features.TRANSACTION_TYPES[int(rng.integers(1, 5))],
                device_id=f"canary-d{customer}" if rng.random() < 0.9 else f"canary-x{index}",
                geo_location=_CANARY_REGIONS[
                    int(rng.integers(0, 7)) if roams else customer % len(_CANARY_REGIONS)
                ],
                timestamp=_CANARY_START + timedelta(seconds=float(seconds[index])),
                merchant_id=f"canary-m{int(rng.integers(0, 30))}",
            )
        )
    return result


def one_line(error: BaseException | str) -> str:
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return " ".join(text.split())[:REASON_CHARS]
