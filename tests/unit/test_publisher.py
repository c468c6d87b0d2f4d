"""Per-batch delivery tracking: a batch counts as confirmed only when every output is answered."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from stream_app.kafka import DeliveryError
from stream_app.worker.publisher import BatchDelivery, VerdictPublisher


class Sent:
    """What a delivery callback gets: only the topic is read."""

    def topic(self) -> str:
        return "fraud-scores"


def answer(delivery: BatchDelivery, error: KafkaError | None = None) -> None:
    delivery.on_delivery(error, Sent())  # type: ignore[arg-type]  # a stand-in message


def check(delivery: BatchDelivery) -> None:
    VerdictPublisher.check_delivered(delivery, waited_seconds=1.0)


def test_a_batch_is_not_done_before_it_is_sealed_whatever_has_been_answered() -> None:
    delivery = BatchDelivery(failure_log=[])
    answer(delivery)
    answer(delivery)
    assert not delivery.done  # the rest of the batch may still be being enqueued
    delivery.seal(3)
    assert not delivery.done
    answer(delivery)
    assert delivery.done
    check(delivery)


def test_an_unanswered_output_fails_the_check() -> None:
    delivery = BatchDelivery(failure_log=[])
    delivery.seal(2)
    answer(delivery)
    with pytest.raises(DeliveryError, match="1/2 answered"):
        check(delivery)


def test_a_failed_output_fails_its_batch_and_is_logged_for_flush() -> None:
    failure_log: list[str] = []
    delivery = BatchDelivery(failure_log)
    delivery.seal(2)
    answer(delivery)
    answer(delivery, KafkaError(KafkaError._MSG_TIMED_OUT))
    assert delivery.done
    assert len(failure_log) == 1 and failure_log[0].startswith("fraud-scores: ")
    with pytest.raises(DeliveryError, match="1 failed"):
        check(delivery)


def test_an_empty_batch_is_done_once_sealed() -> None:
    delivery = BatchDelivery(failure_log=[])
    delivery.seal(0)
    assert delivery.done
    check(delivery)
