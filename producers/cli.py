"""``fraudstream-generate``: simulated transactions to Kafka (live) or to the lake (history).

Examples::

    fraudstream-generate history --days 60 --seed 7                # lake under the store URI
    fraudstream-generate history --days 30 --parquet backtest.parquet --no-lake
    fraudstream-generate stream --rate 200 --duration 10m --drift-at-count 50000

``stream`` runs in simulated time by default: a customer pays about once a simulated day, as in
the history the model was trained on, and the timeline is anchored so that it ends now. A
warm-up of past days goes out first at full speed, so the worker starts with customer history;
then the live part follows at ``--rate`` transactions per wall-clock second.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from botocore.exceptions import BotoCoreError, ClientError
from confluent_kafka import KafkaException
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from producers.simulator import (
    DayBatch,
    DriftSchedule,
    LabelPolicy,
    RealtimePacing,
    Simulator,
    SimulatorConfig,
    StreamSchedule,
    empty_transactions,
    iter_events,
    stream_events,
    stream_schedule,
)
from producers.sinks import KafkaSink, LakeSink, write_labelled_file
from stream_app.kafka import DeliveryError
from stream_app.schemas import Label, Transaction
from stream_app.settings import Settings
from stream_app.store import open_store

logger = logging.getLogger(__name__)

PROG = "fraudstream-generate"
# Failures of the environment or the input, reported in one line; anything else is a bug and
# keeps its traceback. ValueError covers pydantic's ValidationError for bad option values.
_EXPECTED_FAILURES = (
    DeliveryError,
    KafkaException,
    OSError,
    ValueError,
    BotoCoreError,
    ClientError,
)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# Label delays by clock: realistic chargeback delays in simulated time (the history's), a short
# range in wall-clock time so that labels show up during a demo.
_STREAM_LABEL_DELAYS = {"simulated": "1d-10d", "wall": "30s-5m"}


def parse_duration(text: str) -> timedelta:
    """``90``, ``90s``, ``5m``, ``2h``, ``1.5d`` or ``250ms`` (a bare number is seconds)."""
    match = _DURATION.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (examples: 30s, 5m, 2d)")
    return timedelta(seconds=float(match[1]) * _UNITS[match[2] or "s"])


def parse_delay_range(text: str) -> tuple[timedelta, timedelta]:
    """``MIN-MAX`` such as ``1d-10d`` or ``30s-5m``; a single duration means a fixed delay."""
    low, _, high = text.partition("-")
    delay_min = parse_duration(low)
    delay_max = parse_duration(high) if high else delay_min
    if delay_max < delay_min:
        raise argparse.ArgumentTypeError(f"delay range {text!r} ends before it starts")
    return delay_min, delay_max


def _parse_start(text: str) -> datetime:
    """An ISO date or date-time; without an offset it is UTC."""
    try:
        moment = datetime.fromisoformat(text)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (example: 2025-01-01)") from error


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"must be >= 0: {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Generate realistic card transactions with labelled fraud scenarios, "
        "delayed labels and scheduled drift. Kafka and store locations come from the "
        "FRAUDSTREAM_* environment (see the README).",
        epilog="examples:\n"
        "  fraudstream-generate history --days 60 --seed 7\n"
        "  fraudstream-generate history --days 30 --no-lake --parquet backtest.parquet\n"
        "  fraudstream-generate stream --rate 200 --duration 10m --drift-at-count 50000",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    history = commands.add_parser(
        "history",
        help="simulate days of history into the lake and/or one labelled file",
        description="Simulate DAYS of history as fast as possible. The lake gets transactions "
        "(no ground truth) and the labels published by the end of the history; --csv/--parquet "
        "write one file with the transactions plus is_fraud and scenario for backtests.",
    )
    _add_population_options(history, default_delay="1d-10d")
    history.add_argument(
        "--days", type=_non_negative_int, default=60, help="simulated days (default 60)"
    )
    history.add_argument(
        "--start",
        type=_parse_start,
        default=datetime(2025, 1, 1, tzinfo=UTC),
        help="first simulated day, UTC (default 2025-01-01)",
    )
    history.add_argument(
        "--drift-at", type=_parse_start, help="apply the standard drift at this UTC date/time"
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

    _add_stream_command(commands)
    return parser


def _add_stream_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    stream = commands.add_parser(
        "stream",
        help="stream live transactions and labels to Kafka at a target rate",
        description="Produce transactions (key customer_id) and delayed labels (key "
        "transaction_id) to Kafka. In simulated time (the default) customers pay about once a "
        "day as in the history: --warmup-days of past days go out at full speed first, then "
        "the live part at --rate, timed so that its last transaction is stamped about now "
        "(without --count or --duration it catches up with now and then follows the wall "
        "clock, at the population's own rate). With --clock wall every transaction is stamped "
        "with the wall clock instead. Runs until --count or --duration is reached, or Ctrl-C.",
    )
    _add_population_options(stream, default_delay=None)
    stream.add_argument(
        "--clock",
        choices=("simulated", "wall"),
        default="simulated",
        help="simulated: simulated timestamps, paced (default); wall: wall-clock timestamps",
    )
    stream.add_argument(
        "--rate",
        type=_non_negative_float,
        default=100.0,
        help="live transactions per wall-clock second, labels not counted; 0 = as fast as "
        "possible (default 100)",
    )
    stream.add_argument("--count", type=_non_negative_int, help="stop after N live transactions")
    stream.add_argument(
        "--duration",
        type=parse_duration,
        help="stop after this long, e.g. 10m (simulated clock: sends rate x duration live "
        "transactions, so a slow broker makes the run longer)",
    )
    stream.add_argument(
        "--warmup-days",
        type=_non_negative_float,
        default=7.0,
        metavar="D",
        help="simulated clock: send at least D days of history unthrottled before the live part, "
        "so the worker knows the customers (default 7; ignored with --clock wall)",
    )
    stream.add_argument(
        "--drain-labels",
        action="store_true",
        help="after the last transaction send every outstanding label (wall clock: waiting for "
        "each; simulated clock: at once, stamped up to the maximum label delay ahead)",
    )
    stream.set_defaults(handler=run_stream)


def _add_population_options(parser: argparse.ArgumentParser, default_delay: str | None) -> None:
    parser.add_argument(
        "--seed", type=_non_negative_int, default=42, help="random seed (default 42)"
    )
    parser.add_argument("--customers", type=int, default=5000, help="customers (default 5000)")
    parser.add_argument("--merchants", type=int, default=2000, help="merchants (default 2000)")
    parser.add_argument(
        "--fraud-scale",
        type=float,
        default=1.0,
        help="multiply every fraud scenario's rate (default 1.0, about 0.7 %% of transactions)",
    )
    delays = _STREAM_LABEL_DELAYS
    parser.add_argument(
        "--label-delay",
        type=parse_delay_range,
        default=parse_delay_range(default_delay) if default_delay else None,
        metavar="MIN-MAX",
        help="label delay range, e.g. 1d-10d (default "
        + (default_delay or f"{delays['simulated']}, or {delays['wall']} with --clock wall")
        + ")",
    )
    parser.add_argument(
        "--no-legit-labels",
        action="store_true",
        help="publish labels for fraud only (default: is_fraud=false labels for the rest too)",
    )
    parser.add_argument(
        "--drift-at-count",
        type=int,
        metavar="N",
        help="apply the standard drift (pricier baskets, new categories, crypto cash-out "
        "fraud) from about the N-th transaction (stream, simulated clock: N-th live one, "
        "after the warm-up)",
    )


def simulator_config(args: argparse.Namespace, start: datetime) -> SimulatorConfig:
    delay_min, delay_max = args.label_delay
    drift_at = getattr(args, "drift_at", None)
    drift = DriftSchedule()
    if drift_at is not None or args.drift_at_count is not None:
        drift = DriftSchedule.standard(at=drift_at, at_transaction=args.drift_at_count)
    return SimulatorConfig(
        seed=args.seed,
        n_customers=args.customers,
        n_merchants=args.merchants,
        start=start,
        fraud_rates=SimulatorConfig().fraud_rates.scaled(args.fraud_scale),
        labels=LabelPolicy(
            delay_min=delay_min, delay_max=delay_max, emit_legit=not args.no_legit_labels
        ),
        drift=drift,
    )


def _progress(console: Console, *, total: bool) -> Progress:
    columns: list[ProgressColumn] = [TextColumn("{task.description}")]
    columns += [BarColumn(), MofNCompleteColumn()] if total else [TextColumn("{task.completed:,}")]
    return Progress(*columns, TimeElapsedColumn(), console=console, transient=True)


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
    with _progress(console, total=True) as progress:
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
    _say(
        f"history: {tally.transactions:,} transactions ({_share(tally.fraud, tally.transactions)} "
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


@dataclass(frozen=True)
class _StreamPlan:
    """What ``stream`` sends: the events, and how many of their transactions are warm-up."""

    clock: str
    events: Iterator[Transaction | Label]
    warmup: int
    total: int | None  # every transaction, for the progress bar; None when unbounded


@dataclass
class _Sent:
    """Timings and timestamps of a stream as it goes, for the progress bar and the summary."""

    started: float
    warmup_done: float | None = None
    last_timestamp: datetime | None = None
    interrupted: bool = False


def run_stream(args: argparse.Namespace, settings: Settings, console: Console) -> int:
    if args.label_delay is None:
        args.label_delay = parse_delay_range(_STREAM_LABEL_DELAYS[args.clock])
    now = datetime.now(UTC)
    plan = _wall_plan(args, now) if args.clock == "wall" else _simulated_plan(args, now)
    with KafkaSink(settings.kafka) as sink, _progress(console, total=plan.total is not None) as bar:
        sent = _send(plan, sink, bar)
    topics = settings.kafka.topics
    _say(f"{_stream_summary(plan, sink, sent)}; delivered to {topics.transactions}/{topics.labels}")
    return 130 if sent.interrupted else 0


def _wall_plan(args: argparse.Namespace, now: datetime) -> _StreamPlan:
    pacing = RealtimePacing(rate=args.rate or None, duration_s=_seconds(args.duration))
    events = iter_events(
        simulator_config(args, _midnight(now)),
        max_transactions=args.count,
        pacing=pacing,
        drain_labels=args.drain_labels,
    )
    return _StreamPlan("wall", events, 0, args.count)


def _simulated_plan(args: argparse.Namespace, now: datetime) -> _StreamPlan:
    plain = simulator_config(args, _midnight(now)).model_copy(update={"drift": DriftSchedule()})
    schedule = stream_schedule(
        plain,
        warmup_days=args.warmup_days,
        rate=args.rate or None,
        duration_s=_seconds(args.duration),
        count=args.count,
        now=now,
    )
    _log_schedule(schedule)
    drift = DriftSchedule()
    if args.drift_at_count is not None:
        # Users count live transactions; the simulator counts the whole run.
        drift = DriftSchedule.standard(at_transaction=schedule.run_index(args.drift_at_count))
    config = plain.model_copy(update={"drift": drift})
    events = stream_events(config, schedule, rate=args.rate or None, drain_labels=args.drain_labels)
    return _StreamPlan(
        "simulated", events, schedule.warmup_transactions, schedule.total_transactions
    )


def _log_schedule(schedule: StreamSchedule) -> None:
    logger.info(
        "simulated stream start=%s warmup_transactions=%d live_transactions=%s live_from=%s "
        "live_until=%s",
        schedule.start.isoformat(),
        schedule.warmup_transactions,
        schedule.live_transactions,
        schedule.live_from.isoformat(),
        schedule.live_until.isoformat() if schedule.live_until else None,
    )


def _send(plan: _StreamPlan, sink: KafkaSink, bar: Progress) -> _Sent:
    task = bar.add_task(_phase(plan, sink.topics.transactions, live=False), total=plan.total)
    sent = _Sent(time.perf_counter())
    if plan.warmup == 0:
        sent.warmup_done = sent.started
        bar.update(task, description=_phase(plan, sink.topics.transactions, live=True))
    try:
        for event in plan.events:
            sink.send(event)
            if isinstance(event, Transaction):
                sent.last_timestamp = event.timestamp
                if sink.transactions_sent == plan.warmup:
                    sent.warmup_done = time.perf_counter()
                    bar.update(task, description=_phase(plan, sink.topics.transactions, live=True))
            if sink.transactions_sent % 100 == 0:
                bar.update(task, completed=sink.transactions_sent)
    except KeyboardInterrupt:
        sent.interrupted = True  # stop producing; the sink still flushes what was sent
    return sent


def _phase(plan: _StreamPlan, topic: str, *, live: bool) -> str:
    if live:
        return f"producing to {topic}"
    return f"warming up {topic} with {plan.warmup:,} past transactions"


def _stream_summary(plan: _StreamPlan, sink: KafkaSink, sent: _Sent) -> str:
    finished = time.perf_counter()
    live_started = sent.warmup_done if sent.warmup_done is not None else finished
    warm = min(sink.transactions_sent, plan.warmup)
    live = sink.transactions_sent - warm
    live_s = finished - live_started
    line = (
        f"stream ({plan.clock} clock{', interrupted' if sent.interrupted else ''}): "
        f"{warm:,} warm-up transactions in {live_started - sent.started:.1f} s, then {live:,} "
        f"live in {live_s:.1f} s ({live / max(live_s, 1e-9):,.1f} tx/s)"
    )
    if sent.last_timestamp is not None:
        lag = (datetime.now(UTC) - sent.last_timestamp).total_seconds()
        line += (
            f", the last stamped {sent.last_timestamp.isoformat()} "
            f"({abs(lag):,.0f} s {'before' if lag >= 0 else 'after'} now)"
        )
    return f"{line}; {sink.labels_sent:,} labels ({sink.fraud_labels_sent:,} fraud)"


def _midnight(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _seconds(duration: timedelta | None) -> float | None:
    return None if duration is None else duration.total_seconds()


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.2f} %" if whole else "0 %"


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if logging.getLogger().level > logging.DEBUG:
        # librdkafka logs every reconnect attempt; failures reach the user through DeliveryError.
        logging.getLogger("producers.sinks.librdkafka").setLevel(logging.CRITICAL)
    console = Console(stderr=True)
    try:
        settings = Settings()
        code: int = args.handler(args, settings, console)
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 130
    except _EXPECTED_FAILURES as error:
        logger.debug("failed", exc_info=True)  # the traceback, for --log-level DEBUG
        detail = "; ".join(line.strip() for line in str(error).splitlines() if line.strip())
        sys.stderr.write(f"{PROG}: error: {type(error).__name__}: {detail}\n")
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
