"""The inline hand-over: a coroutine run by hand up to its first wait, then awaited as usual."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace

import pytest
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP, Message

from stream_app.worker.kafka_transport import InlineHandOverConsumer, run_until_first_wait


def test_a_hand_over_that_never_waits_finishes_inline() -> None:
    delivered: list[str] = []

    async def deliver() -> None:
        delivered.append("m1")

    async def scenario() -> None:
        assert run_until_first_wait(deliver()) is None
        assert delivered == ["m1"]  # done before anything else ran on the loop

    asyncio.run(scenario())


def test_a_hand_over_that_waits_resumes_where_it_stopped() -> None:
    steps: list[str] = []

    async def deliver(room: asyncio.Event) -> str:
        steps.append("decoded")
        await room.wait()  # a full buffer, say
        await asyncio.sleep(0)
        steps.append("queued")
        return "ok"

    async def scenario() -> str:
        room = asyncio.Event()
        rest = run_until_first_wait(deliver(room))
        assert rest is not None and steps == ["decoded"]
        finishing = asyncio.ensure_future(rest)
        await asyncio.sleep(0)
        assert not finishing.done()
        room.set()
        return await asyncio.wait_for(finishing, timeout=10)

    assert asyncio.run(scenario()) == "ok"
    assert steps == ["decoded", "queued"]


def test_cancelling_a_waiting_hand_over_cancels_the_delivery_itself() -> None:
    seen: list[str] = []

    async def deliver(room: asyncio.Event) -> None:
        try:
            await room.wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async def scenario() -> None:
        rest = run_until_first_wait(deliver(asyncio.Event()))
        assert rest is not None
        finishing = asyncio.ensure_future(rest)
        await asyncio.sleep(0)
        finishing.cancel()  # what wait_first does when a rebalance suspends the flow
        with pytest.raises(asyncio.CancelledError):
            await finishing

    asyncio.run(scenario())
    assert seen == ["cancelled"]


# The hash of the Faust fetch loop that InlineHandOverConsumer._drain_messages copies.
COPIED_FAUST_FETCH_LOOP_SHA256 = "44a2500309e83c630493f6828af50166ec8d96a0b3e4fb2bab735f704ae93417"


def test_the_copied_fetch_loop_still_matches_the_installed_faust() -> None:
    # InlineHandOverConsumer overrides a private Faust method with a copy of it; an upgrade of
    # faust-streaming that changes the original must be looked at, not silently run past.
    import hashlib
    import inspect

    from faust.transport.consumer import Consumer

    source = inspect.getsource(Consumer._drain_messages)
    assert hashlib.sha256(source.encode()).hexdigest() == COPIED_FAUST_FETCH_LOOP_SHA256, (
        "faust's Consumer._drain_messages changed: re-check stream_app/worker/kafka_transport.py"
    )


class FakeThread:
    """The consumer thread's two seeks, recorded (the real ones need a broker)."""

    def __init__(self, committed: dict[TP, int | None]) -> None:
        self.committed = committed
        self.to_beginning: list[TP] = []

    async def seek_to_committed(self) -> dict[TP, int | None]:
        return self.committed

    async def seek_to_beginning(self, *partitions: TP) -> None:
        self.to_beginning.extend(partitions)


def test_seeking_to_committed_rewinds_partitions_that_have_no_commit() -> None:
    committed = {TP("t", 0): 1200, TP("t", 1): None, TP("t", 2): 0}
    consumer = InlineHandOverConsumer.__new__(InlineHandOverConsumer)
    thread = FakeThread(committed)
    consumer._thread = thread  # type: ignore[assignment]
    assert asyncio.run(consumer.seek_to_committed()) == committed
    assert thread.to_beginning == [TP("t", 1), TP("t", 2)]


def test_guard_aiokafka_seek_to_committed_skips_partitions_without_a_commit() -> None:
    """Why the override exists: the pinned aiokafka moves only partitions committed above 0.
    If this changes, the rewind in InlineHandOverConsumer.seek_to_committed may be redundant."""
    import inspect

    from aiokafka import AIOKafkaConsumer
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    assert "if offset and offset > 0:" in inspect.getsource(AIOKafkaConsumer.seek_to_committed)
    thread_seek = inspect.getsource(AIOKafkaConsumerThread.seek_to_committed)
    assert "self._ensure_consumer().seek_to_committed" in thread_seek


class FakeMonitor:
    def __init__(self, committed: dict[TP, int]) -> None:
        self.tp_committed_offsets = committed


class FakeApp:
    def __init__(self, committed: dict[TP, int]) -> None:
        self.monitor = FakeMonitor(committed)


def test_processed_offset_is_the_later_of_the_last_commit_and_the_commit_found_at_the_seek() -> (
    None
):
    consumer = InlineHandOverConsumer.__new__(InlineHandOverConsumer)
    consumer._thread = FakeThread({TP("t", 0): 700, TP("t", 1): None, TP("t", 2): 300})  # type: ignore[assignment]
    consumer.app = FakeApp({TP("t", 2): 450, TP("t", 0): 200})  # type: ignore[assignment]
    asyncio.run(consumer.seek_to_committed())
    assert consumer.processed_offset(TP("t", 0)) == 700  # an older commit of ours is stale
    assert consumer.processed_offset(TP("t", 1)) is None  # never committed by anyone
    assert consumer.processed_offset(TP("t", 2)) == 450  # committed since the seek


