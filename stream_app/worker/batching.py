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

Only Faust's public stream API is used: ``noack()`` (the events are acknowledged by the
in-flight batches once their outputs are confirmed), ``events()`` and the stream channel's
``queue``, the same one Faust's own stream iterator reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import faust
from faust.types import ChannelT, EventT


async def ready_batches(
    stream: faust.StreamT[Any], max_size: int
) -> AsyncIterator[list[EventT[Any]]]:
    """The stream's events, unacknowledged, in batches of at most ``max_size``; a batch is
    yielded when it is full or when no further event is coming behind it."""
    # An agent's stream always iterates a channel (its topic's), whose queue Faust fills.
    queue = cast(ChannelT[Any], stream.channel).queue
    # noack() is on Faust's Stream class, not on the protocol agents are typed with.
    events = cast(faust.Stream[Any], stream).noack().events()
    batch: list[EventT[Any]] = []
    async for event in events:
        batch.append(event)
        if len(batch) >= max_size or not await _more_coming(queue):
            yield batch
            batch = []


# Loop turns to wait for the fetch loop's next message before a batch closes: it needs about
# two per message; each turn costs microseconds, not the milliseconds of a timed window.
HAND_OVER_TURNS = 4


async def _more_coming(queue: Any) -> bool:
    """Whether another event is queued now or within a few loop turns."""
    for _ in range(HAND_OVER_TURNS):
        if not queue.empty():
            return True
        await asyncio.sleep(0)
    return not queue.empty()
