"""``fraudstream-train``'s defaults are those of the objects it configures, never retyped.

Run with no options, each command must build exactly what the dataclasses and settings build by
default: a literal retyped in argparse drifts the day someone changes the dataclass.
"""

from __future__ import annotations

from dataclasses import asdict

import pytest

from stream_app.settings import Settings, TrainingSettings
from training.backtest import BacktestConfig
from training.cli import build_parser
from training.cli.backtest_command import backtest_config
from training.cli.model_commands import training_job
from training.cli.options import cost_model, train_config
from training.dataset import SplitPlan
from training.evaluate import CostModel
from training.registry import PromotionPolicy
from training.train import TrainConfig


@pytest.mark.parametrize("command", [["first-model"], ["train"]])
def test_training_options_default_to_the_train_config_and_cost_model(command: list[str]) -> None:
    args = build_parser().parse_args(command)
    assert train_config(args) == TrainConfig()
    assert cost_model(args) == CostModel()
    assert (args.validation_days, args.test_days, args.gap_days) == (
        SplitPlan().validation_days,
        SplitPlan().test_days,
        SplitPlan().gap_days,
    )


def test_train_defaults_to_what_a_retrain_on_request_uses() -> None:
    args = build_parser().parse_args(["train"])
    training = TrainingSettings()
    job = training_job(args, Settings())
    assert args.history_days == training.history_days
    assert job.policy.margin == training.promotion_margin == PromotionPolicy().margin
    assert job.plan == SplitPlan(
        validation_days=training.validation_days,
        test_days=training.test_days,
        gap_days=training.gap_days,
    )
    assert job.config == TrainConfig(
        seed=training.seed, nthread=training.nthread, num_boost_round=training.num_boost_round
    )


def test_first_model_simulates_as_many_days_as_a_retrain_reads() -> None:
    args = build_parser().parse_args(["first-model"])
    assert args.days == TrainingSettings().history_days


def test_backtest_options_default_to_the_backtest_config() -> None:
    args = build_parser().parse_args(["backtest", "labelled.csv"])
    expected = asdict(BacktestConfig())
    for option in ("train_days", "delay_days", "test_days", "folds", "step_days", "top_k"):
        assert getattr(args, option) == expected[option], option
    # the booster flags stay unset so a --config file can set them; the effective config is
    # the dataclass's own, seed and threads included
    assert backtest_config(args) == BacktestConfig()
    assert (backtest_config(args).train.seed, backtest_config(args).train.nthread) == (
        TrainConfig().seed,
        TrainConfig().nthread,
    )


def test_help_shows_the_defaults_it_uses(capsys: pytest.CaptureFixture[str]) -> None:
    # The help text is formatted from the same objects: check one line stays in step.
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert f"max boosting rounds (default {TrainingSettings().num_boost_round})" in help_text
