"""Kafka client configuration for every service, in one place.

Each confluent-kafka producer and consumer of the project (the worker's publisher and readers,
the simulator's sink, the drift monitor, the lake writer, the retrain consumer) takes its
configuration from here, so delivery guarantees and batching cannot drift apart between them.
The Faust worker's broker credentials are built here too, from the same settings.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from confluent_kafka import Consumer, KafkaError, Message

from stream_app.settings import KafkaSettings
from stream_app.validation import RawRecord

if TYPE_CHECKING:
    import faust

# librdkafka's own log lines (one per reconnect attempt) go to Python logging, not stderr.
LIBRDKAFKA_LOG = logging.getLogger("fraudstream.librdkafka")


def raw_record(message: Message) -> RawRecord:
    """A consumed confluent-kafka message as the pure core takes it (no client object)."""
    timestamp_type, timestamp_ms = message.timestamp()
    # A consumed message always has topic, partition and offset; the client's types also cover
    # produced ones. TIMESTAMP_NOT_AVAILABLE is type 0.
    return RawRecord(
        topic=message.topic() or "",
        partition=message.partition() or 0,
        offset=message.offset() or 0,
        key=message.key(),
        value=message.value(),
        timestamp_ms=timestamp_ms if timestamp_type else None,
    )


def consume_available(consumer: Consumer, max_messages: int, timeout: float) -> list[Message]:
    """Up to ``max_messages`` messages, returned as soon as there is at least one (or ``[]``
    after ``timeout`` seconds without any).

    Not ``consumer.consume(max_messages, timeout)``: librdkafka's batch consume returns only
    once it has all ``max_messages`` or the timeout has passed, so at a moderate rate it holds
    every message back for the whole timeout (one message waited 500 ms in ``consume(1000,
    0.5)`` here). ``poll`` returns on the first message; the rest is what is ready then.
    """
    first = consumer.poll(timeout)
    if first is None:
        return []
    if max_messages <= 1:
        return [first]
    return [first, *consumer.consume(max_messages - 1, 0)]


class DeliveryError(RuntimeError):
    """The broker did not confirm every message a service produced: an infrastructure failure."""


@dataclass
class DeliveryTracker:
    """Collects the failed delivery reports of a producer's messages."""

    failures: list[str] = field(default_factory=list)

    def on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self.failures.append(f"{message.topic()}: {error}")


def producer_config(
    kafka: KafkaSettings, client_id: str, *, delivery_timeout_s: float | None = None
) -> dict[str, Any]:
    """Idempotent, fully acknowledged, lightly batched: retries never duplicate or reorder output.

    ``delivery_timeout_s`` bounds how long librdkafka retries one message before it reports a
    failure (librdkafka's default, five minutes, when None).
    """
    config: dict[str, Any] = {
        **kafka.confluent_config(),
        "client.id": client_id,
        "enable.idempotence": True,
        "acks": "all",
        # Every service enqueues in bursts (the worker a whole batch at once): a longer linger
        # would only hold outputs back (the latency budget, docs/benchmarks.md).
        "linger.ms": 1,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 1_000_000,
        # The Java client's default (and Faust's, and kafka-console-producer's): a customer's
        # transactions land in the partition every worker computes for /predict's routing.
        "partitioner": "murmur2_random",
        "logger": LIBRDKAFKA_LOG,
    }
    if delivery_timeout_s is not None:
        config["message.timeout.ms"] = int(delivery_timeout_s * 1000)
    return config


def consumer_config(
    kafka: KafkaSettings, group_id: str, *, offset_reset: str = "earliest"
) -> dict[str, Any]:
    """Own group, manual commits only: offsets move after the work is done, never before.

    A new group starts at ``offset_reset`` (the oldest retained message by default).
    """
    return {
        **kafka.confluent_config(),
        "group.id": group_id,
        "client.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": offset_reset,
        "logger": LIBRDKAFKA_LOG,
    }


def faust_credentials(kafka: KafkaSettings) -> faust.auth.Credentials | None:
    """The same security settings the confluent-kafka clients get, in Faust's (aiokafka's) form."""
    import faust

    ssl_context = None
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        ssl_context = ssl.create_default_context(
            cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None
        )
        if kafka.ssl_certfile:
            keyfile = str(kafka.ssl_keyfile) if kafka.ssl_keyfile else None
            ssl_context.load_cert_chain(str(kafka.ssl_certfile), keyfile)
    if kafka.security_protocol.startswith("SASL"):
        password = kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
        return faust.SASLCredentials(
            username=kafka.sasl_username,
            password=password,
            mechanism=kafka.sasl_mechanism or "PLAIN",
            ssl_context=ssl_context,
        )
    return faust.SSLCredentials(ssl_context) if ssl_context is not None else None
