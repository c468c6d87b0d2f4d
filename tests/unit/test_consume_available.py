"""``consume_available``: the first message ends the wait, the rest is what is ready then."""

from __future__ import annotations

from typing import Any, cast

from stream_app.kafka import consume_available


def taken(consumer: FakeConsumer, max_messages: int) -> list[Any]:
    return list(consume_available(cast(Any, consumer), max_messages, 0.5))


class FakeConsumer:
    """Records how it was asked: ``poll`` with the timeout, ``consume`` without waiting."""

    def __init__(self, ready: list[str]) -> None:
        self.ready = ready
        self.calls: list[tuple[str, float, int]] = []

    def poll(self, timeout: float) -> str | None:
        self.calls.append(("poll", timeout, 1))
        return self.ready.pop(0) if self.ready else None

    def consume(self, num_messages: int, timeout: float) -> list[str]:
        self.calls.append(("consume", timeout, num_messages))
        taken, self.ready = self.ready[:num_messages], self.ready[num_messages:]
        return taken


def test_the_first_message_is_waited_for_and_the_rest_taken_without_waiting() -> None:
    consumer = FakeConsumer(["a", "b", "c"])
    assert taken(consumer, 1000) == ["a", "b", "c"]
    assert consumer.calls == [("poll", 0.5, 1), ("consume", 0, 999)]


def test_nothing_within_the_timeout_gives_an_empty_list() -> None:
    consumer = FakeConsumer([])
    assert taken(consumer, 1000) == []
    assert consumer.calls == [("poll", 0.5, 1)]


def test_no_more_than_asked_for() -> None:
    consumer = FakeConsumer(["a", "b", "c"])
    assert taken(consumer, 2) == ["a", "b"]
    assert taken(consumer, 1) == ["c"]
