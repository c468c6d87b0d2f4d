"""The worker's consumer: no stream record lost around a seek-back (issue 17), and guards on
the pinned Faust, mode and aiokafka code it relies on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace

import pytest
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP, Message

from stream_app.worker.kafka_transport import NoGapConsumer

# The hash of Faust's fetch loop, which NoGapConsumer.getmany relies on: it hands each message
# to the streams before it asks getmany for the next, and reads getmany from self.
FAUST_FETCH_LOOP_SHA256 = "44a2500309e83c630493f6828af50166ec8d96a0b3e4fb2bab735f704ae93417"


def test_guard_faust_fetch_loop_is_the_one_the_hold_was_written_for() -> None:
    # The hold in NoGapConsumer.getmany is checked when Faust's loop asks for the next message;
    # an upgrade of faust-streaming that changes that loop must be looked at, not run past.
    import hashlib
    import inspect

    from faust.transport.consumer import Consumer

    source = inspect.getsource(Consumer._drain_messages)
    assert hashlib.sha256(source.encode()).hexdigest() == FAUST_FETCH_LOOP_SHA256, (
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
    consumer = NoGapConsumer.__new__(NoGapConsumer)
    thread = FakeThread(committed)
    consumer._thread = thread  # type: ignore[assignment]
    assert asyncio.run(consumer.seek_to_committed()) == committed
    assert thread.to_beginning == [TP("t", 1), TP("t", 2)]


def test_guard_aiokafka_seek_to_committed_skips_partitions_without_a_commit() -> None:
    """Why the override exists: the pinned aiokafka moves only partitions committed above 0.
    If this changes, the rewind in NoGapConsumer.seek_to_committed may be redundant."""
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
    consumer = NoGapConsumer.__new__(NoGapConsumer)
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


class HoldingConsumer(NoGapConsumer):
    """The hold-back logic alone: Faust's seek-back recorded, its fetch given by the test, and
    what getmany yields to Faust's fetch loop recorded as delivered; no broker."""

    def __init__(self) -> None:  # no Faust service set-up
        self.flow_control = FakeFlowControl()
        self.app = SimpleNamespace(topics=FakeTopics(), flow_control=self.flow_control)  # type: ignore[assignment]
        self.delivered: list[tuple[str, int]] = []
        self.seeks = 0

    async def _faust_perform_seek(self) -> None:
        self.seeks += 1

    def one_fetch_round(
        self, fetched: AsyncIterator[tuple[TP, Message]], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """One round of Faust's fetch loop over ``fetched``."""

        def faust_getmany(consumer: object, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
            return fetched

        monkeypatch.setattr(aiokafka_driver.Consumer, "getmany", faust_getmany)

        async def fetch_loop_round() -> None:
            async for tp, message in self.getmany(timeout=1.0):
                self.delivered.append((tp.topic, message.offset))

        asyncio.run(fetch_loop_round())


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
    consumer.one_fetch_round(fetched_records(("tx", 5), ("t-changelog", 9)), monkeypatch)
    assert consumer.delivered == [("t-changelog", 9)]  # the changelog's records still flow
    consumer.app.flow_control.resume()  # ...then resume flow control (it empties the queues)
    assert consumer.flow_control.resumed == 1
    consumer.one_fetch_round(fetched_records(("tx", 6), ("tx", 7)), monkeypatch)
    assert consumer.seeks == 2  # the held record is read again: one more seek-back first
    assert consumer.delivered == [("t-changelog", 9)]  # and the rest of that fetch is stale
    consumer.one_fetch_round(fetched_records(("tx", 5), ("tx", 6)), monkeypatch)
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
    consumer.one_fetch_round(fetched_records(("tx", 5)), monkeypatch)
    assert consumer.delivered == []  # held
    monkeypatch.setattr(transport, "HOLD_LIMIT_SECONDS", -1.0)  # the limit has passed
    consumer.one_fetch_round(fetched_records(("tx", 5), ("tx", 6)), monkeypatch)
    assert consumer.seeks == 2  # released: seek back, then read them again
    consumer.one_fetch_round(fetched_records(("tx", 5), ("tx", 6)), monkeypatch)
    assert consumer.delivered == [("tx", 5), ("tx", 6)]


def test_held_records_that_were_the_partitions_last_are_read_again_with_nothing_new_fetched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    consumer = HoldingConsumer()
    faust_seek = HoldingConsumer._faust_perform_seek
    monkeypatch.setattr(aiokafka_driver.Consumer, "perform_seek", faust_seek)
    asyncio.run(consumer.perform_seek())
    consumer.one_fetch_round(fetched_records(("tx", 852)), monkeypatch)  # the last record
    consumer.app.flow_control.resume()
    consumer.one_fetch_round(fetched_records(), monkeypatch)  # a round with nothing new
    assert consumer.seeks == 2