def test_guard_faust_reports_every_commit_to_the_monitor() -> None:
    """processed_offset reads the commits from Faust's monitor: the pinned faust-streaming
    tells the monitor of every commit, and the monitor keeps them per partition."""
    import inspect

    from faust.sensors.monitor import Monitor
    from faust.transport.consumer import Consumer

    assert "self.app.monitor.on_tp_commit(committable_offsets)" in inspect.getsource(
        Consumer._commit_offsets
    )
    assert "self.tp_committed_offsets.update(tp_offsets)" in inspect.getsource(Monitor.on_tp_commit)


class FakeTopics:
    @staticmethod
    def acks_enabled_for(topic: str) -> bool:
        return not topic.endswith("-changelog")


class FakeFlowControl:
    def __init__(self) -> None:
        self.resumed = 0

    def resume(self) -> None:
        self.resumed += 1


class HoldingConsumer(InlineHandOverConsumer):
    """The hold-back logic alone: Faust's seek-back and hand-over recorded, no broker."""

    def __init__(self) -> None:  # no Faust service set-up
        self.flow_control = FakeFlowControl()
        self.app = SimpleNamespace(topics=FakeTopics(), flow_control=self.flow_control)  # type: ignore[assignment]
        self.delivered: list[tuple[str, int]] = []
        self.seeks = 0

    async def _deliver(self, tp: TP, message: Message) -> None:
        self.delivered.append((tp.topic, message.offset))

    async def _faust_perform_seek(self) -> None:
        self.seeks += 1


def fetched_records(*records: tuple[str, int]) -> AsyncIterator[tuple[TP, Message]]:
    async def records_() -> AsyncIterator[tuple[TP, Message]]:
        for topic, offset in records:
            yield TP(topic, 0), SimpleNamespace(topic=topic, offset=offset)  # type: ignore[misc]

    return records_()


def test_from_a_seek_back_until_flow_control_resumes_stream_records_are_held_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    consumer = HoldingConsumer()
    monkeypatch.setattr(
        aiokafka_driver.Consumer, "perform_seek", HoldingConsumer._faust_perform_seek
    )
    asyncio.run(consumer.perform_seek())  # Faust's recovery: seek back...
    asyncio.run(consumer._deliver_fetched(fetched_records(("tx", 5), ("t-changelog", 9))))
    assert consumer.delivered == [("t-changelog", 9)]  # the changelog's records still flow
    consumer.app.flow_control.resume()  # ...then resume flow control (it empties the queues)
    assert consumer.flow_control.resumed == 1
    asyncio.run(consumer._deliver_fetched(fetched_records(("tx", 6), ("tx", 7))))
    assert consumer.seeks == 2  # the held record is read again: one more seek-back first
    assert consumer.delivered == [("t-changelog", 9)]  # and the rest of that fetch is stale
    asyncio.run(consumer._deliver_fetched(fetched_records(("tx", 5), ("tx", 6))))
    assert consumer.delivered == [("t-changelog", 9), ("tx", 5), ("tx", 6)]
    assert consumer.seeks == 2


def test_guard_faust_empties_the_stream_queues_when_it_resumes_flow_control_after_seeking() -> None:
    """Why perform_seek holds records back, in the pinned mode and faust-streaming: resuming
    flow control clears the queues, Faust's channel queues ask for that, and the recovery
    resumes flow control after its seek-back."""
    import inspect

    from faust.channels import Channel
    from faust.tables.recovery import Recovery
    from mode.utils.queues import FlowControlEvent

    assert "self.clear()" in inspect.getsource(FlowControlEvent.resume)
    assert "clear_on_resume=True" in inspect.getsource(Channel)
    for step in (Recovery.on_recovery_completed, Recovery._resume_streams):
        source = inspect.getsource(step)
        assert source.index("perform_seek()") < source.index("flow_control.resume()"), step


def test_a_hold_that_no_resume_ends_expires_and_the_held_records_are_read_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Faust's recovery may return between its seek-back and the resume: no wedged stream."""
    import stream_app.worker.kafka_transport as transport

    consumer = HoldingConsumer()
    faust_seek = HoldingConsumer._faust_perform_seek
    monkeypatch.setattr(aiokafka_driver.Consumer, "perform_seek", faust_seek)
    asyncio.run(consumer.perform_seek())
    asyncio.run(consumer._deliver_fetched(fetched_records(("tx", 5))))
    assert consumer.delivered == []  # held
    monkeypatch.setattr(transport, "HOLD_LIMIT_SECONDS", -1.0)  # the limit has passed
    asyncio.run(consumer._deliver_fetched(fetched_records(("tx", 5), ("tx", 6))))
    assert consumer.seeks == 2  # released: seek back, then read them again
    asyncio.run(consumer._deliver_fetched(fetched_records(("tx", 5), ("tx", 6))))
    assert consumer.delivered == [("tx", 5), ("tx", 6)]


def test_held_records_that_were_the_partitions_last_are_read_again_with_nothing_new_fetched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    consumer = HoldingConsumer()
    faust_seek = HoldingConsumer._faust_perform_seek
    monkeypatch.setattr(aiokafka_driver.Consumer, "perform_seek", faust_seek)
    asyncio.run(consumer.perform_seek())
    asyncio.run(consumer._deliver_fetched(fetched_records(("tx", 852))))  # the last record
    consumer.app.flow_control.resume()
    asyncio.run(consumer._deliver_fetched(fetched_records()))  # a round with nothing new
    assert consumer.seeks == 2
