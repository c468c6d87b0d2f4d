"""``fraudstream-train``: a first local model, training from the lake into MLflow, backtests, and
the two services of the retraining loop.

    fraudstream-train first-model             # simulate history, train, save .local/models/champion
    fraudstream-train train                   # lake -> train -> MLflow run, version, champion gate
    fraudstream-train backtest FILE.parquet   # rolling train / delay / test folds on any file
    fraudstream-train lake-writer             # archive transactions + labels topics into the lake
    fraudstream-train retrain-consumer        # retrain on each retrain-requests message, once

Settings (store, MLflow, model folder) come from FRAUDSTREAM_* variables, read once here.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from confluent_kafka import KafkaException
from mlflow.exceptions import MlflowException
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from stream_app.kafka import DeliveryError
from stream_app.model import ModelBundle, ModelLoadError
from stream_app.settings import Settings, TrainingSettings
from stream_app.store import open_store
from training.backtest import (
    EXCLUDE_RULES,
    BacktestConfig,
    BacktestReport,
    read_labelled_file,
    run_backtest,
)
from training.dataset import SplitPlan, Splits, dataset_splits, load_lake, utc_timestamp
from training.evaluate import CostModel
from training.hyperparams import INT_KEYS, describe, merged_train_config
from training.lake_writer import run_lake_writer
from training.registry import PromotionPolicy, PublishResult, client_for, load_champion
from training.retrain_consumer import TrainingJob, run_retrain_consumer, train_and_publish
from training.train import TrainConfig, train_model

logger = logging.getLogger(__name__)

FIRST_MODEL_VERSION = "first-model"
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


# ---------------------------------------------------------------------------------------------
# Arguments


# Every default below is read from the object it configures, never retyped: the training options
# from TrainingSettings (so `train` by hand trains like a retrain on request), the costs from
# CostModel, the backtest's from BacktestConfig. tests/unit/test_training_cli.py checks they match.
TRAINING = TrainingSettings()
COSTS = CostModel()
BACKTEST = BacktestConfig()


def _add_training_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training")
    group.add_argument(
        "--seed", type=int, default=TRAINING.seed, help=f"random seed (default {TRAINING.seed})"
    )
    group.add_argument(
        "--nthread",
        type=int,
        default=TRAINING.nthread,
        help=f"XGBoost threads (default {TRAINING.nthread})",
    )
    group.add_argument(
        "--rounds",
        type=int,
        default=TRAINING.num_boost_round,
        help=f"max boosting rounds (default {TRAINING.num_boost_round})",
    )
    group.add_argument(
        "--validation-days",
        type=float,
        default=TRAINING.validation_days,
        help=f"default {TRAINING.validation_days:g}",
    )
    group.add_argument(
        "--test-days",
        type=float,
        default=TRAINING.test_days,
        help=f"default {TRAINING.test_days:g}",
    )
    group.add_argument(
        "--gap-days",
        type=float,
        default=TRAINING.gap_days,
        help="days after each split for its labels to arrive; unused for training "
        f"(default {TRAINING.gap_days:g})",
    )
    group.add_argument(
        "--missed-fraud-cost",
        type=float,
        default=COSTS.missed_fraud,
        help=f"cost of a missed fraud ({COSTS.missed_fraud:g})",
    )
    group.add_argument(
        "--missed-fraud-from-amount",
        action="store_true",
        help="charge each missed fraud its own amount instead",
    )
    group.add_argument(
        "--false-review-cost",
        type=float,
        default=COSTS.false_review,
        help=f"default {COSTS.false_review:g}",
    )
    group.add_argument(
        "--false-block-cost",
        type=float,
        default=COSTS.false_block,
        help=f"default {COSTS.false_block:g}",
    )


def _first_model_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    _add_training_options(parser)
    parser.set_defaults(handler=first_model)


def _train_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    _add_training_options(parser)
    parser.set_defaults(handler=train_from_lake)


def _backtest_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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


def _add_idle_exit(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--exit-when-idle",
        type=float,
        metavar="SECONDS",
        help=f"exit once {what} for this long (default: run until Ctrl-C or SIGTERM)",
    )


def _lake_writer_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "lake-writer",
        help="archive the transactions and labels topics into the lake (a long-running service)",
        description=(
            "Consume the transactions and labels topics (consumer group "
            "FRAUDSTREAM_TRAINING__LAKE_WRITER_APP_ID) and write them to the object store as "
            "Parquet under lake/<table>/date=YYYY-MM-DD/, the layout `train` reads. Offsets are "
            "committed after the parts are written; a replay rewrites the same parts. Parts are "
            "written every FRAUDSTREAM_TRAINING__LAKE_FLUSH_ROWS rows per partition or "
            "FRAUDSTREAM_TRAINING__LAKE_FLUSH_SECONDS seconds, and on exit."
        ),
    )
    _add_idle_exit(parser, "no message has arrived")
    parser.set_defaults(handler=lake_writer)


def _retrain_consumer_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    parser = commands.add_parser(
        "retrain-consumer",
        help="retrain once per retrain-requests message, one at a time (a long-running service)",
        description=(
            "Consume retrain-requests (consumer group FRAUDSTREAM_TRAINING__APP_ID). Each request "
            "waits until FRAUDSTREAM_TRAINING__MIN_FRAUD_LABELS fraud labels of transactions since "
            "its drift window began are in the lake, then trains on the lake like `train`, gates "
            "against the champion, and announces a promotion on model-updates. Handled requests "
            "are recorded under training/requests/ in the object store: a repeat is skipped."
        ),
    )
    _add_idle_exit(parser, "no request is queued or running and none has arrived")
    parser.set_defaults(handler=retrain_consumer)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fraudstream-train", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--log-level", default="INFO", help="default INFO")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _first_model_parser(commands)
    _train_parser(commands)
    _backtest_parser(commands)
    _lake_writer_parser(commands)
    _retrain_consumer_parser(commands)
    return parser


def _train_config(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(seed=args.seed, nthread=args.nthread, num_boost_round=args.rounds)


def _costs(args: argparse.Namespace) -> CostModel:
    return CostModel(
        missed_fraud=args.missed_fraud_cost,
        missed_fraud_from_amount=args.missed_fraud_from_amount,
        false_review=args.false_review_cost,
        false_block=args.false_block_cost,
    )


# ---------------------------------------------------------------------------------------------
# Output


@dataclass(frozen=True)
class Ui:
    """Results go to stdout; logs and the progress spinner share stderr so they never interleave."""

    out: Console
    err: Console


@contextmanager
def _steps(console: Console) -> Iterator[Callable[[str], None]]:
    """A spinner with the current step's name, so a minute of work never looks hung."""
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("starting")

        def step(description: str) -> None:
            logger.info("step=%s", description)
            progress.update(task, description=description)

        yield step


