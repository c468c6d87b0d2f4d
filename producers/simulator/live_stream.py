"""A live stream in simulated time: a warm-up of recent days at full speed, then a paced live part.

Streaming in wall-clock time squeezes a day of a customer's life into seconds (5,000 customers
at 200 tx/s pay every 25 s each), which makes velocity features scream fraud. Instead, the
stream keeps the simulated timeline, where a customer pays about once a day, and only paces how
fast that timeline is sent: a warm-up of past days at full speed (the worker builds its
per-customer state from it), then the live part at the target rate, anchored so that the
simulated timeline ends at the wall clock. Finding that start is the job of
:func:`stream_schedule`; :func:`paced` throttles.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from producers.simulator.config import SimulatorConfig
from producers.simulator.days import Simulator
from producers.simulator.events import Clock, SystemClock, iter_events
from producers.simulator.frames import as_utc, epoch_ms, from_ms, to_ms
from producers.simulator.world import DAY_MS, IntArray
from stream_app.schemas import MAX_EVENT_AGE, Label, Transaction

logger = logging.getLogger(__name__)

DAY = timedelta(days=1)
# Tried this many times to find a start early enough for the warm-up; each retry moves it back
# by the measured shortfall plus a day, so the second attempt practically always succeeds.
_SCHEDULE_ATTEMPTS = 6


@dataclass(frozen=True)
class StreamSchedule:
    """Where a simulated-time stream starts and which transactions are warm-up or live.

    The run is ``iter_events`` of the config started at ``start``: its first
    ``warmup_transactions`` transactions (simulated ``start`` to ``live_from``, at least the
    requested warm-up) go out unthrottled, the next ``live_transactions`` (all the rest if None)
    at the target rate. ``live_until`` is the timestamp of the last live transaction, at or just
    before the ``now`` the schedule was computed for; None when the stream is unbounded.
    """

    start: datetime
    warmup_transactions: int
    live_transactions: int | None
    live_from: datetime
    live_until: datetime | None

    @property
    def total_transactions(self) -> int | None:
        if self.live_transactions is None:
            return None
        return self.warmup_transactions + self.live_transactions

    def run_index(self, live_index: int) -> int:
        """Position in the whole run of the ``live_index``-th live transaction (1-based), as
        :attr:`DriftEvent.at_transaction` counts it."""
        return self.warmup_transactions + live_index


def live_count(rate: float | None, duration_s: float | None, count: int | None) -> int | None:
    """Live transactions to send: ``count``, or ``rate`` x ``duration_s``, the smaller; None when
    neither bounds the stream."""
    bounds = [] if count is None else [count]
    if duration_s is not None:
        if not rate:
            raise ValueError(
                "in simulated time a duration needs a positive rate (rate x duration is the "
                "number of live transactions); give a count instead to send unthrottled"
            )
        bounds.append(math.ceil(rate * duration_s))
    return min(bounds) if bounds else None


def stream_schedule(
    config: SimulatorConfig,
    *,
    warmup_days: float,
    rate: float | None,
    duration_s: float | None,
    count: int | None,
    now: datetime,
) -> StreamSchedule:
    """The simulated start and the warm-up/live split that make the stream end at ``now``.

    Bounded streams (a count, or a rate and a duration): the run is simulated once (columns
    only, about 0.3 s per 100,000 transactions) from a UTC midnight early enough for the warm-up,
    and the live part is the last ``count`` transactions stamped at or before ``now``, so the
    last live timestamp is within one inter-arrival gap of ``now`` whatever the time of day.
    The warm-up then covers ``warmup_days`` to about ``warmup_days + 2`` days. Unbounded streams
    start at the midnight before ``now - warmup_days - 1 day`` and go live after exactly
    ``warmup_days``: their live part reaches ``now`` after a while and then follows the wall
    clock (see :func:`paced`). ``config.start`` is ignored; the run uses the returned start.
    """
    if warmup_days < 0:
        raise ValueError("warmup_days must be >= 0")
    now = as_utc(now)
    warmup = timedelta(days=warmup_days)
    live = live_count(rate, duration_s, count)
    if live is None:
        return _unbounded_schedule(config, warmup, now)
    return _bounded_schedule(config, warmup, live, now)


def _midnight(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _expected_per_day(config: SimulatorConfig) -> float:
    """Legitimate transactions per average day of this population (fraud adds under 1 %)."""
    return float(Simulator(config).world.customers.daily_rate.sum())


def _timeline(config: SimulatorConfig, until: datetime) -> IntArray:
    """Sorted epoch-ms timestamps of the run's transactions, from its start through ``until``'s
    day: the simulator's columns only, no wire models."""
    days = (until - config.start) // DAY + 1
    batches = Simulator(config).iter_days(max(days, 0))
    times = [epoch_ms(batch.transactions["timestamp"]) for batch in batches]
    return np.concatenate(times) if times else np.zeros(0, dtype=np.int64)


def _checked_start(config: SimulatorConfig, lookback: timedelta, now: datetime) -> SimulatorConfig:
    start = _midnight(now - lookback)
    if start < now - MAX_EVENT_AGE:
        raise ValueError(
            f"the stream needs {(now - start).days:,} simulated days before now, more than the "
            f"{MAX_EVENT_AGE.days:,} a worker accepts: use more customers or fewer transactions"
        )
    return config.model_copy(update={"start": start})


