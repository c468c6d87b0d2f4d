"""``fraudstream-generate stream``: live transactions and delayed labels to Kafka at a rate.

Two clocks, one send loop: the simulated clock (the default: a warm-up of past days, then the
live part paced to end at about now, see :mod:`producers.simulator.live_stream`) or the wall
clock (every transaction stamped at emission). Both become a plan of events sent by :func:`_send`.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from rich.console import Console
from rich.progress import (
    Progress,
)

from producers.cli.options import (
    STREAM_LABEL_DELAYS,
    add_population_options,
    midnight,
    non_negative_float,
    non_negative_int,
    parse_delay_range,
    parse_duration,
    progress_bar,
    say,
    seconds,
    simulator_config,
)
from producers.simulator import (
    DriftSchedule,
    RealtimePacing,
    StreamSchedule,
    iter_events,
    stream_events,
    stream_schedule,
)
from producers.sinks import KafkaSink
from stream_app.schemas import Label, Transaction
from stream_app.settings import Settings

logger = logging.getLogger(__name__)


def add_stream_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
    add_population_options(stream, wall_clock=True)
    stream.add_argument(
        "--clock",
        choices=("simulated", "wall"),
        default="simulated",
        help="simulated: simulated timestamps, paced (default); wall: wall-clock timestamps",
    )
    stream.add_argument(
        "--rate",
        type=non_negative_float,
        default=100.0,
        help="live transactions per wall-clock second, labels not counted; 0 = as fast as "
        "possible (default 100)",
    )
    stream.add_argument("--count", type=non_negative_int, help="stop after N live transactions")
    stream.add_argument(
        "--duration",
        type=parse_duration,
        help="stop after this long, e.g. 10m (simulated clock: sends rate x duration live "
        "transactions, so a slow broker makes the run longer)",
    )
    stream.add_argument(
        "--warmup-days",
        type=non_negative_float,
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
    if args.label_delay is None and args.clock == "wall":
        args.label_delay = parse_delay_range(STREAM_LABEL_DELAYS["wall"])
    now = datetime.now(UTC)
    plan = _wall_plan(args, now) if args.clock == "wall" else _simulated_plan(args, now)
    with (
        KafkaSink(settings.kafka) as sink,
        progress_bar(console, total=plan.total is not None) as bar,
    ):
        sent = _send(plan, sink, bar)
    topics = settings.kafka.topics
    say(f"{_stream_summary(plan, sink, sent)}; delivered to {topics.transactions}/{topics.labels}")
    return 130 if sent.interrupted else 0


def _wall_plan(args: argparse.Namespace, now: datetime) -> _StreamPlan:
    pacing = RealtimePacing(rate=args.rate or None, duration_s=seconds(args.duration))
    events = iter_events(
        simulator_config(args, midnight(now)),
        max_transactions=args.count,
        pacing=pacing,
        drain_labels=args.drain_labels,
    )
    return _StreamPlan("wall", events, 0, args.count)


def _simulated_plan(args: argparse.Namespace, now: datetime) -> _StreamPlan:
    plain = simulator_config(args, midnight(now)).model_copy(update={"drift": DriftSchedule()})
    schedule = stream_schedule(
        plain,
        warmup_days=args.warmup_days,
        rate=args.rate or None,
        duration_s=seconds(args.duration),
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
