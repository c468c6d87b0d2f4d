"""Reads the whole ``fraud-rules`` topic in every worker, outside any consumer group.

Like the labels (see :mod:`stream_app.worker.topic_reader`): a consumer group would hand each
rule to one worker, and every worker needs every rule. The topic is compacted, so reading it from
the beginning gives the current rule set (plus any not yet compacted history, which folds to the
same thing). Unlike the labels reader, records are handed over raw (key, value or tombstone,
offset): validating a rule, and dead-lettering it when it is malformed, is the
:class:`stream_app.rules.book.RuleBook`'s job, on the event loop between batches.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import deque

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from stream_app.settings import KafkaSettings
from stream_app.validation import RawRecord

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2  # a rule acts within about this long plus one batch


class RulesReader:
    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self.kafka = kafka
        self.topic = topic
        self.pending: deque[RawRecord] = deque()
        self.caught_up = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"reader-{topic}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def drain(self) -> list[RawRecord]:
        records: list[RawRecord] = []
        while self.pending:
            records.append(self.pending.popleft())
        return records

    def _run(self) -> None:
        consumer = Consumer(
            {
                **self.kafka.confluent_config(),
                "group.id": f"fraudstream-rules-{uuid.uuid4().hex[:8]}",  # never committed
                "enable.auto.commit": False,
            }
        )
        try:
            ends = self._assign_from_beginning(consumer)
            while not self._stop.is_set():
                for message in consumer.consume(num_messages=1000, timeout=POLL_SECONDS):
                    self._take(message)
                if not self.caught_up.is_set() and self._reached(consumer, ends):
                    log.info("rules reader caught up topic=%s", self.topic)
                    self.caught_up.set()
        finally:
            consumer.close()

    def _assign_from_beginning(self, consumer: Consumer) -> dict[int, int]:
        """Every partition from its first offset; the end offsets to catch up to."""
        partitions = consumer.list_topics(self.topic, timeout=30).topics[self.topic].partitions
        starts = [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in partitions]
        consumer.assign(starts)
        ends = {}
        for start in starts:
            low, high = consumer.get_watermark_offsets(start, timeout=30)
            if high > low:
                ends[start.partition] = high
        return ends

    def _take(self, message: Message) -> None:
        if message.error() is not None:
            log.warning("rules reader topic=%s error=%s", self.topic, message.error())
            return
        timestamp_type, timestamp_ms = message.timestamp()
        self.pending.append(
            RawRecord(
                topic=self.topic,
                partition=message.partition() or 0,
                offset=message.offset() or 0,
                key=message.key(),
                value=message.value(),
                timestamp_ms=timestamp_ms if timestamp_type else None,
            )
        )

    def _reached(self, consumer: Consumer, ends: dict[int, int]) -> bool:
        positions = consumer.position([TopicPartition(self.topic, p) for p in ends])
        return all(
            position.offset >= end for position, end in zip(positions, ends.values(), strict=True)
        )
