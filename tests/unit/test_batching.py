"""``ready_batches``: a batch closes when it is full or when nothing more is queued behind it,
so it never waits for a window (a fake stream: events arrive in fetches, the queue reports
what is still queued)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, cast

from stream_app.worker.batching import HAND_OVER_TURNS, ready_batches


class FakeQueue:
    def __init__(self) -> None:
        self.items: deque[str] = deque()

    def empty(self) -> bool:
        return not self.items


class FakeStream:
    """Events arrive fetch by fetch; between two fetches the queue is empty for a while (the
    next fetch is a broker round trip away)."""

    def __init__(self, fetches: list[list[str]]) -> None:
        self.fetches = fetches
        self.queue = FakeQueue()
        self.channel = self
        self.acks_disabled = False

    def noack(self) -> FakeStream:
        self.acks_disabled = True
        return self

    async def events(self) -> AsyncIterator[str]:
        for index, fetch in enumerate(self.fetches):
            if index:
                await asyncio.sleep(0.01)
            self.queue.items.extend(fetch)
            while self.queue.items:
                yield self.queue.items.popleft()


def batches_of(fetches: list[list[str]], max_size: int) -> tuple[list[list[str]], FakeStream]:
    stream = FakeStream(fetches)

    async def collect() -> list[list[str]]:
        return [
            cast(list[str], batch) async for batch in ready_batches(cast(Any, stream), max_size)
        ]

    return asyncio.run(collect()), stream


def test_each_fetch_is_a_batch_at_once() -> None:
    batches, stream = batches_of([["a"], ["b", "c"], ["d", "e", "f"]], max_size=1000)
    assert batches == [["a"], ["b", "c"], ["d", "e", "f"]]
    assert stream.acks_disabled  # the in-flight batches acknowledge, not the stream


def test_a_backlog_fills_batches_up_to_the_maximum() -> None:
    backlog = [f"t{i}" for i in range(7)]
    batches, _ = batches_of([backlog], max_size=3)
    assert batches == [["t0", "t1", "t2"], ["t3", "t4", "t5"], ["t6"]]


class FedStream:
    """Like Faust's fetch loop: a feeder task hands a fetch's messages over one at a time,
    ``turns`` event-loop turns apart, and pauses between fetches."""

    def __init__(self, fetches: list[list[str]], turns: int) -> None:
        self.fetches, self.turns = fetches, turns
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.channel = self

    def noack(self) -> FedStream:
        return self

    async def events(self) -> AsyncIterator[str]:
        while (item := await self.queue.get()) is not None:
            yield item

    async def feed(self) -> None:
        for fetch in self.fetches:
            for message in fetch:
                self.queue.put_nowait(message)
                for _ in range(self.turns):
                    await asyncio.sleep(0)
            await asyncio.sleep(0.02)  # the next fetch comes later
        self.queue.put_nowait(None)


def fed_batches(fetches: list[list[str]], turns: int) -> list[list[str]]:
    async def collect() -> list[list[str]]:
        stream = FedStream(fetches, turns)
        feeder = asyncio.create_task(stream.feed())
        batches = [cast(list[str], b) async for b in ready_batches(cast(Any, stream), 1000)]
        await feeder
        return batches

    return asyncio.run(collect())


def test_a_fetch_handed_over_a_message_at_a_time_is_still_one_batch() -> None:
    fetches = [["a", "b", "c"], ["d", "e"]]
    assert fed_batches(fetches, turns=2) == fetches  # Faust's fetch loop: ~2 turns a message


def test_messages_further_apart_than_the_hand_over_turns_are_batches_of_their_own() -> None:
    assert fed_batches([["a", "b"]], turns=HAND_OVER_TURNS + 3) == [["a"], ["b"]]


class StoppingStream:
    """Faust's stream iterator gives the loop a turn before it takes a queued message; a stop
    (or a partition revocation) landing in that turn empties the queue and suspends the flow,
    and the iterator then waits for a resume that a stop never brings."""

    def __init__(self, queued: list[str]) -> None:
        self.queue = FakeQueue()
        self.queue.items.extend(queued)
        self.channel = self
        self.resumed = asyncio.Event()  # never set: the worker is stopping

    def noack(self) -> StoppingStream:
        return self

    async def events(self) -> AsyncIterator[str]:
        yield self.queue.items.popleft()
        await asyncio.sleep(0)
        self.queue.items.clear()  # the stop, in the turn before the next message is taken
        await self.resumed.wait()
        yield "never"


def test_a_stop_that_empties_the_queue_mid_batch_does_not_hold_the_batch() -> None:
    # The events taken stay unacknowledged until their batch is scored, and Faust's stop
    # waits for them: a batch held on the stream hung a stopping worker (until SIGKILL).
    async def first_batch() -> list[str]:
        batches = ready_batches(cast(Any, StoppingStream(["a", "b", "c"])), 1000)
        try:
            return cast(list[str], await asyncio.wait_for(anext(batches), timeout=5))
        finally:
            await batches.aclose()

    assert asyncio.run(first_batch()) == ["a"]


def test_the_stream_s_error_reaches_the_agent() -> None:
    class BrokenStream(FakeStream):
        async def events(self) -> AsyncIterator[str]:
            yield "a"
            raise RuntimeError("the stream broke")

    async def collect() -> list[list[str]]:
        stream = BrokenStream([])
        return [cast(list[str], b) async for b in ready_batches(cast(Any, stream), 1000)]

    try:
        asyncio.run(collect())
    except RuntimeError as error:
        assert str(error) == "the stream broke"
    else:
        raise AssertionError("the stream's error was swallowed")
