"""Backtest protocol options: which rows each exclusion rule keeps, the predictions file, and
booster hyper-parameters from a file or flags.

The expected kept/dropped sets below are worked out by hand from the rules (see each test's
comments), not by calling the code under test.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from tests.training_data import SMALL, day, labelled_file
from training.backtest import (
    PREDICTION_COLUMNS,
    BacktestConfig,
    ExcludeKnown,
    fold_test_rows,
    fold_windows,
    run_backtest,
)
from training.cli import main
from training.hyperparams import merged_train_config
from training.train import TrainConfig

# SMALL's first fold on a file from day 0 to day 9.5: train days 1, 2, 3; delay days 4, 5;
# test day 0 is day 6, test day 1 is day 7.
HISTORY = [  # (timestamp, customer, is_fraud): frauds before the test period
    (day(0.5), "old", True),  # before the fold's train start
    (day(2.5), "train", True),  # on a train day
    (day(4.5), "delay0", True),  # on delay day 0
    (day(5.0), "edge", True),  # the first instant of delay day 1
    (day(5.5), "delay1", True),  # on delay day 1
]
TEST_PERIOD = [  # (timestamp, customer, is_fraud): one row per customer per test day
    (day(6.1), "old", False),
    (day(6.2), "train", True),
    (day(6.3), "delay0", False),
    (day(6.4), "delay1", False),
    (day(6.5), "clean", True),
    (day(6.6), "edge", False),
    (day(7.1), "old", False),
    (day(7.2), "train", False),
    (day(7.3), "delay0", False),
    (day(7.4), "delay1", False),
    (day(7.5), "clean", False),
    (day(7.6), "edge", False),
]


def protocol_rows() -> pd.DataFrame:
    return pd.DataFrame(HISTORY + TEST_PERIOD, columns=["timestamp", "customer_id", "is_fraud"])


def kept_pairs(rule: ExcludeKnown) -> tuple[set[tuple[pd.Timestamp, str]], int]:
    config = replace(SMALL, exclude_known=rule)
    window = fold_windows(pd.Series([day(0), day(9.5)]), config)[0]
    rows, removed = fold_test_rows(protocol_rows(), window)
    assert len(rows) == len(TEST_PERIOD)  # every test-period row is returned, kept or not
    kept = rows[rows["kept"]]
    return set(zip(kept["timestamp"], kept["customer_id"], strict=True)), removed


def period_minus(*dropped: tuple[float, str]) -> set[tuple[pd.Timestamp, str]]:
    """The test-period (timestamp, customer) pairs minus the dropped ones."""
    gone = {(day(offset), customer) for offset, customer in dropped}
    everything = {(stamp, customer) for stamp, customer, _ in TEST_PERIOD}
    assert gone <= everything
    return everything - gone


def test_ever_drops_every_customer_with_a_fraud_before_the_delay_day() -> None:
    # Test day 0 (day 6) knows frauds before delay day 0 (day 4): old, train.
    # Test day 1 (day 7) knows frauds before delay day 1 (day 5): old, train, delay0.
    # edge's fraud is at day 5.0, i.e. on delay day 1: known from test day 2 only.
    kept, removed = kept_pairs("ever")
    assert kept == period_minus(
        (6.1, "old"), (6.2, "train"), (7.1, "old"), (7.2, "train"), (7.3, "delay0")
    )
    assert removed == 5


def test_since_train_start_forgets_frauds_before_the_folds_train_days() -> None:
    # As ever, but old's fraud (day 0.5) is before the train start (day 1): old stays.
    kept, removed = kept_pairs("since-train-start")
    assert kept == period_minus((6.2, "train"), (7.2, "train"), (7.3, "delay0"))
    assert removed == 3


def test_none_keeps_every_test_period_row() -> None:
    kept, removed = kept_pairs("none")
    assert kept == period_minus()
    assert removed == 0


def test_an_unknown_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="exclude_known must be one of"):
        BacktestConfig(exclude_known="sometimes")  # type: ignore[arg-type]


@pytest.mark.parametrize("rule", ["ever", "since-train-start", "none"])
def test_predictions_hold_every_test_period_row_and_reproduce_the_metrics(
    tmp_path: Path, rule: ExcludeKnown
) -> None:
    frame = labelled_file()
    report = run_backtest(frame, replace(SMALL, exclude_known=rule))
    path = tmp_path / "predictions.parquet"
    report.write_predictions(path)
    saved = pd.read_parquet(path)
    assert tuple(saved.columns) == PREDICTION_COLUMNS
    # SMALL's two folds test on days 6-7 and 8-9 of the file.
    stamps = pd.to_datetime(frame["timestamp"], utc=True)
    in_tests = [((stamps >= day(s)) & (stamps < day(s + 2))).sum() for s in (6, 8)]
    assert saved.groupby("fold").size().tolist() == in_tests
    for fold in report.folds:
        rows = saved[(saved["fold"] == fold.fold) & saved["kept"]]
        assert len(rows) == fold.test_rows
        assert int(rows["is_fraud"].sum()) == fold.test_frauds
        assert fold.period_rows == in_tests[fold.fold]
        assert fold.roc_auc == pytest.approx(roc_auc_score(rows["is_fraud"], rows["score"]))
        assert fold.average_precision == pytest.approx(
            average_precision_score(rows["is_fraud"], rows["score"]), abs=1e-6
        )
    if rule == "none":
        assert saved["kept"].all()
    else:
        assert not saved["kept"].all()  # the file's customers repeat: someone is known


def test_rules_only_change_which_rows_are_measured() -> None:
    frame = labelled_file()
    reports = {
        rule: run_backtest(frame, replace(SMALL, exclude_known=rule))
        for rule in ("ever", "since-train-start", "none")
    }
    scores = [report.predictions["score"].to_numpy() for report in reports.values()]
    assert all(np.array_equal(scores[0], other) for other in scores[1:])
    kept = {rule: int(report.predictions["kept"].sum()) for rule, report in reports.items()}
    assert kept["ever"] <= kept["since-train-start"] <= kept["none"]


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_hyper_parameters_round_trip_through_a_file(tmp_path: Path, suffix: str) -> None:
    wanted = TrainConfig(seed=7, num_boost_round=40, learning_rate=0.05, max_depth=4, subsample=0.5)
    values = {key: value for key, value in asdict(wanted).items() if value is not None}
    path = tmp_path / f"booster{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(values))
    else:
        path.write_text("[train]\n" + "\n".join(f"{k} = {v!r}" for k, v in values.items()))
    assert merged_train_config(path) == wanted
    # Flags override the file; None means "flag not given".
    merged = merged_train_config(path, {"max_depth": 9, "learning_rate": None})
    assert merged == replace(wanted, max_depth=9)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"max_dept": 4}', "unknown hyper-parameter 'max_dept'"),
        ('{"max_depth": 4.5}', "max_depth: expected an integer"),
        ('{"learning_rate": "fast"}', "learning_rate: expected a number"),
        ('{"subsample": true}', "subsample: expected a number"),
    ],
)
def test_bad_hyper_parameters_are_refused_by_name(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "booster.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        merged_train_config(path)


def test_scale_pos_weight_auto_means_derived(tmp_path: Path) -> None:
    path = tmp_path / "booster.toml"
    path.write_text('scale_pos_weight = "auto"\nmin_child_weight = 2\n')
    assert merged_train_config(path) == TrainConfig(min_child_weight=2.0)


def test_backtest_command_records_the_protocol_and_booster(tmp_path: Path) -> None:
    data = tmp_path / "labelled.csv"
    labelled_file().to_csv(data, index=False)
    config = tmp_path / "booster.toml"
    config.write_text("num_boost_round = 20\nmax_depth = 3\nlearning_rate = 0.2\n")
    out, predictions = tmp_path / "report.json", tmp_path / "predictions.parquet"
    argv = ["backtest", str(data), "--train-days", "3", "--delay-days", "2", "--test-days", "2"]
    argv += ["--folds", "2", "--step-days", "2", "--top-k", "5", "--out", str(out)]
    argv += ["--exclude-known", "since-train-start", "--config", str(config)]
    argv += ["--max-depth", "2", "--predictions", str(predictions)]
    assert main(argv) == 0
    report = json.loads(out.read_text())
    assert report["config"]["exclude_known"] == "since-train-start"
    train = report["config"]["train"]
    assert (train["num_boost_round"], train["max_depth"], train["learning_rate"]) == (20, 2, 0.2)
    saved = pd.read_parquet(predictions)
    assert len(saved) == sum(fold["period_rows"] for fold in report["folds"])
    assert int(saved["kept"].sum()) == sum(fold["test_rows"] for fold in report["folds"])
