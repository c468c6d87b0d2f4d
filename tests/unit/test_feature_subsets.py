"""Feature families, dropped features and constant features in the backtest.

The file with only the required columns: every feature built only on a field the file lacks
is constant on every fold's train rows, and is reported as such; the ones built on present
columns are not. Dropping those constant features leaves every score exactly as it was (with
``colsample_bytree=1``: see the last test for why column sampling breaks that).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stream_app import geo
from stream_app.features import FEATURE_NAMES, MISSING
from tests.training_data import SMALL, labelled_file
from training.backtest import (
    BacktestConfig,
    fold_windows,
    run_backtest,
    run_fold,
)
from training.cli import build_parser, main
from training.cli.backtest_command import backtest_config
from training.dataset import TARGET, featurize
from training.feature_subsets import (
    FEATURE_FAMILIES,
    constant_features,
    every_and_any,
    family_features,
)
from training.labelled_file import (
    OPTIONAL_DEFAULTS,
    REQUIRED_COLUMNS,
    delayed_labels,
    normalise,
)

# Features of the fields a required-columns file lacks, and why each is constant there:
# - merchant_category / transaction_type are filled with one default each, so their codes are
#   one number on every row;
# - geo_location is filled with "unknown", a region with no coordinates: the distance to the
#   previous transaction and the speed are undefined (MISSING) on every row.
BUILT_ONLY_ON_ABSENT_FIELDS = (
    "merchant_category_code",
    "transaction_type_code",
    "distance_km_from_prev",
    "speed_kmh_from_prev",
)
# Built on absent fields too, but not constant: with one device and one region for everybody,
# "first seen" and "region changed" mark a customer's first transaction (1 / MISSING) against
# the later ones (0): a function of customer_id and timestamp, which the file has.
FIRST_TRANSACTION_MARKERS = ("device_first_seen", "region_first_seen", "region_changed")


def test_every_feature_is_in_exactly_one_family() -> None:
    counts = Counter(name for names in FEATURE_FAMILIES.values() for name in names)
    assert set(counts) == set(FEATURE_NAMES)
    assert set(counts.values()) == {1}
    both = {*FEATURE_FAMILIES["merchant"], *FEATURE_FAMILIES["context"]}
    assert family_features(["merchant", "context"]) == tuple(
        name for name in FEATURE_NAMES if name in both
    )
    with pytest.raises(ValueError, match="unknown feature family 'device'"):
        family_features(["device"])


def test_constant_features_are_those_with_one_value_on_every_row() -> None:
    frame = pd.DataFrame(
        {"a": [1.0, 1.0, 1.0], "b": [1.0, 2.0, 1.0], "c": [MISSING] * 3, "d": [0.0, 0.0, -0.0]}
    )
    assert constant_features(frame, ["a", "b", "c", "d"]) == ("a", "c", "d")  # -0.0 == 0.0
    assert constant_features(frame.iloc[:0], ["a"]) == ()
    folds = [("hour_of_day", "amount"), ("hour_of_day",), ("is_weekend", "hour_of_day")]
    assert every_and_any(folds) == {  # in FEATURE_NAMES order
        "every_fold": ["hour_of_day"],
        "any_fold": ["amount", "hour_of_day", "is_weekend"],
    }


def test_unknown_or_all_dropped_features_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown feature"):
        BacktestConfig(drop_features=("amount", "amuont"))
    with pytest.raises(ValueError, match="every feature is dropped"):
        BacktestConfig(drop_features=FEATURE_NAMES)


def _train_days(frame: pd.DataFrame, window_index: int) -> pd.DataFrame:
    window = fold_windows(frame["timestamp"], SMALL)[window_index]
    stamps = frame["timestamp"]
    return frame[(stamps >= window.train_start) & (stamps < window.train_end)]


def test_a_required_columns_file_reports_the_features_of_absent_fields_as_constant() -> None:
    raw = labelled_file()
    assert tuple(raw.columns) == REQUIRED_COLUMNS  # the fixture has nothing else
    transactions = normalise(raw)
    # What the fixture contains, checked so the expectation below follows from it:
    assert geo.REGIONS.get(OPTIONAL_DEFAULTS["geo_location"]) is None  # no coordinates
    first_rows = transactions.groupby("customer_id")["timestamp"].transform("min")
    for index in range(SMALL.folds):
        train = _train_days(transactions, index)
        # customers paying for the first time and returning ones: the markers vary,
        assert 0 < int((train["timestamp"] == first_rows[train.index]).sum()) < len(train)
        # weekend and weekday rows: the calendar varies; amounts, customers, merchants vary.
        assert train["timestamp"].dt.dayofweek.ge(5).nunique() == 2
        assert min(train[column].nunique() for column in ("amount", "merchant_id")) > 1

    report = run_backtest(raw, SMALL)

    for fold in report.folds:
        assert fold.constant_features == BUILT_ONLY_ON_ABSENT_FIELDS
        assert not set(fold.constant_features) & set(FIRST_TRANSACTION_MARKERS)
        assert fold.dropped_features == ()
    expected = list(BUILT_ONLY_ON_ABSENT_FIELDS)
    assert report.to_json()["constant_features"] == {"every_fold": expected, "any_fold": expected}


def _featurized(raw: pd.DataFrame) -> pd.DataFrame:
    transactions = normalise(raw)
    featurized = featurize(transactions, delayed_labels(transactions, SMALL.delay_days))
    featurized[TARGET] = transactions[TARGET].to_numpy()
    return featurized


def test_a_dropped_feature_is_neither_trained_on_nor_scored() -> None:
    featurized = _featurized(labelled_file())
    dropped = ("amount", "amount_usd", "cust_amount_sum_1h")
    # The dropped columns scrambled (the signal is in large amounts): no score may move.
    scrambled = featurized.assign(
        **{name: np.random.default_rng(3).permutation(featurized[name]) for name in dropped}
    )
    for config, same in ((replace(SMALL, drop_features=dropped), True), (SMALL, False)):
        window = fold_windows(featurized["timestamp"], config)[0]
        result, scores = run_fold(featurized, window)
        _, scrambled_scores = run_fold(scrambled, window)
        assert np.array_equal(scores["score"], scrambled_scores["score"]) is same
        assert result.dropped_features == config.drop_features


def test_dropping_the_constant_features_changes_no_score() -> None:
    # colsample_bytree=1: every tree may use every feature (why it matters: the next test).
    # Row subsampling (0.8) stays on: it draws rows, whatever the columns.
    kept = replace(SMALL, train=replace(SMALL.train, colsample_bytree=1.0))
    raw = labelled_file()
    baseline = run_backtest(raw, kept)
    constant = tuple(baseline.constant_features()["every_fold"])
    assert constant == BUILT_ONLY_ON_ABSENT_FIELDS
    for config in (replace(kept, drop_features=constant), replace(kept, drop_constant=True)):
        without = run_backtest(raw, config)
        assert all(fold.dropped_features == constant for fold in without.folds)
        assert np.array_equal(without.predictions["score"], baseline.predictions["score"])
        assert [fold.average_precision for fold in without.folds] == [
            fold.average_precision for fold in baseline.folds
        ]


def test_with_column_sampling_constant_features_take_sampled_slots() -> None:
    # XGBoost samples colsample_bytree of ALL columns per tree, constant ones included
    # (src/common/random.h, ColumnSampler::Init: iota over num_col, then ColSample, which in
    # random.cc keeps int(colsample * n) of a shuffle, and returns the set untouched at 1.0):
    # 36 features keep 28 per tree, 32 keep 25, and the draws differ. So the default booster's
    # scores are not bit-identical once constant features are dropped; --drop-constant makes
    # a run independent of them. If this starts failing, XGBoost skips constant columns and
    # docs/training.md's note on it is out of date.
    raw = labelled_file()
    assert SMALL.train.colsample_bytree < 1
    baseline = run_backtest(raw, SMALL)
    without = run_backtest(raw, replace(SMALL, drop_constant=True))
    assert not np.array_equal(without.predictions["score"], baseline.predictions["score"])


def test_drop_options_resolve_to_names_in_feature_order() -> None:
    argv = ["backtest", "f.csv", "--drop-features", "speed_kmh_from_prev,amount"]
    argv += ["--drop-features", "hour_of_day", "--drop-family", "merchant", "--drop-constant"]
    config = backtest_config(build_parser().parse_args(argv))
    named = {"speed_kmh_from_prev", "amount", "hour_of_day", *FEATURE_FAMILIES["merchant"]}
    assert config.drop_features == tuple(name for name in FEATURE_NAMES if name in named)
    assert config.drop_constant
    with pytest.raises(ValueError, match="unknown feature family"):
        backtest_config(build_parser().parse_args(["backtest", "f.csv", "--drop-family", "x"]))


def test_the_backtest_command_records_drops_and_constant_features(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, out = tmp_path / "labelled.csv", tmp_path / "report.json"
    labelled_file().to_csv(data, index=False)
    argv = ["backtest", str(data), "--train-days", "3", "--delay-days", "2", "--test-days", "2"]
    argv += ["--folds", "2", "--step-days", "2", "--num-boost-round", "10", "--out", str(out)]
    assert main([*argv, "--drop-family", "context", "--drop-constant"]) == 0
    report = json.loads(out.read_text())
    context = list(FEATURE_FAMILIES["context"])
    assert report["config"]["drop_features"] == context
    assert report["config"]["drop_constant"] is True
    travel = ["distance_km_from_prev", "speed_kmh_from_prev"]  # the constant non-context ones
    assert [fold["dropped_features"] for fold in report["folds"]] == [context + travel] * 2
    assert report["constant_features"]["every_fold"] == list(BUILT_ONLY_ON_ABSENT_FIELDS)
    printed = " ".join(capsys.readouterr().out.split())
    assert f"constant in every fold: {', '.join(BUILT_ONLY_ON_ABSENT_FIELDS)}" in printed
    assert f"dropped: {', '.join(context)}" in printed
