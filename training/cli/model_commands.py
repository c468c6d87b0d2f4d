"""``first-model`` (simulated history to a local bundle) and ``train`` (the lake to MLflow).

Both build a model from splits of labelled history and the shared training options; they differ
in where the history comes from (the simulator, the lake) and where the model goes (a folder,
MLflow behind the champion gate). ``train`` publishes through the same
:func:`~training.retrain.job.train_and_publish` as a retrain on request.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd

from stream_app.settings import Settings
from stream_app.store import open_store
from training.cli.options import (
    TRAINING,
    add_training_options,
    add_tuning_options,
    cost_model,
    train_config,
    tune_config,
)
from training.cli.output import Ui, gate_line, model_table, print_table, steps
from training.dataset import SplitPlan, dataset_splits, load_lake, utc_timestamp
from training.registry import PromotionPolicy, client_for, load_champion
from training.retrain.job import TrainingJob, train_and_publish
from training.train import train_model

FIRST_MODEL_VERSION = "first-model"


def add_first_model_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "first-model",
        help="simulate history, train and save a local model (what `make demo` runs)",
        description="Simulate transaction history, train on it and save the bundle to a folder.",
    )
    parser.add_argument(
        "--out", type=Path, help="model folder (default FRAUDSTREAM_WORKER__MODEL_PATH)"
    )
    parser.add_argument(
        "--days",
        type=int,
        default=TRAINING.history_days,
        help=f"days of history (default {TRAINING.history_days})",
    )
    add_training_options(parser)
    parser.set_defaults(handler=first_model)


def add_train_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "train",
        help="train from the lake, log to MLflow, register and gate against the champion",
        description=(
            "Read the lake from the object store, train, log the run to MLflow, register a "
            "version and give it the champion alias only if it beats the current champion."
        ),
    )
    parser.add_argument("--as-of", help="cut-off, ISO-8601 (default now, UTC)")
    parser.add_argument(
        "--history-days",
        type=int,
        default=TRAINING.history_days,
        help=f"default {TRAINING.history_days}",
    )
    parser.add_argument(
        "--margin",
        type=float,
        default=TRAINING.promotion_margin,
        help="average-precision margin a challenger must beat the champion by "
        f"(default {TRAINING.promotion_margin})",
    )
    parser.add_argument(
        "--unlabelled-legit-after-days",
        type=float,
        help="treat unlabelled rows older than this as legit (default: leave them out)",
    )
    parser.add_argument("--export", type=Path, help="if promoted, also save the bundle here")
    add_training_options(parser)
    add_tuning_options(parser, "inside the train split only", "--gap-days")
    parser.set_defaults(handler=train_from_lake)


def first_model(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    from producers.simulator import SimulatorConfig, generate_history

    # Imported here: only this command needs the simulator, and `train`/`backtest` should not
    # fail or slow down because of it.
    out = args.out or settings.worker.model_path
    plan = SplitPlan(
        validation_days=args.validation_days, test_days=args.test_days, gap_days=args.gap_days
    )
    with steps(ui.err) as step:
        step(f"simulating {args.days} days of history")
        transactions, labels = generate_history(SimulatorConfig(seed=args.seed), args.days)
        step(f"features for {len(transactions):,} transactions")
        as_of = pd.Timestamp(transactions["timestamp"].max())
        splits = dataset_splits(transactions, labels, as_of, plan)
        step("training")
        bundle = train_model(
            splits,
            config=train_config(args),
            costs=cost_model(args),
            name=settings.mlflow.model_name,
            version=FIRST_MODEL_VERSION,
        )
        bundle.save(out)
    print_table(ui.out, model_table(bundle, splits, f"{bundle.metadata.name} saved to {out}"))
    return 0


def _as_of(text: str | None) -> pd.Timestamp:
    return utc_timestamp(text) if text else pd.Timestamp(datetime.now(UTC))


def _legit_after(days: float | None) -> timedelta | None:
    return None if days is None else timedelta(days=days)


def training_job(args: argparse.Namespace, settings: Settings) -> TrainingJob:
    plan = SplitPlan(
        validation_days=args.validation_days,
        test_days=args.test_days,
        gap_days=args.gap_days,
        unlabelled_legit_after=_legit_after(args.unlabelled_legit_after_days),
    )
    return TrainingJob(
        experiment=settings.mlflow.experiment,
        model_name=settings.mlflow.model_name,
        plan=plan,
        config=train_config(args),
        policy=PromotionPolicy(margin=args.margin, champion_alias=settings.mlflow.champion_alias),
        costs=cost_model(args),
        tune=tune_config(args, default_delay_days=args.gap_days),
    )


def train_from_lake(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    as_of = _as_of(args.as_of)
    job = training_job(args, settings)
    client = client_for(settings.mlflow.tracking_uri)
    with steps(ui.err) as step:
        step(f"reading the lake up to {as_of.isoformat()}")
        transactions, labels = load_lake(open_store(settings.store), as_of, args.history_days)
        step(f"features for {len(transactions):,} transactions")
        splits = dataset_splits(transactions, labels, as_of, job.plan)
        run = train_and_publish(client, job, splits, as_of, step=step)
        if run.result.promoted and args.export:
            step(f"exporting the new champion to {args.export}")
            load_champion(client, job.model_name, job.policy.champion_alias).save(args.export)
    title = f"{job.model_name} version {run.result.version}"
    print_table(ui.out, model_table(run.bundle, splits, title))
    ui.out.print(gate_line(run.result, job.policy))
    return 0
