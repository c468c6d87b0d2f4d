"""The hyper-parameter search: seeded candidates, its time slices, and that it never peeks.

The backtest tests hand the search a whole file and prove, two ways, that a fold's search only
ever had that fold's train days: by the rows it was handed, and by flipping every later label
(its trial table must not move) against flipping labels inside the train days (it must).
"""

from __future__ import annotations

import json
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import training.backtest as backtest_module
from stream_app.features import FEATURE_NAMES
from tests.training_data import SMALL, day, labelled_file
from training.backtest import BacktestConfig, FoldResult, fold_windows, run_backtest
from training.cli import build_parser, main
from training.cli.backtest_command import backtest_config
from training.train import TrainConfig, fit_booster
from training.tuning import (
    SEARCH_SPACE,
    TuneConfig,
    candidates,
    inner_splits,
    tune_on_training_days,
    with_params,
)

BASE = TrainConfig(num_boost_round=30, max_depth=3)
TUNE = TuneConfig(trials=4, validation_days=2, delay_days=1, seed=5)
# One fold, train days 1-6, delay day 7, test days 8-9 of a 10-day file; the search scores its
# trials on train days 5-6 and trains them on days 1-3 (day 4 is its label delay).
TUNED = replace(
    SMALL,
    train_days=6,
    delay_days=1,
    test_days=2,
    folds=1,
    train=BASE,
    tune=TUNE,
)


def hard_file(seed: int = 0) -> pd.DataFrame:
    """labelled_file with half the frauds looking legit, so trials differ in average precision."""
    frame = labelled_file(days=10, rows_per_day=300, seed=seed)
    rng = np.random.default_rng(seed + 1)
    hidden = frame["is_fraud"].astype(bool).to_numpy() & (rng.random(len(frame)) < 0.5)
    frame.loc[hidden, "amount"] = rng.gamma(2.0, 30.0, hidden.sum()).round(2)
    frame.loc[hidden, "merchant_id"] = [f"m{value}" for value in rng.integers(3, 60, hidden.sum())]
    return frame


