"""The backtest's tables reach a pipe whole: no column cut to 80 characters with '…'."""

from __future__ import annotations

import io
from dataclasses import replace

import pandas as pd
from rich.console import Console

from training.backtest import BacktestConfig, BacktestReport, FoldResult
from training.cli.output import backtest_tables, feature_lines, print_table


def _report() -> BacktestReport:
    fold = FoldResult(
        fold=0,
        train_start="2025-01-01T00:00:00+00:00",
        test_start="2025-01-15T00:00:00+00:00",
        test_end="2025-01-22T00:00:00+00:00",
        train_rows=1_234_567,
        train_frauds=12_345,
        period_rows=1_234_567,
        period_frauds=12_345,
        test_rows=1_234_000,
        test_frauds=12_000,
        known_compromised_removed=567,
        best_iteration=300,
        roc_auc=0.9123,
        average_precision=0.4567,
        card_precision_at_k=0.2345,
        seconds=1.0,
    )
    return BacktestReport(BacktestConfig(), [fold], 0.0, pd.DataFrame())


def _pipe() -> tuple[Console, io.StringIO]:
    """A console on a file, as the CLI's stdout is when redirected: not a terminal, 80 wide."""
    buffer = io.StringIO()
    return Console(file=buffer, width=80), buffer


def test_the_fold_table_is_wider_than_80_and_plain_print_cuts_it() -> None:
    folds, _ = backtest_tables(_report())
    console, buffer = _pipe()
    assert not console.is_terminal
    console.print(folds)
    assert "…" in buffer.getvalue()  # the bug this module's print_table exists for


def test_print_table_shows_every_column_and_cell_whole() -> None:
    folds, summary = backtest_tables(_report())
    console, buffer = _pipe()
    for table in (folds, summary):
        print_table(console, table)
    text = buffer.getvalue()
    assert "…" not in text
    for cell in (
        "rows kept",
        "frauds kept",
        "CP@100",
        "1,234,000 of 1,234,567",
        "12,000 of 12,345",
    ):
        assert cell in text
    assert "0.9123" in text and "0.4567" in text and "0.2345" in text
    assert console.width == 80  # restored for whatever is printed next
    assert max(len(line) for line in text.splitlines()) > 80


def test_the_report_lists_constant_and_dropped_features() -> None:
    report = _report()
    first = replace(report.folds[0], constant_features=("amount", "hour_of_day"))
    second = replace(first, fold=1, constant_features=("hour_of_day",))
    config = replace(report.config, drop_features=("is_weekend",), drop_constant=True)
    lines = feature_lines(replace(report, config=config, folds=[first, second]))
    assert lines == [
        "constant in every fold: hour_of_day",
        "constant in some folds only: amount",
        "dropped: is_weekend",
        "dropped too: each fold's constant features (--drop-constant)",
    ]
    assert feature_lines(report) == ["constant in every fold: none"]
    folds, _ = backtest_tables(replace(report, folds=[first]))
    console, buffer = _pipe()
    print_table(console, folds)
    assert "features" in buffer.getvalue() and "constant" in buffer.getvalue()
