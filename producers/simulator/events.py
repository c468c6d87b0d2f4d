"""Events in publication order: transactions and labels, each label at its labeled_at.

Two ways to stamp them: simulated time (as fast as the consumer takes them, for history, sinks
and the simulated-time stream of :mod:`.live_stream`), or :class:`RealtimePacing`, which stamps
events with the wall clock at emission and holds each label back for its delay.

Legitimate transactions get labels too (``emit_legit``, on by default) with the *same* delay
distribution as fraud: if the two differed, the mere arrival time of a label would reveal the
class to anything that trains on "what is labelled so far".
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from producers.simulator.config import SimulatorConfig
from producers.simulator.days import DayBatch, Simulator
from producers.simulator.frames import (
    LABEL_FIELDS,
    as_labels,
    as_transactions,
    concat_frames,
    empty_labels,
    epoch_ms,
    frame_records,
    from_ms,
)
from stream_app.schemas import Label, Transaction


class Clock(Protocol):
    """Wall clock for real-time mode; tests pass a fake one so nothing really sleeps."""

    def time(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass(frozen=True)
class RealtimePacing:
    """Live mode: timestamps are the wall clock at emission, ``rate`` transactions per second.

    ``rate=None`` emits as fast as the consumer takes events; ``duration_s`` stops transactions
    after that many seconds. Label delays from the config are wall-clock delays here, so set
    them to seconds or minutes for a live demo.
    """

    rate: float | None = None
    duration_s: float | None = None
    clock: Clock = field(default_factory=SystemClock)

    def __post_init__(self) -> None:
        if self.rate is not None and self.rate <= 0:
            raise ValueError("rate must be positive (or None for unthrottled)")
        if self.duration_s is not None and self.duration_s < 0:
            raise ValueError("duration_s must be >= 0")


def iter_events(
    config: SimulatorConfig,
    *,
    days: int | None = None,
    max_transactions: int | None = None,
    pacing: RealtimePacing | None = None,
    drain_labels: bool = False,
) -> Iterator[Transaction | Label]:
    """Transactions and labels in publication order, each label at its labeled_at.

    Without ``pacing`` the events carry simulated time and come as fast as they are consumed; with
    it, see :class:`RealtimePacing`. The stream ends after ``days`` simulated days or
    ``max_transactions`` transactions (never, if both are None). ``drain_labels`` then also emits
    every label still outstanding for the transactions sent (in real time, waiting for them).
    """
    if max_transactions is not None and max_transactions < 0:
        raise ValueError("max_transactions must be >= 0")
    simulator = Simulator(config)
    if pacing is None:
        return _simulated_events(simulator, days, max_transactions, drain_labels)
    return _realtime_events(simulator, days, max_transactions, pacing, drain_labels)


def _simulated_events(
    simulator: Simulator, days: int | None, limit: int | None, drain: bool
) -> Iterator[Transaction | Label]:
    sent = 0
    unsent_ids: set[str] = set()
    leftover = empty_labels()
    for batch in simulator.iter_days(days):
        transactions, labels = batch.transactions, batch.released_labels
        if limit is not None and sent + len(transactions) >= limit:
            take = limit - sent
            unsent_ids = set(transactions["transaction_id"].iloc[take:])
            transactions = transactions.iloc[:take]
            cutoff = transactions["timestamp"].iloc[-1] if take else batch.day_start
            published = (labels["labeled_at"] <= cutoff) & ~labels["transaction_id"].isin(
                unsent_ids
            )
            leftover, labels = labels[~published], labels[published]
        yield from _merge_by_time(transactions, labels)
        sent += len(transactions)
        if limit is not None and sent >= limit:
            break
    if drain:
        outstanding = concat_frames([leftover, simulator.pending_labels], empty_labels())
        outstanding = outstanding[~outstanding["transaction_id"].isin(unsent_ids)]
        yield from as_labels(outstanding.sort_values("labeled_at", kind="stable"))


def _merge_by_time(
    transactions: pd.DataFrame, labels: pd.DataFrame
) -> Iterator[Transaction | Label]:
    """Both kinds in time order; a transaction before a label of the same millisecond."""
    times = np.concatenate((epoch_ms(transactions["timestamp"]), epoch_ms(labels["labeled_at"])))
    kinds = np.concatenate((np.zeros(len(transactions)), np.ones(len(labels))))
    transaction_models = as_transactions(transactions)
    label_models = as_labels(labels)
    for position in np.lexsort((kinds, times)):
        yield next(transaction_models) if kinds[position] == 0 else next(label_models)


def _realtime_events(
    simulator: Simulator,
    days: int | None,
    limit: int | None,
    pacing: RealtimePacing,
    drain: bool,
) -> Iterator[Transaction | Label]:
    clock = pacing.clock
    waiting: list[tuple[int, int, dict[str, Any]]] = []  # (due ms, sequence, label fields)
    started, sent = clock.time(), 0
    deadline = started + pacing.duration_s if pacing.duration_s is not None else float("inf")

    def finished() -> bool:
        return (limit is not None and sent >= limit) or clock.time() >= deadline

    for batch in simulator.iter_days(days):
        delays = _label_delays(batch)
        for position, transaction in enumerate(as_transactions(batch.transactions)):
            if pacing.rate is not None:
                _sleep_until(clock, min(started + sent / pacing.rate, deadline))
            if finished():
                break
            now_ms = int(clock.time() * 1000)
            yield from _due_labels(waiting, now_ms)
            yield transaction.model_copy(update={"timestamp": from_ms(now_ms)})
            if position in delays:
                delay_ms, fields = delays[position]
                heapq.heappush(waiting, (now_ms + delay_ms, sent, fields))
            sent += 1
        if finished():
            break
    while drain and waiting:
        _sleep_until(clock, waiting[0][0] / 1000)
        yield from _due_labels(waiting, max(int(clock.time() * 1000), waiting[0][0]))


def _label_delays(batch: DayBatch) -> dict[int, tuple[int, dict[str, Any]]]:
    """Transaction position -> (simulated label delay in ms, label fields) for a day."""
    labels = batch.new_labels
    positions = pd.Index(batch.transactions["transaction_id"]).get_indexer(labels["transaction_id"])
    transaction_ms = epoch_ms(batch.transactions["timestamp"])[positions]
    delays = epoch_ms(labels["labeled_at"]) - transaction_ms
    records = frame_records(labels, LABEL_FIELDS)
    return {
        int(position): (int(delay), record)
        for position, delay, record in zip(positions, delays, records, strict=True)
    }


def _sleep_until(clock: Clock, moment: float) -> None:
    wait = moment - clock.time()
    if wait > 0:
        clock.sleep(wait)


def _due_labels(waiting: list[tuple[int, int, dict[str, Any]]], now_ms: int) -> Iterator[Label]:
    while waiting and waiting[0][0] <= now_ms:
        _, _, fields = heapq.heappop(waiting)
        yield Label.model_validate({**fields, "labeled_at": from_ms(now_ms)})
