"""Batches that close as soon as what was fetched is in: no batch window.

Faust's ``take(max_, within)`` closes a batch when it is full or when ``within`` has passed:
at a moderate rate every transaction waited for that window (50 ms), which was most of the
produce-to-verdict latency at 200 tx/s. Here a batch closes as soon as nothing more is coming
from what the consumer has fetched: the stream's queue is empty and stays empty for a few
event-loop turns. The turns matter: Faust's fetch loop hands a fetched batch over one message
at a time, a couple of loop turns each (``Consumer._drain_messages``, ``wait_first`` per
message), so right after the stream took a message the queue is usually empty even with
thousands more fetched; closing on the first empty queue made batches of one, and a worker
at 2,000 tx/s fell seconds behind. Under a backlog batches fill up to ``max_size``; at a
moderate rate a batch is what the latest fetch brought, scored at once.

A task of its own (the taker) iterates the stream and appends each event to the open batch;
the batch is closed and handed on without ever waiting on the stream. Waiting on it while
holding events is what once hung a stopping worker: Faust's stream iterator gives the loop one
turn (``sleep(0)``) before it takes a queued message, and a stop or a partition revocation that
lands in that turn empties the queue and suspends the flow; the iterator then waits for a
resume that a stop never brings, and Faust's ``wait_empty`` waits for the held events to be
acknowledged, for ever (one SIGTERM in 18 of the takeover test's, 2026-12-03).

Only Faust's public stream API is used: ``noack()`` (the events are acknowledged by the
in-flight batches once their outputs are confirmed), ``events()`` and the stream channel's
``queue``, the same one Faust's own stream iterator reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, cast

import faust
from faust.types import ChannelT, EventT

# Loop turns to wait for the fetch loop's next message before a batch closes: it needs about
# two per message; each turn costs microseconds, not the milliseconds of a timed window.
HAND_OVER_TURNS = 4


class OpenBatch:
    """The events taken from the stream and not yet handed on.

    The taker only takes while a batch is wanted and not full, so events wait here, taken and
    unacknowledged, only while the batch is being gathered (at most one more, taken while the
    last batch was handed on)."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.events: list[EventT[Any]] = []
        self.arrived = asyncio.Event()  # an event was appended
        self.wanted = asyncio.Event()  # the batcher is gathering and the batch is not full
        self.ended = False  # the taker stopped: the stream ended or failed

    async def take_from(self, events: AsyncIterator[EventT[Any]]) -> None:
        """The taker's loop: wait until wanted, take the next event, append it."""
        try:
            while True:
                await self.wanted.wait()
                try:
                    event = await anext(events)
                except StopAsyncIteration:
                    return  # the stream ended (a finite one, in tests)
                self.events.append(event)
                self.arrived.set()
                if len(self.events) >= self.max_size:
                    self.wanted.clear()
        finally:
            self.ended = True
            self.arrived.set()  # wakes the batcher to see the end

    def hand_on(self) -> list[EventT[Any]]:
        batch, self.events = self.events[: self.max_size], self.events[self.max_size :]
        if not self.events and not self.ended:
            self.arrived.clear()
        return batch


async def ready_batches(
    stream: faust.StreamT[Any], max_size: int
) -> AsyncGenerator[list[EventT[Any]], None]:
    """The stream's events, unacknowledged, in batches of at most ``max_size``; a batch is
    yielded when it is full or when no further event is coming behind it."""
    # An agent's stream always iterates a channel (its topic's), whose queue Faust fills.
    queue = cast(ChannelT[Any], stream.channel).queue
    # noack() is on Faust's Stream class, not on the protocol agents are typed with.
    events = cast(faust.Stream[Any], stream).noack().events()
    batch = OpenBatch(max_size)
    taker = asyncio.create_task(batch.take_from(aiter(events)))
    try:
        while True:
            batch.wanted.set()
            if not await _first_event(batch, taker):
                return
            await _gather(batch, queue)
            batch.wanted.clear()
            yield batch.hand_on()
    finally:
        taker.cancel()


async def _first_event(batch: OpenBatch, taker: asyncio.Task[None]) -> bool:
    """Until the batch has an event (True), or the taker ended with nothing taken (False at
    the stream's end; its error is raised)."""
    await batch.arrived.wait()  # one loop turn after the taker appended, or ended
    if batch.events:
        return True
    await taker  # raises the stream's error, if it ended with one
    return False


async def _gather(batch: OpenBatch, queue: Any) -> None:
    """Let the taker move what is queued into the batch, until the batch is full or the
    queue has stayed empty for ``HAND_OVER_TURNS`` loop turns. Never waits on the stream."""
    empty_turns = 0
    while len(batch.events) < batch.max_size and empty_turns < HAND_OVER_TURNS:
        await asyncio.sleep(0)
        empty_turns = empty_turns + 1 if queue.empty() else 0
        if batch.ended:
            break