def flip_labels(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    stamps = pd.to_datetime(frame["timestamp"], utc=True)
    inside = (stamps >= start) & (stamps < end)
    return frame.assign(is_fraud=np.where(inside, 1 - frame["is_fraud"], frame["is_fraud"]))


def tuning_of(report_fold: FoldResult) -> dict[str, Any]:
    assert report_fold.tuning is not None
    return report_fold.tuning.to_json()


# --- candidates and slices --------------------------------------------------------------------


def test_candidates_start_with_the_base_config_and_are_seeded() -> None:
    drawn = candidates(BASE, trials=6, seed=3)
    assert drawn[0] == {name: getattr(BASE, name) for name in SEARCH_SPACE}
    assert drawn == candidates(BASE, trials=6, seed=3)
    assert drawn[1:] != candidates(BASE, trials=6, seed=4)[1:]
    assert len({tuple(params.values()) for params in drawn}) == 6
    for params in drawn[1:]:
        assert 3 <= params["max_depth"] <= 8 and 50 <= params["num_boost_round"] <= 400
        assert 0.02 <= params["learning_rate"] <= 0.3 and 0.5 <= params["subsample"] <= 1.0
    assert all(with_params(BASE, params) for params in drawn)  # every name is a TrainConfig field


def test_inner_train_ends_a_label_delay_before_the_validation_slice() -> None:
    stamps = [day(offset) for offset in (0.5, 1.5, 2.5, 2.9, 3.5, 4.0, 4.5, 5.9)]
    rows = pd.DataFrame(
        {
            "timestamp": stamps,
            "is_fraud": [True, False, False, True, True, True, False, True],
            **{name: np.zeros(len(stamps), np.float32) for name in FEATURE_NAMES},
        }
    )
    tune = TuneConfig(trials=1, validation_days=2, delay_days=1)
    inner, validation = inner_splits(rows, FEATURE_NAMES, (day(0), day(6)), tune)
    # validation: days 4-6; delay: day 3 (its row at 3.5 is unused); inner train: days 0-3.
    assert inner.frame["timestamp"].tolist() == stamps[:4]
    assert validation.frame["timestamp"].tolist() == stamps[5:]
    assert (inner.start, inner.end, validation.start, validation.end) == (
        day(0),
        day(3),
        day(4),
        day(6),
    )


def test_rows_outside_the_training_days_are_refused() -> None:
    rows = pd.DataFrame({"timestamp": [day(1), day(6)], "is_fraud": [True, False]})
    tune = TuneConfig(trials=1, validation_days=2, delay_days=1)
    with pytest.raises(ValueError, match="outside the training days"):
        inner_splits(rows, FEATURE_NAMES, (day(0), day(6)), tune)


def test_a_train_period_too_short_for_the_search_is_refused() -> None:
    with pytest.raises(ValueError, match=r"validation \+ delay days \(3\); got train_days=3"):
        BacktestConfig(train_days=3, tune=TuneConfig(trials=2, validation_days=2, delay_days=1))


# --- in the backtest ---------------------------------------------------------------------------


def test_the_search_is_handed_only_the_fold_train_days(monkeypatch: pytest.MonkeyPatch) -> None:
    config = replace(TUNED, folds=2, step_days=1)
    handed: list[tuple[pd.Timestamp, pd.Timestamp, tuple[pd.Timestamp, pd.Timestamp]]] = []
    real = tune_on_training_days

    def spy(rows: pd.DataFrame, *args: Any) -> Any:
        handed.append((rows["timestamp"].min(), rows["timestamp"].max(), args[1]))
        return real(rows, *args)

    monkeypatch.setattr(backtest_module, "tune_on_training_days", spy)
    frame = hard_file()
    run_backtest(frame, config)
    windows = fold_windows(pd.to_datetime(frame["timestamp"], utc=True), config)
    assert [period for _, _, period in handed] == [(w.train_start, w.train_end) for w in windows]
    for (first, last, _), window in zip(handed, windows, strict=True):
        assert window.train_start <= first and last < window.train_end < window.test_start


def test_labels_after_the_train_days_never_move_the_search() -> None:
    frame = hard_file()
    window = fold_windows(pd.to_datetime(frame["timestamp"], utc=True), TUNED)[0]
    fold = run_backtest(frame, TUNED).folds[0]
    # Every label from the end of the train days on (delay and test days) flipped: the test
    # metrics change, the search does not, trial for trial.
    poisoned = run_backtest(flip_labels(frame, window.train_end, day(11)), TUNED).folds[0]
    assert tuning_of(poisoned) == tuning_of(fold)
    assert poisoned.average_precision != fold.average_precision
    # The control: flipping labels inside the scored train days does move it.
    inside = run_backtest(flip_labels(frame, day(5), day(5.5)), TUNED).folds[0]
    assert [t["average_precision"] for t in tuning_of(inside)["trials"]] != [
        t["average_precision"] for t in tuning_of(fold)["trials"]
    ]


def test_same_seed_same_choice_and_the_fold_trains_with_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frame = hard_file()
    trained_with: list[TrainConfig] = []
    real = fit_booster

    def spy(train: Any, validation: Any, config: TrainConfig) -> Any:
        trained_with.append(config)
        return real(train, validation, config)

    first = run_backtest(frame, TUNED).folds[0]
    monkeypatch.setattr(backtest_module, "fit_booster", spy)
    second = run_backtest(frame, TUNED).folds[0]
    assert tuning_of(first) == tuning_of(second)
    assert first.average_precision == second.average_precision
    chosen = tuning_of(first)
    trials = chosen["trials"]
    # the choice is the best trial on the validation slice, and trials really differ
    assert chosen["best_average_precision"] == max(t["average_precision"] for t in trials)
    assert len({t["average_precision"] for t in trials}) > 1
    assert trained_with == [with_params(BASE, chosen["chosen"])]
    other = run_backtest(frame, replace(TUNED, tune=replace(TUNE, seed=6))).folds[0]
    assert tuning_of(other)["trials"][1]["params"] != trials[1]["params"]


def test_a_report_without_tuning_has_no_tuning_keys_and_one_with_has_them_per_fold() -> None:
    frame = hard_file()
    plain = run_backtest(frame, replace(TUNED, tune=None)).to_json()
    expected_config = {field.name for field in fields(BacktestConfig)} - {"tune"}
    expected_fold = {field.name for field in fields(FoldResult)} - {"tuning"}
    assert set(plain["config"]) == expected_config
    assert all(set(fold) == expected_fold for fold in plain["folds"])
    tuned = run_backtest(frame, TUNED).to_json()
    assert tuned["config"]["tune"] == {
        "trials": 4,
        "validation_days": 2,
        "delay_days": 1,
        "seed": 5,
    }
    tuning = tuned["folds"][0]["tuning"]
    assert set(tuning["chosen"]) == set(SEARCH_SPACE)
    assert tuning["validation_start"] == day(5).isoformat()
    assert tuning["inner_train_end"] == day(4).isoformat()
    assert [trial["index"] for trial in tuning["trials"]] == [0, 1, 2, 3]


# --- the command line ---------------------------------------------------------------------------


def test_tune_flags_build_the_search_and_its_delay_defaults_to_the_backtest_delay() -> None:
    parse = build_parser().parse_args
    assert backtest_config(parse(["backtest", "f.csv", "--delay-days", "3"])).tune is None
    args = parse(["backtest", "f.csv", "--delay-days", "3", "--tune", "5", "--tune-seed", "9"])
    assert backtest_config(args).tune == TuneConfig(5, validation_days=2, delay_days=3, seed=9)
    own = parse(["backtest", "f.csv", "--tune", "5", "--tune-delay-days", "1"])
    assert backtest_config(own).tune == TuneConfig(5, validation_days=2, delay_days=1, seed=0)


def test_the_backtest_command_prints_and_saves_each_fold_choice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, out = tmp_path / "hard.csv", tmp_path / "report.json"
    hard_file().to_csv(path, index=False)
    flags = ["--train-days", "6", "--delay-days", "1", "--test-days", "2", "--folds", "1"]
    tuning = ["--tune", "3", "--tune-delay-days", "1", "--num-boost-round", "30"]
    assert main(["backtest", str(path), *flags, *tuning, "--out", str(out)]) == 0
    saved = json.loads(out.read_text())["folds"][0]["tuning"]
    printed = capsys.readouterr().out
    table = printed[printed.index("tuning (chosen") :]
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in table.splitlines()]
    cells = next(row for row in rows if row[:1] == ["0"])
    chosen = saved["chosen"]
    assert cells == [
        "0",
        f"{saved['best_average_precision']:.4f}",
        *(f"{chosen[name]:g}" for name in SEARCH_SPACE),
    ]
