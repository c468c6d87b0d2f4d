"""Which broker a test session uses (tests/kafka_helpers.pick_broker), with fake checks."""

from __future__ import annotations

from collections.abc import Callable

from tests.kafka_helpers import pick_broker


def check(answer: bool, calls: list[str], name: str) -> Callable[[], bool]:
    """A fake engine or image check that records that it was asked."""

    def fake() -> bool:
        calls.append(name)
        return answer

    return fake


def test_a_configured_address_wins_without_asking_any_engine() -> None:
    calls: list[str] = []
    source = pick_broker("10.0.0.5:9092", check(True, calls, "engine"), check(True, calls, "image"))
    assert source == "configured"
    assert calls == []


def test_the_broker_image_through_testcontainers_when_the_engine_holds_it() -> None:
    calls: list[str] = []
    source = pick_broker(None, check(True, calls, "engine"), check(True, calls, "image"))
    assert source == "container"
    assert calls == ["engine", "image"]


def test_the_local_broker_when_the_engine_answers_without_the_image() -> None:
    calls: list[str] = []
    assert pick_broker(None, check(True, calls, "engine"), check(False, calls, "image")) == "local"
    assert calls == ["engine", "image"]


def test_the_local_broker_without_asking_for_the_image_when_no_engine_answers() -> None:
    calls: list[str] = []
    assert pick_broker(None, check(False, calls, "engine"), check(True, calls, "image")) == "local"
    assert calls == ["engine"]


def test_an_empty_configured_address_counts_as_unset() -> None:
    calls: list[str] = []
    assert pick_broker("", check(False, calls, "engine"), check(True, calls, "image")) == "local"
