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
from collections import Counter
from collections.abc import Callable, Sequence

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition

from stream_app.kafka import raw_record
from stream_app.metrics import WorkerMetrics
from stream_app.processor import BatchScorer
from stream_app.rules.book import RuleBook
from stream_app.schemas import DeadLetter
from stream_app.validation import RawRecord
from stream_app.verdicts import VerdictRow
from stream_app.worker.publisher import VerdictPublisher
from stream_app.worker.topic_reader import BackgroundReader

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2  # a rule acts within about this long plus one batch


class RulesReader(BackgroundReader[RawRecord]):
    """Every record of the rules topic from its beginning, raw (tombstones included)."""

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
        self.pending.append(raw_record(message))

    def _reached(self, consumer: Consumer, ends: dict[int, int]) -> bool:
        positions = consumer.position([TopicPartition(self.topic, p) for p in ends])
        return all(
            position.offset >= end for position, end in zip(positions, ends.values(), strict=True)
        )


class LiveRules:
    """The worker's rules in service: the reader's records folded into the book, between
    batches, and the scorer switched to the new rule set; malformed rules dead-lettered."""

    def __init__(
        self,
        reader: RulesReader,
        book: RuleBook,
        metrics: WorkerMetrics,
        dead_letter: Callable[[DeadLetter], None],
    ) -> None:
        self.reader, self.book, self.metrics = reader, book, metrics
        self.dead_letter = dead_letter
        self._count_loaded()

    @property
    def caught_up(self) -> threading.Event:
        return self.reader.caught_up

    def start(self) -> None:
        self.reader.start()

    def apply(self, scorer: BatchScorer) -> None:
        """Call between batches only: a batch is decided by one rule set, never a mix."""
        records = self.reader.drain()
        if not records:
            return
        changes = self.book.apply(records)
        self.metrics.rules_applied.inc(changes.applied)
        for rejection, letter in changes.rejected:
            log.warning(
                "rule rejected reason=%s partition=%d offset=%d error=%s",
                rejection.reason,
                letter.partition,
                letter.offset,
                rejection.error[:200],
            )
            self.metrics.rules_rejected.labels(rejection.reason).inc()
            self.dead_letter(letter)
        if scorer.rules is not self.book.ruleset:
            scorer.rules = self.book.ruleset
            self._count_loaded()
            log.info("rules version=%s rules=%d", scorer.rules.version, len(scorer.rules.rules))

    def count_shadow_hits(self, verdicts: Sequence[VerdictRow]) -> None:
        hits = Counter(rule_id for verdict in verdicts for rule_id in verdict.shadow_rule_hits)
        for rule_id, count in hits.items():
            self.metrics.shadow_rule_hits.labels(rule_id).inc(count)

    def _count_loaded(self) -> None:
        ruleset = self.book.ruleset
        self.metrics.rules_loaded.labels("active").set(len(ruleset.active))
        self.metrics.rules_loaded.labels("shadow").set(len(ruleset.shadow))


def dead_letter_producer(publisher: VerdictPublisher, topic: str) -> Callable[[DeadLetter], None]:
    """Sends a rule's dead letter with the worker's producer; a failure is logged (the rule is
    still on its compacted topic, and is dead-lettered again on the next start)."""

    def on_delivery(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            log.error("rule dead letter not delivered topic=%s error=%s", topic, error)

    def send(letter: DeadLetter) -> None:
        key = letter.key.encode() if letter.key is not None else None
        publisher.producer.produce(topic, letter.to_bytes(), key, on_delivery=on_delivery)
        publisher.producer.poll(0)

    return send