def _model_table(bundle: ModelBundle, splits: Splits, title: str) -> Table:
    metrics = bundle.metadata.metrics
    table = Table(title=title)
    table.add_column("what")
    table.add_column("value", justify="right")
    for split in splits.all():
        frauds = int(split.target().sum())
        table.add_row(f"{split.name} rows / frauds", f"{split.rows:,} / {frauds:,}")
    for key in ("roc_auc", "average_precision", "recall_at_1pct_fpr", "card_precision_at_100"):
        table.add_row(f"test {key}", f"{metrics.get(key, float('nan')):.4f}")
    table.add_row("review / block threshold", _bands(bundle))
    table.add_row("best iteration", f"{metrics['best_iteration']:.0f}")
    return table


def _bands(bundle: ModelBundle) -> str:
    return f"{bundle.metadata.review_threshold:.4f} / {bundle.metadata.block_threshold:.4f}"


def backtest_tables(report: BacktestReport) -> tuple[Table, Table]:
    """Per-fold results, then mean and standard deviation over folds."""
    k = report.config.top_k
    folds = Table(title=f"backtest folds (exclude known: {report.config.exclude_known})")
    columns = (
        "fold",
        "train from",
        "test from",
        "rows kept",
        "frauds kept",
        "AUC",
        "AP",
        f"CP@{k}",
    )
    for column in columns:
        folds.add_column(column, justify="right", no_wrap=True)
    for fold in report.folds:
        folds.add_row(
            str(fold.fold),
            fold.train_start[:10],
            fold.test_start[:10],
            f"{fold.test_rows:,} of {fold.period_rows:,}",
            f"{fold.test_frauds:,} of {fold.period_frauds:,}",
            f"{fold.roc_auc:.4f}",
            f"{fold.average_precision:.4f}",
            f"{fold.card_precision_at_k:.4f}",
        )
    summary = Table(title=f"over {len(report.folds)} folds")
    for column in ("metric", "mean", "std"):
        summary.add_column(column, justify="right")
    names = {"roc_auc": "AUC", "average_precision": "AP", "card_precision_at_k": f"CP@{k}"}
    for key, value in report.summary().items():
        summary.add_row(names[key], f"{value['mean']:.4f}", f"{value['std']:.4f}")
    return folds, summary


# ---------------------------------------------------------------------------------------------
# Commands