def _unbounded_schedule(
    config: SimulatorConfig, warmup: timedelta, now: datetime
) -> StreamSchedule:
    run = _checked_start(config, warmup + DAY, now)
    live_from = run.start + warmup
    times = _timeline(run, live_from)
    warm = int(np.searchsorted(times, to_ms(live_from), side="left"))
    return StreamSchedule(run.start, warm, None, live_from, None)


def _bounded_schedule(
    config: SimulatorConfig, warmup: timedelta, live: int, now: datetime
) -> StreamSchedule:
    per_day = _expected_per_day(config)
    # Margins for the estimate (a retry covers a miss): fraud adds volume, quiet weekdays take some.
    lookback = warmup + timedelta(days=1.01 * live / per_day + 1)
    for _ in range(_SCHEDULE_ATTEMPTS):
        run = _checked_start(config, lookback, now)
        times = _timeline(run, now)
        end = int(np.searchsorted(times, to_ms(now), side="right"))  # stamped at or before now
        first_live = end - live
        shortfall = _shortfall_days(times, first_live, to_ms(run.start + warmup), per_day)
        if shortfall <= 0:
            live_from = from_ms(int(times[first_live])) if first_live < end else now
            live_until = from_ms(int(times[end - 1])) if live else None
            return StreamSchedule(run.start, first_live, live, live_from, live_until)
        lookback += timedelta(days=math.ceil(shortfall) + 1)
    raise RuntimeError(f"no simulated start fits {live} live transactions before {now}")


def _shortfall_days(times: IntArray, first_live: int, warm_edge_ms: int, per_day: float) -> float:
    """How many days earlier the run must start for the live part to begin after the warm-up."""
    if first_live < 0:
        return -first_live / per_day
    if first_live == len(times):  # no live transactions: nothing to fit after the warm-up
        return 0.0
    return (warm_edge_ms - int(times[first_live])) / DAY_MS


def paced(
    events: Iterable[Transaction | Label],
    rate: float | None,
    clock: Clock,
    *,
    max_lead: timedelta | None = timedelta(0),
    burst_s: float = 0.05,
) -> Iterator[Transaction | Label]:
    """The events, transactions throttled to ``rate`` per second of ``clock`` time.

    A token schedule (the n-th transaction is due ``n / rate`` s after the first) sleeps only
    when the stream is more than ``burst_s`` ahead, so it sleeps every ``burst_s`` rather than
    per event, and a consumer that fell behind catches up instead of lowering the rate. Labels
    are not counted and never wait. With ``max_lead`` set, a transaction stamped more than that
    after the clock waits for it: an unbounded stream that has caught up with the wall clock
    continues in real time, at the population's natural rate, rather than run into the future.
    ``rate=None`` (or 0) only applies ``max_lead``.
    """
    started = clock.time()
    sent = 0
    caught_up = False
    for event in events:
        if isinstance(event, Transaction):
            now = clock.time()
            ahead = started + sent / rate - now if rate else 0.0
            wait = ahead if ahead > burst_s else 0.0
            early = _early_s(event, now, max_lead)
            if early > wait and not caught_up:
                caught_up = True
                _log_caught_up(event)
            wait = max(wait, early)
            if wait > 0:
                clock.sleep(wait)
            sent += 1
        yield event


def _early_s(transaction: Transaction, now: float, max_lead: timedelta | None) -> float:
    """Seconds until ``transaction`` is no more than ``max_lead`` ahead of ``now``."""
    if max_lead is None:
        return 0.0
    return transaction.timestamp.timestamp() - max_lead.total_seconds() - now


def _log_caught_up(transaction: Transaction) -> None:
    logger.warning(
        "simulated time caught up with the clock (next transaction stamped %s): transactions "
        "now wait for their timestamps; more customers give a higher live rate",
        transaction.timestamp.isoformat(),
    )


def stream_events(
    config: SimulatorConfig,
    schedule: StreamSchedule,
    *,
    rate: float | None,
    clock: Clock | None = None,
    drain_labels: bool = False,
    max_lead: timedelta | None = timedelta(0),
) -> Iterator[Transaction | Label]:
    """The simulated-time stream: ``iter_events`` of ``config`` started at ``schedule.start``,
    the warm-up unthrottled, then :func:`paced`.

    Labels come at their simulated labeled_at, in order with the transactions; ``drain_labels``
    then sends the outstanding ones at once, stamped up to the maximum label delay after the
    last transaction. Put a drift at a live position with ``schedule.run_index``.
    """
    run = config.model_copy(update={"start": schedule.start})
    events = iter_events(
        run, max_transactions=schedule.total_transactions, drain_labels=drain_labels
    )
    yield from _first_transactions(events, schedule.warmup_transactions)
    yield from paced(events, rate, clock or SystemClock(), max_lead=max_lead)


def _first_transactions(
    events: Iterator[Transaction | Label], count: int
) -> Iterator[Transaction | Label]:
    """Events up to and including the ``count``-th transaction, leaving the rest in ``events``."""
    if count <= 0:
        return
    seen = 0
    for event in events:
        yield event
        seen += isinstance(event, Transaction)
        if seen >= count:
            return
