"""Topics every worker reads whole, outside any consumer group: labels and model updates.

Labels feed merchant risk: every worker reads all of ``transaction-labels``.

Why not a consumer group: merchant risk needs every label of a merchant, and a merchant's
transactions (and so its labels) are spread over every customer partition. Reading the whole
topic in each worker makes merchant risk a pure function of the labels topic, with no shared
writer to coordinate; on start the reader seeks back ``lookback`` (the longest risk window plus
a day), so a restarted worker rebuilds the same state. Labels are far fewer than transactions
in production (chargebacks), so reading them N times for N workers is cheap.

Model updates must reach every worker too (a consumer group would hand each update to one);
that reader starts at the end of ``model-updates``: only promotions from now on matter, the
registry poll covers anything older.

A reader runs in its own thread (a blocking librdkafka consumer) and hands messages over
through a deque; the event loop drains it between batches, so state is only touched there.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from datetime import timedelta
from typing import Generic, TypeVar

from confluent_kafka import OFFSET_END, Consumer, TopicPartition
from pydantic import BaseModel, ValidationError

from stream_app.settings import KafkaSettings

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5

MessageT = TypeVar("MessageT", bound=BaseModel)
ItemT = TypeVar("ItemT")


class BackgroundReader(Generic[ItemT]):
    """A reader thread that fills ``pending``; the event loop takes what arrived with
    :meth:`drain`. Subclasses implement :meth:`_run` (read until ``_stop`` is set, set
    ``caught_up`` once the topic's start-up end is reached)."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self.kafka = kafka
        self.topic = topic
        self.pending: deque[ItemT] = deque()
        self.caught_up = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"reader-{topic}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def drain(self) -> list[ItemT]:
        """Items read since the last call, in topic order per partition."""
        items: list[ItemT] = []
        while self.pending:
            items.append(self.pending.popleft())
        return items

    def _run(self) -> None:
        raise NotImplementedError


class TopicReader(BackgroundReader[MessageT]):
    """Reads every partition of ``topic`` from ``lookback`` ago (or from its end when None)."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        model: type[MessageT],
        lookback: timedelta | None,
        on_invalid: Callable[[str], None] = lambda reason: None,
    ) -> None:
        super().__init__(kafka, topic)
        self.model = model
        self.lookback = lookback
        self.on_invalid = on_invalid

    def _run(self) -> None:
        consumer = Consumer(
            {
                **self.kafka.confluent_config(),
                # librdkafka wants a group id even for assign(); nothing is ever committed.
                "group.id": f"fraudstream-reader-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
            }
        )
        try:
            targets = self._assign_from_lookback(consumer)
            while not self._stop.is_set():
                self._read(consumer)
                if not self.caught_up.is_set() and self._reached(consumer, targets):
                    log.info("reader caught up topic=%s partitions=%d", self.topic, len(targets))
                    self.caught_up.set()
        finally:
            consumer.close()

    def _assign_from_lookback(self, consumer: Consumer) -> dict[int, int]:
        """Seek every partition to ``lookback`` ago; return the end offsets to catch up to."""
        topic = self.topic
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        if self.lookback is None:
            consumer.assign([TopicPartition(topic, p, OFFSET_END) for p in partitions])
            return {}
        since_ms = int((time.time() - self.lookback.total_seconds()) * 1000)
        starts = consumer.offsets_for_times(
            [TopicPartition(topic, p, since_ms) for p in partitions], timeout=30
        )
        consumer.assign(starts)
        ends = {
            start.partition: consumer.get_watermark_offsets(start, timeout=30)[1]
            for start in starts
        }
        # A negative start means nothing newer than the lookback: that partition is caught up.
        return {
            start.partition: ends[start.partition]
            for start in starts
            if 0 <= start.offset < ends[start.partition]
        }

    def _read(self, consumer: Consumer) -> None:
        for message in consumer.consume(num_messages=1000, timeout=POLL_SECONDS):
            if message.error() is not None:
                log.warning("reader topic=%s error=%s", self.topic, message.error())
                continue
            try:
                self.pending.append(self.model.model_validate_json(message.value() or b""))
            except ValidationError as exc:
                log.warning(
                    "invalid message topic=%s partition=%s offset=%s error=%s",
                    self.topic,
                    message.partition(),
                    message.offset(),
                    exc.errors(include_url=False, include_input=False)[:1],
                )
                self.on_invalid("schema_violation")

    def _reached(self, consumer: Consumer, targets: dict[int, int]) -> bool:
        topic = self.topic
        positions = consumer.position([TopicPartition(topic, p) for p in targets])
        return all(
            position.offset >= target
            for position, target in zip(positions, targets.values(), strict=True)
        )
