"""Backtest folds: window arithmetic, known-compromised removal, input handling, a full run."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.training_data import SMALL, day, labelled_file
from training.backtest import (
    evaluation_rows,
    fold_windows,
    run_backtest,
)
from training.labelled_file import delayed_labels, normalise, read_labelled_file


def test_folds_are_anchored_at_the_end_and_step_back() -> None:
    # Data from Jan 1 00:00 to Jan 10 12:00: the last day is Jan 10, so folds end on Jan 11.
    stamps = pd.Series([day(0), day(9.5)])
    windows = fold_windows(stamps, SMALL)
    bounds = [(w.train_start, w.train_end, w.test_start, w.test_end) for w in windows]
    # Fold length 3 + 2 + 2 = 7 days; the second fold ends on day 10, the first two days earlier.
    assert bounds == [
        (day(1), day(4), day(6), day(8)),
        (day(3), day(6), day(8), day(10)),
    ]
    assert windows[0].validation_start == day(4)  # no early-stopping days by default
    with_validation = fold_windows(stamps, replace(SMALL, validation_days=1))
    assert with_validation[0].validation_start == day(3)


def test_a_file_too_short_for_the_folds_is_refused() -> None:
    with pytest.raises(ValueError, match="covers 8 days; this backtest needs 9"):
        fold_windows(pd.Series([day(0), day(7.2)]), SMALL)


def test_known_compromised_customers_leave_the_test_days_once_their_label_arrived() -> None:
    rows = pd.DataFrame(
        {
            "timestamp": [day(1.5), day(4.5), day(6.2), day(6.3), day(7.4), day(7.5)],
            "customer_id": ["a", "b", "a", "b", "b", "c"],
            "is_fraud": [True, True, False, False, False, True],
        }
    )
    window = fold_windows(pd.Series([day(0), day(9.5)]), SMALL)[0]  # test days 6 and 7
    kept, removed = evaluation_rows(rows, window)
    # a's fraud (day 1.5) is known from day 3.5: a is gone from both test days. b's fraud (day
    # 4.5) is known from day 6.5: b stays on day 6, goes on day 7. c's own fraud stays.
    assert list(zip(kept["timestamp"], kept["customer_id"], strict=True)) == [
        (day(6.3), "b"),
        (day(7.5), "c"),
    ]
    assert removed == 2  # (a, day 6) and (b, day 7)


def test_normalise_fills_optional_fields_and_parses_types() -> None:
    frame = pd.DataFrame(
        {
            "transaction_id": [2, 1],
            "timestamp": ["2025-01-02T00:00:00", "2025-01-01T12:00:00Z"],
            "customer_id": [7, 7],
            "merchant_id": ["m", "m"],
            "amount": ["10.5", "3"],
            "is_fraud": ["TRUE", "no"],
            "device_id": [None, "d1"],
        }
    )
    result = normalise(frame)
    assert list(result["transaction_id"]) == ["1", "2"]  # ordered by time, ids as strings
    assert list(result["is_fraud"]) == [False, True]
    assert list(result["device_id"]) == ["d1", "unknown"]
    assert set(result["merchant_category"]) == {"unknown"}
    assert str(result["timestamp"].dt.tz) == "UTC"
    assert result["timestamp"].iloc[1] == pd.Timestamp("2025-01-02", tz="UTC")


def test_normalise_names_every_missing_required_column() -> None:
    with pytest.raises(ValueError, match="missing required columns: merchant_id, is_fraud"):
        normalise(pd.DataFrame(columns=["transaction_id", "timestamp", "customer_id", "amount"]))


def test_labels_arrive_delay_days_after_their_transaction() -> None:
    frame = normalise(labelled_file(days=1, rows_per_day=5))
    labels = delayed_labels(frame, delay_days=7)
    assert (labels["labeled_at"] - frame["timestamp"] == pd.Timedelta(days=7)).all()
    assert labels["is_fraud"].tolist() == frame["is_fraud"].tolist()


def test_backtest_from_csv_is_deterministic_and_summarises_folds(tmp_path: Path) -> None:
    path = tmp_path / "labelled.csv"
    labelled_file().to_csv(path, index=False)
    frame = read_labelled_file(path)
    first, second = run_backtest(frame, SMALL), run_backtest(frame, SMALL)
    assert [fold.average_precision for fold in first.folds] == [
        fold.average_precision for fold in second.folds
    ]
    assert [fold.test_start for fold in first.folds] == [
        day(6).isoformat(),
        day(8).isoformat(),
    ]
    aps = [fold.average_precision for fold in first.folds]
    assert first.summary()["average_precision"] == pytest.approx(
        {"mean": np.mean(aps), "std": np.std(aps, ddof=1)}
    )
    assert all(fold.roc_auc > 0.8 for fold in first.folds)  # large fraud amounts are easy
    first.write_json(tmp_path / "report.json")
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["config"]["delay_days"] == 2
    assert [fold["fold"] for fold in saved["folds"]] == [0, 1]
