"""Training benchmark: features + training on 1M simulated transactions, and a 1.75M-row backtest.

    .venv/bin/python bench/bench_training.py                              # the goals' sizes
    .venv/bin/python bench/bench_training.py --transactions 200000 --backtest-rows 400000

Goals on a 2-core machine: features + training under 2 minutes for 1M transactions; the
default backtest (4 folds of 7 + 7 + 7 days) under 10 minutes on a 1.75M-row file. Simulation
time is reported but is not part of either goal. Prints one JSON object, then a table.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from producers.simulator import SimulatorConfig, generate_history
from training.backtest import BacktestConfig, run_backtest
from training.dataset import SplitPlan, featurize, known_labels, split_by_time
from training.labelled_file import read_labelled_file
from training.train import TrainConfig, train_model

TRAINING_GOAL_SECONDS = 120.0
BACKTEST_GOAL_SECONDS = 600.0


def simulate(rows: int, days: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """About ``rows`` transactions over ``days`` days (customers = rows / days at 1 a day)."""
    started = time.perf_counter()
    config = SimulatorConfig(seed=seed, n_customers=max(math.ceil(rows / days), 1))
    transactions, labels = generate_history(config, days)
    return transactions, labels, time.perf_counter() - started


def bench_training(rows: int, days: int, seed: int, nthread: int) -> dict[str, Any]:
    transactions, labels, simulate_seconds = simulate(rows, days, seed)
    as_of = pd.Timestamp(transactions["timestamp"].max())
    started = time.perf_counter()
    arrived = known_labels(labels, as_of)
    featurized = featurize(transactions, arrived)
    features_seconds = time.perf_counter() - started
    splits = split_by_time(featurized, arrived, as_of, SplitPlan())
    split_seconds = time.perf_counter() - started - features_seconds
    started = time.perf_counter()
    bundle = train_model(splits, config=TrainConfig(seed=seed, nthread=nthread))
    train_seconds = time.perf_counter() - started
    total = features_seconds + split_seconds + train_seconds
    return {
        "transactions": len(transactions),
        "days": days,
        "train_rows": splits.train.rows,
        "simulate_seconds": round(simulate_seconds, 1),
        "features_seconds": round(features_seconds, 1),
        "split_seconds": round(split_seconds, 1),
        "train_seconds": round(train_seconds, 1),
        "features_and_training_seconds": round(total, 1),
        "goal_seconds": TRAINING_GOAL_SECONDS,
        "best_iteration": bundle.metadata.metrics["best_iteration"],
        "test_average_precision": round(bundle.metadata.metrics["average_precision"], 4),
    }


def bench_backtest(rows: int, days: int, seed: int, nthread: int) -> dict[str, Any]:
    transactions, _, simulate_seconds = simulate(rows, days, seed)
    config = BacktestConfig(train=TrainConfig(seed=seed, nthread=nthread))
    simulated_rows = len(transactions)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "labelled.parquet"
        transactions.to_parquet(path, index=False)
        del transactions
        started = time.perf_counter()
        report = run_backtest(read_labelled_file(path), config)
        seconds = time.perf_counter() - started
    summary = report.summary()
    return {
        "rows": simulated_rows,
        "days": days,
        "folds": len(report.folds),
        "simulate_seconds": round(simulate_seconds, 1),
        "backtest_seconds": round(seconds, 1),
        "features_seconds": round(report.feature_seconds, 1),
        "fold_seconds": [round(fold.seconds, 1) for fold in report.folds],
        "goal_seconds": BACKTEST_GOAL_SECONDS,
        "average_precision_mean": round(summary["average_precision"]["mean"], 4),
        "average_precision_std": round(summary["average_precision"]["std"], 4),
    }


def table(results: dict[str, Any]) -> str:
    lines = [f"{'measure':<44}{'seconds':>10}{'goal':>8}"]
    training = results.get("training")
    if training:
        label = f"features + training, {training['transactions']:,} transactions"
        lines.append(
            f"{label:<44}{training['features_and_training_seconds']:>10}{training['goal_seconds']:>8.0f}"
        )
        lines.append(f"{'  of which features':<44}{training['features_seconds']:>10}")
        lines.append(f"{'  of which training':<44}{training['train_seconds']:>10}")
    backtest = results.get("backtest")
    if backtest:
        label = f"backtest, {backtest['rows']:,} rows, {backtest['folds']} folds"
        lines.append(
            f"{label:<44}{backtest['backtest_seconds']:>10}{backtest['goal_seconds']:>8.0f}"
        )
        lines.append(f"{'  of which features':<44}{backtest['features_seconds']:>10}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--transactions", type=int, default=1_000_000, help="default 1,000,000")
    parser.add_argument("--days", type=int, default=35, help="history for training (35)")
    parser.add_argument("--backtest-rows", type=int, default=1_750_000, help="default 1,750,000")
    parser.add_argument("--backtest-days", type=int, default=42, help="default 42 (4 folds)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--nthread", type=int, default=2)
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--skip-backtest", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results: dict[str, Any] = {}
    if not args.skip_training:
        results["training"] = bench_training(args.transactions, args.days, args.seed, args.nthread)
    if not args.skip_backtest:
        results["backtest"] = bench_backtest(
            args.backtest_rows, args.backtest_days, args.seed, args.nthread
        )
    print(json.dumps(results, indent=2))
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
