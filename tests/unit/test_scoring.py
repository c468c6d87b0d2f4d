"""Decision bands, threshold overrides and reason codes."""

from __future__ import annotations

import numpy as np
import pytest
import xgboost as xgb

from stream_app.model import ModelBundle, ModelMetadata
from stream_app.scoring import Thresholds, decide, thresholds_for, top_reasons

pytestmark = pytest.mark.unit


def tiny_bundle(review: float = 0.3, block: float = 0.8) -> ModelBundle:
    """A booster where only feature ``b`` carries signal: high ``b`` means fraud."""
    rng = np.random.default_rng(7)
    features = rng.normal(size=(400, 3)).astype(np.float32)
    labels = (features[:, 1] > 0.5).astype(np.float32)
    booster = xgb.train(
        {"objective": "binary:logistic", "nthread": 1, "seed": 7, "max_depth": 2},
        xgb.DMatrix(features, label=labels, feature_names=["a", "b", "c"]),
        num_boost_round=20,
    )
    metadata = ModelMetadata(
        name="tiny",
        version="1",
        feature_names=("a", "b", "c"),
        review_threshold=review,
        block_threshold=block,
    )
    return ModelBundle(booster=booster, metadata=metadata)


def test_bands_are_inclusive_at_their_lower_edge() -> None:
    scores = np.array([0.0, 0.29, 0.3, 0.79, 0.8, 1.0], dtype=np.float32)
    assert decide(scores, Thresholds(review=0.3, block=0.8)) == [
        "approve",
        "approve",
        "review",
        "review",
        "block",
        "block",
    ]


def test_configured_thresholds_override_the_models() -> None:
    bundle = tiny_bundle(review=0.3, block=0.8)
    assert thresholds_for(bundle, None, None) == Thresholds(0.3, 0.8)
    assert thresholds_for(bundle, 0.5, None) == Thresholds(0.5, 0.8)
    assert thresholds_for(bundle, None, 0.95) == Thresholds(0.3, 0.95)


def test_inverted_bands_are_refused() -> None:
    with pytest.raises(ValueError, match="review <= block"):
        Thresholds(review=0.9, block=0.5)


def test_reasons_name_the_feature_that_raised_the_score() -> None:
    bundle = tiny_bundle()
    suspicious = np.array([[0.0, 3.0, 0.0]], dtype=np.float32)
    (reasons,) = top_reasons(bundle, suspicious)
    assert reasons[0].code == "b"
    assert reasons[0].value == 3.0
    assert all(reason.contribution is not None and reason.contribution > 0 for reason in reasons)


def test_reasons_for_no_rows_is_empty() -> None:
    assert top_reasons(tiny_bundle(), np.empty((0, 3), dtype=np.float32)) == []
