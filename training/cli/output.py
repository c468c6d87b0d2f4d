"""What the commands print: results on stdout, logs and a progress spinner on stderr.

Kept apart from the commands so that a command reads as its steps, and so that the tables
(a model's metrics, a backtest's folds) are one function each whatever command prints them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from rich.console import Console
from rich.measure import Measurement
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from stream_app.features import FEATURE_NAMES
from stream_app.model import ModelBundle
from training.backtest import BacktestReport
from training.dataset import Splits
from training.registry import PromotionPolicy, PublishResult
from training.tuning import SEARCH_SPACE

logger = logging.getLogger(__name__)
# Wide enough for any table of ours: only the measured natural width is used, never this.
_UNBOUNDED_WIDTH = 10_000


@dataclass(frozen=True)
class Ui:
    """Results go to stdout; logs and the progress spinner share stderr so they never interleave."""

    out: Console
    err: Console


@contextmanager
def steps(console: Console) -> Iterator[Callable[[str], None]]:
    """A spinner with the current step's name, so a minute of work never looks hung."""
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("starting")

        def step(description: str) -> None:
            logger.info("step=%s", description)
            progress.update(task, description=description)

        yield step


def print_table(console: Console, table: Table) -> None:
    """Print ``table`` with every column whole.

    A console that is not a terminal (a pipe, a file, CI logs) is 80 columns wide for rich,
    which then cuts cells to fit with '…'; a pipe has no width to respect, so it gets the
    table's natural width. A terminal keeps its own width (rich wraps to fit the window).
    """
    if console.is_terminal:
        console.print(table)
        return
    options = console.options.update_width(_UNBOUNDED_WIDTH)
    needed = Measurement.get(console, options, table).maximum
    width = console.width
    console.width = max(width, needed)
    try:
        console.print(table)
    finally:
        console.width = width


def model_table(bundle: ModelBundle, splits: Splits, title: str) -> Table:
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
        "features",
        "constant",
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
            str(len(FEATURE_NAMES) - len(fold.dropped_features)),
            str(len(fold.constant_features)),
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


def tuning_table(report: BacktestReport) -> Table:
    """Per fold: the search's best validation AP and the parameters it chose."""
    table = Table(title="tuning (chosen per fold on its train days; AP on their last days)")
    for column in ("fold", "validation AP", *SEARCH_SPACE):
        table.add_column(column, justify="right", no_wrap=True)
    for fold in report.folds:
        if fold.tuning is None:
            continue
        chosen = fold.tuning.chosen
        table.add_row(
            str(fold.fold),
            f"{fold.tuning.best_average_precision:.4f}",
            *(f"{chosen[name]:g}" for name in SEARCH_SPACE),
        )
    return table


def feature_lines(report: BacktestReport) -> list[str]:
    """The constant features (one value on every train row: no signal) and the dropped ones."""
    constant = report.constant_features()
    sometimes = [name for name in constant["any_fold"] if name not in constant["every_fold"]]
    lines = [f"constant in every fold: {_listed(constant['every_fold'])}"]
    if sometimes:
        lines.append(f"constant in some folds only: {_listed(sometimes)}")
    if report.config.drop_features:
        lines.append(f"dropped: {_listed(report.config.drop_features)}")
    if report.config.drop_constant:
        lines.append("dropped too: each fold's constant features (--drop-constant)")
    return lines


def _listed(names: Sequence[str]) -> str:
    return ", ".join(names) if names else "none"


def gate_line(result: PublishResult, policy: PromotionPolicy) -> str:
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
