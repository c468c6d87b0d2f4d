"""The pure batch core: every record becomes one verdict or one dead letter, counted exactly."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import xgboost as xgb
from prometheus_client import CollectorRegistry

from stream_app.features import FEATURE_NAMES
from stream_app.metrics import create_worker_metrics
from stream_app.model import ModelBundle, ModelMetadata
from stream_app.processor import BatchScorer
from stream_app.scoring import Thresholds
from stream_app.validation import RawRecord

pytestmark = pytest.mark.unit

AMOUNT_INDEX = FEATURE_NAMES.index("amount")


def amount_model() -> ModelBundle:
    """A booster that learned 'amount above 1,000 is fraud', on the real feature layout."""
    rng = np.random.default_rng(3)
    matrix = rng.uniform(0, 10, size=(2000, len(FEATURE_NAMES))).astype(np.float32)
    matrix[:, AMOUNT_INDEX] = rng.uniform(1, 2000, size=2000)
    labels = (matrix[:, AMOUNT_INDEX] > 1000).astype(np.float32)
    booster = xgb.train(
        {"objective": "binary:logistic", "nthread": 1, "seed": 3, "max_depth": 2},
        xgb.DMatrix(matrix, label=labels, feature_names=list(FEATURE_NAMES)),
        num_boost_round=30,
    )
    metadata = ModelMetadata(
        name="amount",
        version="7",
        feature_names=FEATURE_NAMES,
        review_threshold=0.5,
        block_threshold=0.9,
    )
    return ModelBundle(booster=booster, metadata=metadata)


def record(offset: int, value: bytes, key: bytes = b"c1") -> RawRecord:
    return RawRecord("transactions", offset % 3, offset, key, value, timestamp_ms=None)


def transaction(txn_id: str, customer: str, amount: float, minutes: int = 0) -> bytes:
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


@pytest.fixture
def scorer() -> BatchScorer:
    metrics = create_worker_metrics(CollectorRegistry())
    return BatchScorer(amount_model(), Thresholds(review=0.5, block=0.9), metrics)


def sample(scorer: BatchScorer, name: str, labels: dict[str, str] | None = None) -> float:
    value = scorer.metrics.registry.get_sample_value(name, labels or {})
    return 0.0 if value is None else value


def test_each_record_yields_exactly_one_output(scorer: BatchScorer) -> None:
    records = [
        record(0, transaction("t0", "c1", 20.0)),
        record(1, b"{not json"),
        record(2, transaction("t2", "c2", 1900.0)),
        record(3, b"\xff"),
        record(4, transaction("t4", "c1", 25.0, minutes=5)),
    ]
    result = scorer.score_batch(records)
    assert [v.transaction_id for v in result.verdicts] == ["t0", "t2", "t4"]
    assert [(d.offset, d.reason) for d in result.dead_letters] == [
        (1, "invalid_json"),
        (3, "invalid_encoding"),
    ]
    assert sample(scorer, "fraudstream_transactions_scored_total") == 3
    assert sample(scorer, "fraudstream_dead_letters_total", {"reason": "invalid_json"}) == 1
    assert sample(scorer, "fraudstream_dead_letters_total", {"reason": "invalid_encoding"}) == 1


def test_high_amount_is_blocked_with_amount_as_reason(scorer: BatchScorer) -> None:
    result = scorer.score_batch([record(0, transaction("big", "c9", 1900.0))])
    (verdict,) = result.verdicts
    assert verdict.decision == "block"
    assert verdict.reasons[0].code == "amount"
    assert verdict.model_name == "amount"
    assert verdict.model_version == "7"
    assert sample(scorer, "fraudstream_decisions_total", {"decision": "block"}) == 1


def test_approved_verdicts_carry_no_reasons(scorer: BatchScorer) -> None:
    (verdict,) = scorer.score_batch([record(0, transaction("small", "c8", 10.0))]).verdicts
    assert verdict.decision == "approve"
    assert verdict.reasons == ()


def test_second_transaction_of_a_customer_in_one_batch_sees_the_first(scorer: BatchScorer) -> None:
    records = [
        record(0, transaction("a", "c5", 40.0)),
        record(1, transaction("b", "c5", 60.0, minutes=10)),
    ]
    first, second = scorer.score_batch(records).verdicts
    assert first.features is not None
    assert second.features is not None
    assert first.features["cust_txn_count_1h"] == 0
    assert second.features["cust_txn_count_1h"] == 1
    # state keeps amounts in whole US cents
    assert second.features["cust_amount_sum_1h"] == pytest.approx(
        first.features["amount_usd"], abs=0.005
    )


def test_shadow_model_is_recorded_but_never_decides() -> None:
    metrics = create_worker_metrics(CollectorRegistry())
    champion = amount_model()
    # The challenger's scores are recorded under its own version; decisions stay the champion's.
    eager_metadata = champion.metadata.model_copy(update={"version": "shadow-1"})
    eager = ModelBundle(booster=champion.booster, metadata=eager_metadata)
    scorer = BatchScorer(champion, Thresholds(review=0.5, block=0.9), metrics, shadow=eager)
    plain = BatchScorer(
        champion, Thresholds(review=0.5, block=0.9), create_worker_metrics(CollectorRegistry())
    )
    records = [record(0, transaction("s1", "c1", 15.0)), record(1, transaction("s2", "c2", 1900.0))]
    with_shadow = scorer.score_batch(records).verdicts
    without = plain.score_batch(records).verdicts
    assert [v.decision for v in with_shadow] == [v.decision for v in without]
    assert [v.shadow_model_version for v in with_shadow] == ["shadow-1", "shadow-1"]
    assert [v.shadow_score for v in with_shadow] == [v.score for v in without]
    assert all(v.shadow_score is None for v in without)
