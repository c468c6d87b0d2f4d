"""On the real broker: ``consume_available`` returns a lone message at once, where librdkafka's
batch consume holds it for its whole timeout (the reason the helper exists)."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition

from stream_app.kafka import consume_available
from stream_app.settings import TopicNames

TIMEOUT = 4.0  # long, so "at once" and "after the timeout" cannot be confused on a busy machine


def test_a_lone_message_is_returned_without_waiting_for_the_timeout(
    kafka_bootstrap: str, topics: TopicNames
) -> None:
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": f"consume-available-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    try:
        consumer.assign([TopicPartition(topics.transactions, 0, 0)])
        producer.produce(topics.transactions, b"one", partition=0)
        producer.produce(topics.transactions, b"two", partition=0)
        assert producer.flush(10) == 0
        deadline = time.monotonic() + 30
        values: list[bytes | None] = []
        while len(values) < 2 and time.monotonic() < deadline:  # the first fetches after assign
            values += [m.value() for m in consume_available(consumer, 1000, TIMEOUT)]
        assert values == [b"one", b"two"]

        producer.produce(topics.transactions, b"three", partition=0)
        assert producer.flush(10) == 0
        started = time.monotonic()
        assert [m.value() for m in consume_available(consumer, 1000, TIMEOUT)] == [b"three"]
        assert time.monotonic() - started < TIMEOUT / 2

        producer.produce(topics.transactions, b"four", partition=0)
        assert producer.flush(10) == 0
        started = time.monotonic()
        assert [m.value() for m in consumer.consume(1000, TIMEOUT)] == [b"four"]
        assert time.monotonic() - started >= TIMEOUT * 0.9  # what the helper avoids
    finally:
        consumer.close()
