"""``backtest``: rolling train / delay / test folds on a labelled file, any file.

Its options mirror :class:`BacktestConfig` and the booster's :class:`TrainConfig` fields (read
from the classes, never retyped); it needs no settings, store or MLflow.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stream_app.settings import Settings
from training.backtest import (
    EXCLUDE_RULES,
    BacktestConfig,
    run_backtest,
)
from training.cli.options import add_tuning_options, tune_config
from training.cli.output import (
    Ui,
    backtest_tables,
    feature_lines,
    print_table,
    steps,
    tuning_table,
)
from training.feature_subsets import FEATURE_FAMILIES, family_features, in_feature_order
from training.hyperparams import INT_KEYS, describe, merged_train_config
from training.labelled_file import read_labelled_file
from training.train import TrainConfig

# The options' defaults are the BacktestConfig's (tests/unit/test_training_cli.py checks them).
BACKTEST = BacktestConfig()
DEFAULT_BACKTEST_DIR = Path(".local/backtest")
# Backtest flags for TrainConfig fields (dashes for underscores), with their types and defaults.
BACKTEST_BOOSTER_FLAGS = [
    (name.replace("_", "-"), int if name in INT_KEYS else float, getattr(TrainConfig(), name))
    for name in (
        "seed",
        "nthread",
        "num_boost_round",
        "learning_rate",
        "max_depth",
        "min_child_weight",
        "subsample",
        "colsample_bytree",
        "reg_lambda",
        "max_bin",
        "scale_pos_weight",
    )
]


def add_backtest_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "backtest",
        help="rolling train / delay / test folds on a labelled CSV or Parquet file",
        description=(
            "FILE needs transaction_id, timestamp, customer_id, merchant_id, amount, is_fraud. "
            "Each fold trains on T days, skips D days whose labels are not known yet, and tests "
            "on U days; folds step back a week at a time from the end of the file."
        ),
    )
    parser.add_argument("file", type=Path, help="labelled transactions (.csv or .parquet)")
    for flag, default, what in (
        ("--train-days", BACKTEST.train_days, "T"),
        ("--delay-days", BACKTEST.delay_days, "D"),
        ("--test-days", BACKTEST.test_days, "U"),
        ("--folds", BACKTEST.folds, "folds"),
        ("--step-days", BACKTEST.step_days, "days between folds"),
        ("--top-k", BACKTEST.top_k, "k of card precision@k"),
    ):
        parser.add_argument(flag, type=int, default=default, help=f"{what} (default {default})")
    parser.add_argument("--out", type=Path, help="JSON report (default .local/backtest/FILE.json)")
    parser.add_argument(
        "--exclude-known",
        choices=EXCLUDE_RULES,
        default="ever",
        help="which known-compromised customers each test day drops: frauds known from any "
        "time (ever, the default), from the fold's train start (since-train-start, the Fraud "
        "Detection Handbook's rule), or nobody (none)",
    )
    parser.add_argument(
        "--predictions",
        type=Path,
        metavar="FILE.parquet",
        help="write every test-period row of every fold with its score and kept flag",
    )
    add_feature_options(parser)
    add_tuning_options(parser, "per fold, inside the fold's train days only", "--delay-days")
    booster = parser.add_argument_group(
        "booster", "hyper-parameters; flags override --config, which overrides the defaults"
    )
    booster.add_argument(
        "--config", type=Path, metavar="FILE", help="TOML or JSON of TrainConfig fields"
    )
    for flag, kind, default in BACKTEST_BOOSTER_FLAGS:
        shown = "auto, from the class ratio" if default is None else default
        booster.add_argument(f"--{flag}", type=kind, help=f"default {shown}")
    parser.set_defaults(handler=backtest)


def add_feature_options(parser: argparse.ArgumentParser) -> None:
    features = parser.add_argument_group(
        "features", "train and score the booster without some features (an ablation)"
    )
    features.add_argument(
        "--drop-features",
        type=_names,
        default=[],
        action="extend",
        metavar="NAME[,NAME...]",
        help="feature names to leave out (repeatable)",
    )
    features.add_argument(
        "--drop-family",
        type=_names,
        default=[],
        action="extend",
        metavar="FAMILY[,FAMILY...]",
        help=f"feature families to leave out: {', '.join(FEATURE_FAMILIES)} (repeatable)",
    )
    features.add_argument(
        "--drop-constant",
        action="store_true",
        help="also leave out, fold by fold, the features constant on the fold's train rows",
    )


def _names(value: str) -> list[str]:
    """``a,b`` -> ["a", "b"]: comma lists, so one flag can name a whole ablation."""
    return [name.strip() for name in value.split(",") if name.strip()]


def dropped_features(args: argparse.Namespace) -> tuple[str, ...]:
    """The named features and the named families' features, in FEATURE_NAMES order."""
    return in_feature_order({*args.drop_features, *family_features(args.drop_family)})


def backtest_config(args: argparse.Namespace) -> BacktestConfig:
    """The backtest's configuration from its options, a --config file and booster flags."""
    return BacktestConfig(
        train_days=args.train_days,
        delay_days=args.delay_days,
        test_days=args.test_days,
        folds=args.folds,
        step_days=args.step_days,
        top_k=args.top_k,
        exclude_known=args.exclude_known,
        drop_features=dropped_features(args),
        drop_constant=args.drop_constant,
        tune=tune_config(args, default_delay_days=args.delay_days),
        train=merged_train_config(
            args.config,
            {
                flag.replace("-", "_"): getattr(args, flag.replace("-", "_"))
                for flag, _, _ in BACKTEST_BOOSTER_FLAGS
            },
        ),
    )


def backtest(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    del settings  # the backtest reads only its file
    config = backtest_config(args)
    out = args.out or DEFAULT_BACKTEST_DIR / f"{args.file.stem}.json"
    with steps(ui.err) as step:
        step(f"reading {args.file}")
        frame = read_labelled_file(args.file)
        step(f"features for {len(frame):,} rows, then {config.folds} folds")
        report = run_backtest(
            frame, config, on_fold=lambda fold: step(f"fold {fold.fold + 1}/{config.folds} done")
        )
    report.write_json(out)
    ui.out.print(f"booster: {describe(config.train)}")
    for table in backtest_tables(report):
        print_table(ui.out, table)
    if report.tuned():
        print_table(ui.out, tuning_table(report))
    for line in feature_lines(report):
        ui.out.print(line)
    ui.out.print(f"report: {out}")
    if args.predictions:
        report.write_predictions(args.predictions)
        ui.out.print(f"predictions: {args.predictions} ({len(report.predictions):,} rows)")
    return 0
