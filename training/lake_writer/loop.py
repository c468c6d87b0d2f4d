"""The Kafka shell of the lake writer: consume, buffer, flush, commit; rebalances; wiring.

Partition assignment re-reads the recorded flush intents, revocation flushes, loss drops: the
three callbacks are the only places Kafka's group protocol meets the writer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from stream_app.kafka import consumer_config
from stream_app.settings import KafkaSettings, TrainingSettings
from stream_app.store import (
    ObjectStore,
)
from training.lake_writer.buffers import FlushPolicy, Position, tables_for
from training.lake_writer.writer import LakeWriter, PartitionKey, WriterStats

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.5
CONSUME_BATCH = 1000


def _keys(partitions: Iterable[Any]) -> list[PartitionKey]:
    return [(str(tp.topic), int(tp.partition)) for tp in partitions]


class LakeWriterLoop:
    """Consume, buffer, flush and commit until ``stop`` is set (or the topics stay idle)."""

    def __init__(self, consumer: Any, writer: LakeWriter, topics: list[str]) -> None:
        self.consumer = consumer
        self.writer = writer
        self.topics = topics

    def run(self, stop: threading.Event, idle_exit_seconds: float | None = None) -> WriterStats:
        self.consumer.subscribe(
            self.topics,
            on_assign=lambda _, parts: self.writer.forget_intents(_keys(parts)),
            on_revoke=lambda _, parts: self.writer.flush(_keys(parts)),
            on_lost=lambda _, parts: self.writer.drop(_keys(parts)),
        )
        last_message = time.monotonic()
        try:
            while not stop.is_set():
                if self.poll_once():
                    last_message = time.monotonic()
                elif _idle(last_message, idle_exit_seconds):
                    break
            self.writer.flush()
        finally:
            self.consumer.close()
        return self.writer.stats

    def poll_once(self) -> int:
        """Read one batch, buffer it, flush what is due; the number of messages read."""
        records = self.consumer.consume(num_messages=CONSUME_BATCH, timeout=POLL_SECONDS)
        for record in records:
            error = record.error()
            if error is None:
                self.writer.add(record)
            elif error.fatal():
                raise KafkaException(error)
            else:
                logger.warning("kafka consumer error (retrying) error=%s", error)
        self.writer.flush_due()
        return len(records)


def _idle(since: float, limit: float | None) -> bool:
    return limit is not None and time.monotonic() - since >= limit


def kafka_committer(consumer: Any) -> Callable[[list[Position]], None]:
    def commit(positions: list[Position]) -> None:
        offsets = [TopicPartition(p.topic, p.partition, p.offset) for p in positions]
        consumer.commit(offsets=offsets, asynchronous=False)

    return commit


def build_lake_writer(
    kafka: KafkaSettings, training: TrainingSettings, store: ObjectStore
) -> LakeWriterLoop:
    """The consumer and writer, from settings."""
    consumer = Consumer(consumer_config(kafka, training.lake_writer_app_id))
    tables = tables_for(kafka)
    policy = FlushPolicy(training.lake_flush_rows, training.lake_flush_seconds)
    writer = LakeWriter(store, tables, policy, kafka_committer(consumer))
    return LakeWriterLoop(consumer, writer, list(tables))


def run_lake_writer(
    kafka: KafkaSettings,
    training: TrainingSettings,
    store: ObjectStore,
    stop: threading.Event,
    idle_exit_seconds: float | None = None,
) -> WriterStats:
    """Archive until ``stop`` is set (or no message came for ``idle_exit_seconds``)."""
    return build_lake_writer(kafka, training, store).run(stop, idle_exit_seconds)