def first_model(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    from producers.simulator import SimulatorConfig, generate_history

    # Imported here: only this command needs the simulator, and `train`/`backtest` should not
    # fail or slow down because of it.
    out = args.out or settings.worker.model_path
    plan = SplitPlan(
        validation_days=args.validation_days, test_days=args.test_days, gap_days=args.gap_days
    )
    with _steps(ui.err) as step:
        step(f"simulating {args.days} days of history")
        transactions, labels = generate_history(SimulatorConfig(seed=args.seed), args.days)
        step(f"features for {len(transactions):,} transactions")
        as_of = pd.Timestamp(transactions["timestamp"].max())
        splits = dataset_splits(transactions, labels, as_of, plan)
        step("training")
        bundle = train_model(
            splits,
            config=_train_config(args),
            costs=_costs(args),
            name=settings.mlflow.model_name,
            version=FIRST_MODEL_VERSION,
        )
        bundle.save(out)
    ui.out.print(_model_table(bundle, splits, f"{bundle.metadata.name} saved to {out}"))
    return 0


def _as_of(text: str | None) -> pd.Timestamp:
    return utc_timestamp(text) if text else pd.Timestamp(datetime.now(UTC))


def _legit_after(days: float | None) -> timedelta | None:
    return None if days is None else timedelta(days=days)


def _training_job(args: argparse.Namespace, settings: Settings) -> TrainingJob:
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
        config=_train_config(args),
        policy=PromotionPolicy(margin=args.margin, champion_alias=settings.mlflow.champion_alias),
        costs=_costs(args),
    )


def train_from_lake(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    as_of = _as_of(args.as_of)
    job = _training_job(args, settings)
    client = client_for(settings.mlflow.tracking_uri)
    with _steps(ui.err) as step:
        step(f"reading the lake up to {as_of.isoformat()}")
        transactions, labels = load_lake(open_store(settings.store), as_of, args.history_days)
        step(f"features for {len(transactions):,} transactions")
        splits = dataset_splits(transactions, labels, as_of, job.plan)
        run = train_and_publish(client, job, splits, as_of, step=step)
        if run.result.promoted and args.export:
            step(f"exporting the new champion to {args.export}")
            load_champion(client, job.model_name, job.policy.champion_alias).save(args.export)
    title = f"{job.model_name} version {run.result.version}"
    ui.out.print(_model_table(run.bundle, splits, title))
    ui.out.print(_gate_line(run.result, job.policy))
    return 0


def _gate_line(result: PublishResult, policy: PromotionPolicy) -> str:
    alias = policy.champion_alias if result.promoted else policy.challenger_alias
    if result.champion_version is None:
        incumbent = "no champion before"
    elif result.champion_score is None:
        incumbent = f"champion v{result.champion_version} could not score this holdout"
    else:
        incumbent = f"champion v{result.champion_version} AP {result.champion_score:.4f}"
    return (
        f"run {result.run_id}: version {result.version} is now '{alias}' "
        f"(AP {result.candidate_score:.4f}; {incumbent})"
    )


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
    with _steps(ui.err) as step:
        step(f"reading {args.file}")
        frame = read_labelled_file(args.file)
        step(f"features for {len(frame):,} rows, then {config.folds} folds")
        report = run_backtest(
            frame, config, on_fold=lambda fold: step(f"fold {fold.fold + 1}/{config.folds} done")
        )
    report.write_json(out)
    ui.out.print(f"booster: {describe(config.train)}")
    for table in backtest_tables(report):
        ui.out.print(table)
    ui.out.print(f"report: {out}")
    if args.predictions:
        report.write_predictions(args.predictions)
        ui.out.print(f"predictions: {args.predictions} ({len(report.predictions):,} rows)")
    return 0


def _stop_on_signals() -> threading.Event:
    """Ctrl-C and SIGTERM ask a service to finish its current work and exit cleanly."""
    stop = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: stop.set())
    return stop


def lake_writer(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    stop = _stop_on_signals()
    store = open_store(settings.store)
    logger.info("archiving into %s", store.uri())
    stats = run_lake_writer(settings.kafka, settings.training, store, stop, args.exit_when_idle)
    ui.out.print(
        f"archived {stats.rows:,} rows in {stats.parts:,} parts to {store.uri()}; "
        f"{stats.invalid:,} invalid messages skipped"
    )
    return 0


def retrain_consumer(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    stats = run_retrain_consumer(settings, _stop_on_signals(), args.exit_when_idle)
    ui.out.print(
        f"handled {stats.handled} requests ({stats.duplicates} repeats skipped); "
        f"{stats.invalid} invalid messages skipped"
    )
    return 0


# ---------------------------------------------------------------------------------------------
# Entry point


def _configure_logging(level: str, console: Console) -> None:
    handler = RichHandler(console=console, show_path=False, rich_tracebacks=False)
    logging.basicConfig(level=level.upper(), format="%(name)s %(message)s", handlers=[handler])


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Our own spinner shows progress; MLflow's per-file tqdm bars would only garble it.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    ui = Ui(out=Console(), err=Console(stderr=True))
    _configure_logging(args.log_level, ui.err)
    settings = Settings()
    try:
        code: int = args.handler(args, settings, ui)
    except (
        ValueError,
        OSError,
        ModelLoadError,
        MlflowException,
        KafkaException,
        DeliveryError,
    ) as error:
        ui.err.print(f"[red]fraudstream-train {args.command}: {error}[/red]")
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
