"""The training options the model commands share, with their defaults read from one source.

``first-model`` and ``train`` train the same way, and ``train`` by hand must train like a
retrain on request: so the options, their defaults (from :class:`TrainingSettings` and
:class:`CostModel`, never retyped) and their mapping to a :class:`TrainConfig` and a
:class:`CostModel` are written once, here.
"""

from __future__ import annotations

import argparse

from stream_app.settings import TrainingSettings
from training.evaluate import CostModel
from training.train import TrainConfig
from training.tuning import SEARCH_SPACE, TuneConfig

# Every default below is read from the object it configures, never retyped: the training options
# from TrainingSettings (so `train` by hand trains like a retrain on request), the costs from
# CostModel (the backtest's from BacktestConfig, in backtest_command.py).
# tests/unit/test_training_cli.py checks they match.
TRAINING = TrainingSettings()
COSTS = CostModel()
DEFAULT_TUNE_VALIDATION_DAYS = 2.0

# The training options in --help order: flag, type (bool: a switch), default, help; the short
# names keep the table at one row per option.
T, C = TRAINING, COSTS
TRAINING_OPTIONS: tuple[tuple[str, type, object, str], ...] = (
    ("--seed", int, T.seed, f"random seed (default {T.seed})"),
    ("--nthread", int, T.nthread, f"XGBoost threads (default {T.nthread})"),
    ("--rounds", int, T.num_boost_round, f"max boosting rounds (default {T.num_boost_round})"),
    ("--validation-days", float, T.validation_days, f"default {T.validation_days:g}"),
    ("--test-days", float, T.test_days, f"default {T.test_days:g}"),
    (
        "--gap-days",
        float,
        T.gap_days,
        "days after each split for its labels to arrive; unused for training "
        f"(default {T.gap_days:g})",
    ),
    ("--missed-fraud-cost", float, C.missed_fraud, f"cost of a missed fraud ({C.missed_fraud:g})"),
    ("--missed-fraud-from-amount", bool, False, "charge each missed fraud its own amount instead"),
    ("--false-review-cost", float, C.false_review, f"default {C.false_review:g}"),
    ("--false-block-cost", float, C.false_block, f"default {C.false_block:g}"),
)


def add_training_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training")
    for flag, kind, default, text in TRAINING_OPTIONS:
        if kind is bool:
            group.add_argument(flag, action="store_true", help=text)
        else:
            group.add_argument(flag, type=kind, default=default, help=text)


def train_config(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(seed=args.seed, nthread=args.nthread, num_boost_round=args.rounds)


def cost_model(args: argparse.Namespace) -> CostModel:
    return CostModel(
        missed_fraud=args.missed_fraud_cost,
        missed_fraud_from_amount=args.missed_fraud_from_amount,
        false_review=args.false_review_cost,
        false_block=args.false_block_cost,
    )


def add_tuning_options(parser: argparse.ArgumentParser, where: str, delay_default: str) -> None:
    """``--tune N`` and its settings: backtest searches per fold, train on its train split."""
    tuning = parser.add_argument_group(
        "tuning",
        f"a seeded random search {where}: trials train on the first days and are scored "
        "(average precision) on the last ones, after a label delay; searched: "
        f"{', '.join(SEARCH_SPACE)}",
    )
    tuning.add_argument(
        "--tune",
        type=int,
        default=0,
        metavar="N",
        help="N trials, the untuned booster first (default 0: no search)",
    )
    tuning.add_argument("--tune-seed", type=int, default=0, help="the search's seed (default 0)")
    tuning.add_argument(
        "--tune-validation-days",
        type=float,
        default=DEFAULT_TUNE_VALIDATION_DAYS,
        help=f"last days each trial is scored on (default {DEFAULT_TUNE_VALIDATION_DAYS:g})",
    )
    tuning.add_argument(
        "--tune-delay-days",
        type=float,
        help=f"days between the trials' train rows and the scored days (default {delay_default})",
    )


def tune_config(args: argparse.Namespace, default_delay_days: float) -> TuneConfig | None:
    if not args.tune:
        return None
    delay = default_delay_days if args.tune_delay_days is None else args.tune_delay_days
    return TuneConfig(args.tune, args.tune_validation_days, delay, args.tune_seed)
