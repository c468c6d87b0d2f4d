"""The progress watchdog: every assigned ``transactions`` partition is read, or the worker says so.

A worker that stops reading one partition while it looks healthy is the worst failure a fraud
scorer can have: that partition's customers lose their protection and no alert fires. Whatever
the cause (issue 17 found one in Faust's flow control), the symptom is the same and cheap to see:
the partition's high watermark is ahead of the worker's fetch position, and the position has not
moved for ``stall_seconds``. Then the worker logs the partition, counts the stall, turns
``/health`` not ready and (by default) exits with :data:`EXIT_STALLED` so that its supervisor
restarts it; the restart resumes from the committed offsets, so nothing is lost.

The position watched is the lower of two: the fetch position, and the committed offset (what
has been scored, acknowledged and committed). Records fetched and then never scored leave the
fetch position at the watermark while the commits stop; that is how issue 17's lost partition
looked after the first fix, and the fetch position alone did not see it.

A partition that has nothing to read (position at the high watermark) is never stalled: an idle
worker on a quiet topic does not fire (its commits reach the watermark within Faust's commit
interval). Clocks are restarted while the app rebalances or
recovers its tables, where Faust pauses the partitions on purpose.

:class:`ProgressWatchdog` is the decision alone, with an injectable clock, for unit tests;
:func:`install_watchdog` is the Faust timer around it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import faust
from faust.types import TP
from prometheus_client import Counter, Gauge

log = logging.getLogger(__name__)

# EX_TEMPFAIL: a partition stopped moving; a restart is expected to cure it.
EXIT_STALLED = 75
BROKER_QUERY_SECONDS = 10.0  # a broker that does not answer is not a stall of ours: skip a round
POSITION_WAIT_SECONDS = 1.0  # a valid position answers at once; waiting longer means none


@dataclass(frozen=True)
class Progress:
    """One partition at one check: the worker's fetch position and the partition's end."""

    position: int
    highwater: int

    @property
    def lag(self) -> int:
        return max(self.highwater - self.position, 0)


@dataclass(frozen=True)
class Stall:
    partition: int
    position: int
    highwater: int
    still_for_seconds: float


class ProgressWatchdog:
    """Remembers since when each partition's position has not moved while it had records to read."""

    def __init__(self, stall_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stall_seconds = stall_seconds
        self._clock = clock
        self._unmoved: dict[int, tuple[int, float]] = {}  # partition -> (position, since)
        self.stalled: set[int] = set()  # partitions reported and still stalled

    def observe(self, progress: Mapping[int, Progress]) -> list[Stall]:
        """Take one check's positions of every assigned partition; the newly stalled ones."""
        now = self._clock()
        for gone in set(self._unmoved) - set(progress):  # revoked: forget it
            del self._unmoved[gone]
        self.stalled &= set(progress)
        stalls = []
        for partition, seen in progress.items():
            before = self._unmoved.get(partition)
            if seen.lag == 0:  # nothing to read: no clock (it starts when records arrive)
                self._unmoved.pop(partition, None)
                self.stalled.discard(partition)
                continue
            if before is None or before[0] != seen.position:  # first seen behind, or moving
                self._unmoved[partition] = (seen.position, now)
                self.stalled.discard(partition)
                continue
            still_for = now - before[1]
            if still_for >= self.stall_seconds and partition not in self.stalled:
                self.stalled.add(partition)
                stalls.append(Stall(partition, seen.position, seen.highwater, still_for))
        return stalls

    def restart_clocks(self) -> None:
        """Forget every position: after a rebalance or a recovery, every clock starts again."""
        self._unmoved.clear()
        self.stalled.clear()


def install_watchdog(
    app: faust.App,
    topic: str,
    watchdog: ProgressWatchdog,
    *,
    exit_on_stall: bool,
    stalls: Counter,
    lag: Gauge,
) -> None:
    """Check every assigned partition of ``topic`` on a timer: lag gauge, stalls, exit."""
    interval = min(5.0, watchdog.stall_seconds / 3)
    labelled: set[int] = set()

    @app.timer(interval=interval)  # type: ignore[untyped-decorator]  # faust's decorator is unannotated
    async def check_progress() -> None:
        if app.rebalancing or app.in_recovery:  # Faust pauses the partitions on purpose
            watchdog.restart_clocks()
            return
        assigned = {tp for tp in app.consumer.assignment() if tp.topic == topic}
        progress = await _progress(app, assigned)
        if progress is None:  # the broker did not answer: not a stall of ours
            # Nothing moves while the broker is away; a full period starts once it is back.
            watchdog.restart_clocks()
            return
        for partition in labelled - set(progress):  # revoked: its series goes too
            lag.remove(str(partition))
        labelled.clear()
        labelled.update(progress)
        for partition, seen in progress.items():
            lag.labels(str(partition)).set(seen.lag)
        for stall in watchdog.observe(progress):
            stalls.inc()
            log.error(
                "partition stalled: topic=%s partition=%d position=%d highwater=%d "
                "unmoved_for=%.1fs faust_flow=%s",
                topic,
                stall.partition,
                stall.position,
                stall.highwater,
                stall.still_for_seconds,
                _faust_flow_state(app.consumer, TP(topic, stall.partition)),
            )
            if exit_on_stall:
                log.critical("a partition stalled, exiting with %d for a restart", EXIT_STALLED)
                logging.shutdown()
                # Not a graceful stop: that waits for the very streams that may be stuck.
                # Acknowledged offsets not yet committed are scored again (within the bound).
                os._exit(EXIT_STALLED)


async def _progress(app: faust.App, assigned: set[TP]) -> dict[int, Progress] | None:
    """Fetch positions (ours) and high watermarks (asked of the broker, not the fetch cache:
    a partition that is never fetched has no fresh cached watermark)."""
    if not assigned:
        return {}
    consumer = app.consumer
    try:
        async with asyncio.timeout(BROKER_QUERY_SECONDS):
            highwaters = await consumer.highwaters(*assigned)
            earliest = await consumer.earliest_offsets(*assigned)
    except Exception as exc:  # the broker is away or the assignment moved: try next round
        log.info("progress check skipped: %r", exc)
        return None
    progress = {}
    for tp in assigned:
        if highwaters.get(tp) is None:
            continue
        start = earliest.get(tp, 0)
        # No position at all (the consumer never got one to fetch from) is a stall too, if
        # there is something to read: it counts as reading from the partition's start.
        fetched = await _position(consumer, tp)
        progress[tp.partition] = Progress(
            min(start if fetched is None else fetched, _processed(consumer, tp, start)),
            highwaters[tp],
        )
    return progress


def _processed(consumer: Any, tp: TP, start: int) -> int:
    """Where processing has got to: the committed offset (``start`` if none). The fetch
    position alone missed issue 17's failure: records fetched to the end of the partition and
    then never scored leave the position at the watermark, and only the commits stop."""
    processed_offset = getattr(consumer, "processed_offset", None)
    if processed_offset is None:  # not the project's consumer: the fetch position only
        return sys.maxsize
    offset = processed_offset(tp)
    return start if offset is None else max(offset, start)


async def _position(consumer: Any, tp: TP) -> int | None:
    """The fetch position; None if the consumer has none (aiokafka waits for one: not us)."""
    try:
        async with asyncio.timeout(POSITION_WAIT_SECONDS):
            position = await consumer.position(tp)
    except Exception:  # TimeoutError included: no valid position yet
        return None
    return None if position is None else int(position)


def _faust_flow_state(consumer: Any, tp: TP) -> str:
    """Where Faust's flow control has the partition (diagnostics only: private attributes,
    pinned by tests/unit/test_watchdog.py)."""
    sets = ("_active_partitions", "_paused_partitions", "_buffered_partitions")
    where = {name.strip("_"): tp in (getattr(consumer, name, None) or ()) for name in sets}
    return ",".join(f"{name}={inside}" for name, inside in where.items())
