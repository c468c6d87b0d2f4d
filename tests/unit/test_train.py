"""Dataset assembly (label timing, splits) and training (determinism, imbalance, bundle)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stream_app.features import FEATURE_NAMES
from stream_app.model import load_bundle
from stream_app.store import LocalStore, write_parquet
from training.dataset import (
    SplitPlan,
    Splits,
    attach_targets,
    featurize,
    known_labels,
    load_lake,
    split_by_time,
)
from training.evaluate import CostModel, choose_thresholds
from training.train import TrainConfig, class_ratio_weight, fit_booster, predict, train_model

START = pd.Timestamp("2025-03-01", tz="UTC")


def day(offset: float) -> pd.Timestamp:
    return START + pd.Timedelta(days=offset)


FAST = TrainConfig(num_boost_round=60, early_stopping_rounds=10, max_depth=4)
SIGNAL = [name for name in FEATURE_NAMES if name != "amount"][-2:]


def synthetic_featurized(rows: int = 6_000, days: int = 12, seed: int = 0) -> pd.DataFrame:
    """A featurized frame with a learnable signal in two features; 2-3 % fraud.

    Every feature is noise except the two signal columns; ``amount`` (context and, when it is
    one, feature) is a positive amount.
    """
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        rng.normal(size=(rows, len(FEATURE_NAMES))).astype(np.float32), columns=list(FEATURE_NAMES)
    )
    first, second = SIGNAL
    logit = -4.5 + 1.6 * frame[first] + 1.1 * frame[second]
    fraud = rng.random(rows) < 1 / (1 + np.exp(-logit))
    seconds = np.sort(rng.uniform(0, days * 86_400, rows))
    return frame.assign(
        transaction_id=[f"t{index}" for index in range(rows)],
        customer_id=[f"c{value}" for value in rng.integers(0, 400, rows)],
        merchant_id="m1",
        timestamp=START + pd.to_timedelta(seconds, unit="s"),
        amount=rng.gamma(2.0, 40.0, rows).astype(np.float32),
        is_fraud=fraud,
    )


def labels_for(frame: pd.DataFrame, delay: timedelta) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "transaction_id": frame["transaction_id"],
            "is_fraud": frame["is_fraud"],
            "labeled_at": frame["timestamp"] + delay,
        }
    )


def synthetic_splits(seed: int = 0) -> Splits:
    frame = synthetic_featurized(seed=seed)
    labels = labels_for(frame, timedelta(hours=1))
    as_of = START + pd.Timedelta(days=12)
    plan = SplitPlan(validation_days=3, test_days=3, gap_days=0, warmup_days=0)
    return split_by_time(frame.drop(columns="is_fraud"), labels, as_of, plan)


# --- labels in time -------------------------------------------------------------------------


def test_known_labels_ignores_future_labels_and_keeps_the_latest() -> None:
    labels = pd.DataFrame(
        {
            "transaction_id": ["a", "a", "b", "c"],
            "is_fraud": [False, True, True, True],
            "labeled_at": pd.to_datetime(
                ["2025-03-01", "2025-03-03", "2025-03-02", "2025-03-09"], utc=True
            ),
        }
    )
    known = known_labels(labels, pd.Timestamp("2025-03-05", tz="UTC"))
    assert dict(zip(known["transaction_id"], known["is_fraud"], strict=True)) == {
        "a": True,  # relabelled on the 3rd: the later label wins
        "b": True,
    }  # c's label arrives after the cut-off


def test_attach_targets_drops_unlabelled_rows_unless_matured_as_legit() -> None:
    frame = synthetic_featurized(rows=10, days=10).drop(columns="is_fraud")
    labels = pd.DataFrame(
        {
            "transaction_id": ["t9"],
            "is_fraud": [True],
            "labeled_at": [START + pd.Timedelta(days=10)],
        }
    )
    as_of = START + pd.Timedelta(days=10)
    assert list(attach_targets(frame, labels, as_of)["transaction_id"]) == ["t9"]
    matured = attach_targets(frame, labels, as_of, unlabelled_legit_after=timedelta(days=5))
    old = frame.loc[frame["timestamp"] <= START + pd.Timedelta(days=5), "transaction_id"]
    assert set(matured["transaction_id"]) == {*old, "t9"}
    assert matured.set_index("transaction_id")["is_fraud"].to_dict() == {
        **dict.fromkeys(old, False),
        "t9": True,
    }


def test_each_split_only_uses_labels_known_at_its_cut_off() -> None:
    frame = synthetic_featurized(rows=3_000, seed=4)
    # Frauds are reported two days late, legit rows after six hours.
    delays = np.where(frame["is_fraud"], 2 * 86_400, 6 * 3_600)
    labels = pd.DataFrame(
        {
            "transaction_id": frame["transaction_id"],
            "is_fraud": frame["is_fraud"],
            "labeled_at": frame["timestamp"] + pd.to_timedelta(delays, unit="s"),
        }
    )
    as_of = START + pd.Timedelta(days=12)
    plan = SplitPlan(validation_days=2, test_days=2, gap_days=1, warmup_days=1)
    splits = split_by_time(frame.drop(columns="is_fraud"), labels, as_of, plan)
    arrival = labels.set_index("transaction_id")["labeled_at"]
    for split in splits.all():
        assert split.frame["timestamp"].between(split.start, split.end, inclusive="left").all()
        assert (split.frame["transaction_id"].map(arrival) <= split.labels_as_of).all()
        # Frauds later than two days before the cut-off had no label yet: none is in the split.
        late = split.frame["timestamp"] > split.labels_as_of - pd.Timedelta(days=2)
        assert not split.frame.loc[late, "is_fraud"].any()
        assert split.frame["is_fraud"].any()
    # Counted back from day 12: test [9, 11) labelled at 12, gap, validation [6, 8) labelled at
    # 9, gap, train from the first row + 1 warm-up day to 5, labelled at 6.
    windows = [(split.start, split.end, split.labels_as_of) for split in splits.all()]
    assert windows == [
        (frame["timestamp"].min() + pd.Timedelta(days=1), day(5), day(6)),
        (day(6), day(8), day(9)),
        (day(9), day(11), day(12)),
    ]


def test_split_by_time_refuses_a_history_shorter_than_its_windows() -> None:
    frame = synthetic_featurized(rows=100, days=4)
    labels = labels_for(frame, timedelta(0))
    with pytest.raises(ValueError, match="history too short"):
        split_by_time(frame, labels, START + pd.Timedelta(days=4), SplitPlan())


def test_ground_truth_columns_never_reach_the_features() -> None:
    transactions = tiny_transactions()
    with_truth = transactions.assign(is_fraud=[True, False, True], scenario="card_testing")
    pd.testing.assert_frame_equal(featurize(with_truth, None), featurize(transactions, None))
    assert "scenario" not in featurize(with_truth, None).columns


def test_load_lake_reads_the_window_and_only_labels_arrived_by_as_of(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    transactions = tiny_transactions()
    later = transactions.assign(
        transaction_id=["y1", "y2", "y3"],
        timestamp=transactions["timestamp"] + pd.Timedelta(days=1),
    )
    old = transactions.assign(
        transaction_id=["o1", "o2", "o3"], timestamp=pd.Timestamp("2025-02-20T12:00Z")
    )
    write_parquet(store, "lake/transactions/date=2025-02-20/part-0.parquet", old)
    write_parquet(store, "lake/transactions/date=2025-03-01/part-0.parquet", transactions)
    write_parquet(store, "lake/transactions/date=2025-03-02/part-0.parquet", later)
    labels = pd.DataFrame(
        {
            "transaction_id": ["x1", "x2"],
            "is_fraud": [False, True],
            "labeled_at": pd.to_datetime(["2025-03-02T08:00Z", "2025-03-02T20:00Z"], utc=True),
        }
    )
    write_parquet(store, "lake/labels/date=2025-03-02/part-0.parquet", labels)
    as_of = pd.Timestamp("2025-03-02T10:30Z")
    lake_transactions, lake_labels = load_lake(store, as_of, history_days=3)
    # o* are older than three days; y3 (11:00 on the 2nd) is after the cut-off; x2's label
    # arrives at 20:00, after it too.
    assert list(lake_transactions["transaction_id"]) == ["x1", "x2", "x3", "y1", "y2"]
    assert list(lake_labels["transaction_id"]) == ["x1"]


def tiny_transactions() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "transaction_id": ["x1", "x2", "x3"],
            "customer_id": ["c1", "c1", "c2"],
            "merchant_id": ["m1", "m2", "m1"],
            "amount": [12.5, 900.0, 40.0],
            "merchant_category": ["grocery", "electronics", "grocery"],
            "transaction_type": ["purchase", "purchase", "purchase"],
            "device_id": ["d1", "d9", "d2"],
            "geo_location": ["IN-MH", "IN-DL", "IN-MH"],
            "currency": ["INR", "INR", "INR"],
            "timestamp": pd.to_datetime(
                ["2025-03-01T10:00Z", "2025-03-01T10:05Z", "2025-03-01T11:00Z"], utc=True
            ),
        }
    )


# --- training ---------------------------------------------------------------------------------


def test_same_data_and_seed_give_identical_predictions() -> None:
    splits = synthetic_splits()
    first = train_model(splits, config=FAST)
    second = train_model(splits, config=FAST)
    features = splits.test.features()
    assert np.array_equal(first.predict(features), second.predict(features))
    assert first.metadata.model_dump(exclude={"trained_at"}) == second.metadata.model_dump(
        exclude={"trained_at"}
    )


def test_the_seed_matters() -> None:
    splits = synthetic_splits()
    first = train_model(splits, config=FAST)
    other = train_model(splits, config=TrainConfig(**{**FAST.__dict__, "seed": 7}))
    features = splits.test.features()
    assert not np.array_equal(first.predict(features), other.predict(features))


def test_bundle_metadata_weights_thresholds_and_trimmed_booster() -> None:
    splits = synthetic_splits()
    bundle = train_model(splits, config=FAST, name="m", version="3")
    metadata, target = bundle.metadata, splits.train.target()
    assert metadata.feature_names == FEATURE_NAMES
    assert (metadata.name, metadata.version) == ("m", "3")
    assert metadata.metrics["scale_pos_weight"] == (target.size - target.sum()) / target.sum()
    # The saved booster stops at the best iteration, so the worker scores like early stopping.
    assert bundle.booster.num_boosted_rounds() == metadata.metrics["best_iteration"] + 1
    bands = choose_thresholds(
        splits.validation.target(),
        predict(bundle.booster, splits.validation),
        CostModel(),
        amounts=splits.validation.frame["amount"],
    )
    assert (metadata.review_threshold, metadata.block_threshold) == (bands.review, bands.block)
    assert metadata.metrics["roc_auc"] > 0.8  # the signal is strong; a broken fit would not be


def test_saved_bundle_scores_identically_after_reload(tmp_path: Path) -> None:
    splits = synthetic_splits()
    bundle = train_model(splits, config=FAST)
    bundle.save(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["metadata.json", "model.ubj"]
    reloaded = load_bundle(tmp_path)
    features = splits.test.features()
    assert np.array_equal(reloaded.predict(features), bundle.predict(features))
    assert reloaded.metadata == bundle.metadata


def test_without_validation_every_round_is_kept() -> None:
    splits = synthetic_splits()
    fitted = fit_booster(splits.train, None, FAST)
    assert fitted.booster.num_boosted_rounds() == FAST.num_boost_round
    assert fitted.best_iteration == FAST.num_boost_round - 1


def test_class_ratio_weight() -> None:
    assert class_ratio_weight(np.array([0, 0, 0, 1], dtype=np.int8)) == 3.0
    with pytest.raises(ValueError, match="no fraud"):
        class_ratio_weight(np.zeros(5, dtype=np.int8))
