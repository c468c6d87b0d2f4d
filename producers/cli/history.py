"""``fraudstream-generate history``: simulated days into the lake and/or one labelled file.

History runs as fast as the simulator goes (no Kafka): the lake gets what the lake writer would
have archived, the optional file adds the ground truth for backtests.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from rich.console import Console

from producers.cli.options import (
    SIMULATOR_DEFAULTS,
    add_population_options,
    non_negative_int,
    parse_start,
    progress_bar,
    say,
    share,
    simulator_config,
)
from producers.simulator import (
    DayBatch,
    Simulator,
    empty_transactions,
)
from producers.sinks import LakeSink, write_labelled_file
from stream_app.settings import Settings
from stream_app.store import open_store


def add_history_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    history = commands.add_parser(
        "history",
        help="simulate days of history into the lake and/or one labelled file",
        description="Simulate DAYS of history as fast as possible. The lake gets transactions "
        "(no ground truth) and the labels published by the end of the history; --csv/--parquet "
        "write one file with the transactions plus is_fraud and scenario for backtests.",
    )
    add_population_options(history, wall_clock=False)
    history.add_argument(
        "--days", type=non_negative_int, default=60, help="simulated days (default 60)"
    )
    history.add_argument(
        "--start",
        type=parse_start,
        default=SIMULATOR_DEFAULTS.start,
        help=f"first simulated day, UTC (default {SIMULATOR_DEFAULTS.start:%Y-%m-%d})",
    )
    history.add_argument(
        "--drift-at", type=parse_start, help="apply the standard drift at this UTC date/time"
    )
    history.add_argument(
        "--out", help="store URI: a folder or s3://bucket/prefix (default FRAUDSTREAM_STORE__URI)"
    )
    history.add_argument("--no-lake", action="store_true", help="do not write the lake")
    files = history.add_mutually_exclusive_group()
    files.add_argument("--csv", type=Path, metavar="FILE", help="also write one labelled CSV")
    files.add_argument(
        "--parquet", type=Path, metavar="FILE", help="also write one labelled Parquet"
    )
    history.set_defaults(handler=run_history)


@dataclass
class _Tally:
    transactions: int = 0
    fraud: int = 0
    labels: int = 0

    def add(self, batch: DayBatch) -> None:
        self.transactions += len(batch.transactions)
        self.fraud += int(batch.transactions["is_fraud"].sum())
        self.labels += len(batch.released_labels)


def run_history(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    files = [path for path in (args.csv, args.parquet) if path is not None]
    if args.no_lake and not files:
        raise ValueError("--no-lake without --csv or --parquet would write nothing")
    store_settings = settings.store
    if args.out:
        store_settings = store_settings.model_copy(update={"uri": args.out})
    lake = None if args.no_lake else LakeSink(open_store(store_settings), f"part-seed{args.seed}")
    frames: list[pd.DataFrame] = []
    tally = _Tally()
    started = time.perf_counter()
    with progress_bar(console, total=True) as progress:
        task = progress.add_task("simulating days", total=args.days)
        for batch in Simulator(simulator_config(args, args.start)).iter_days(args.days):
            if lake is not None:
                lake.write_day(batch)
            if files:
                frames.append(batch.transactions)
            tally.add(batch)
            progress.advance(task)
    _write_files(args, frames)
    elapsed = time.perf_counter() - started
    where = [lake.store.uri("lake")] if lake is not None else []
    say(
        f"history: {tally.transactions:,} transactions ({share(tally.fraud, tally.transactions)} "
        f"fraud) and {tally.labels:,} labels over {args.days} days in {elapsed:.1f} s "
        f"({tally.transactions / max(elapsed, 1e-9):,.0f} tx/s) -> "
        + ", ".join([*where, *map(str, files)])
    )
    return 0


def _write_files(args: argparse.Namespace, frames: list[pd.DataFrame]) -> None:
    if args.csv is None and args.parquet is None:
        return
    frame = pd.concat(frames, ignore_index=True) if frames else empty_transactions()
    if args.csv is not None:
        write_labelled_file(frame, args.csv, "csv")
    if args.parquet is not None:
        write_labelled_file(frame, args.parquet, "parquet")
