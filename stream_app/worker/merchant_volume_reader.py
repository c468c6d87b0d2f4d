"""Merchant volume from every partition of ``transactions``, whatever partitions a worker owns.

The scoring agent gets only its group's share of the partitions, but a merchant's transactions
are spread over all of them (partitions are keyed by customer). So every worker also reads the
whole topic here, outside any consumer group, and counts each transaction towards its
merchant's volume (:func:`stream_app.features.merchant.count_merchant_volume`); the scoring
path no longer counts its own transactions.

Point in time: ``merchant_txn_count_*`` of a transaction at ``t`` count the merchant's
transactions up to ``as_of = t - L`` (:data:`~stream_app.features.merchant.VOLUME_LAG_US`).
Before a batch is scored, :meth:`MerchantVolumeReader.wait_until` waits until every
partition's *frontier* has passed the batch's largest ``as_of``: the partition's newest event
time read is later than ``as_of``, or the reader is at the partition's end, confirmed by a look
at its high watermark made after the wait began (so an idle partition does not hold scoring up,
and a record the scoring consumer could already see is not missed for an old end). For
per-partition time-ordered producers, and so for any replay of a history, everything with time
<= ``as_of`` has then been read: online equals the offline definition exactly. The wait is
bounded (``merchant_volume_wait_seconds``); when it times out the batch is scored with what was
read, logged and counted (``fraudstream_merchant_volume_wait_timeouts_total``).

A *late* record is one read with event time at or before an ``as_of`` already served (a
producer out of time order within a partition, or a record that landed after its partition's
reader had reached the end): verdicts scored before it was read did not count it, those after
do, while the offline features always count it. Such records are counted
(``fraudstream_merchant_volume_late_records_total``): parity is exact while it stays 0.

A record counts if it passes the same validation as the scoring path (dead-lettered records
count neither online nor offline). Two exceptions, both documented in docs/worker.md: a
duplicate transaction id (dead-lettered by the scorer) still counts here, as offline it would
if the history held it twice; and the check against future event times uses the reader's clock.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition
from prometheus_client import CollectorRegistry, Counter

from stream_app.features import core
from stream_app.features.merchant import VOLUME_LAG_US
from stream_app.kafka import consume_available
from stream_app.schemas import Transaction
from stream_app.settings import KafkaSettings
from stream_app.validation import parse_transaction
from stream_app.worker.topic_reader import BackgroundReader

log = logging.getLogger(__name__)

# The longest an idle reader waits for records, so also how soon a waiting batch's
# end-of-partition check starts: a few ms of the latency budget when partitions are quiet.
CONSUME_SECONDS = 0.002
# Where a (re)started reader begins, by the records' Kafka timestamps: the 24 h window plus the
# lag, and a day for records produced after their event time.
VOLUME_LOOKBACK_US = 2 * core.US_PER_DAY + VOLUME_LAG_US
_NO_TIME = -(2**63)


class MerchantVolumeReader(BackgroundReader[tuple[str | None, int]]):
    """Reads every partition of ``topic`` from ``lookback`` ago; hands over
    ``(merchant_id, event time µs)`` and tracks each partition's frontier."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        lookback: timedelta,
        registry: CollectorRegistry | None = None,
    ) -> None:
        super().__init__(kafka, topic)
        self.lookback = lookback
        self._frontier = threading.Condition()
        self._newest_us: dict[int, int] = {}  # partition -> newest event time read
        self._at_end: dict[int, bool] = {}  # partition -> reader at its end (EOF seen)
        self._served_us = _NO_TIME  # the largest as_of a batch was scored with
        self._requested = 0  # waits begun; each needs ends confirmed after it began
        self._end_checked: dict[int, int] = {}  # partition -> wait number its end was seen at
        self.late_records = Counter(
            "fraudstream_merchant_volume_late_records",
            "Transactions read by the merchant-volume reader with an event time at or before "
            "one already served (scored before this record was counted).",
            registry=registry,
        )
        self.wait_timeouts = Counter(
            "fraudstream_merchant_volume_wait_timeouts",
            "Batches scored before every transactions partition was read past their as-of time.",
            registry=registry,
        )

    def wait_until(self, as_of_us: int, timeout_seconds: float) -> bool:
        """Block until every partition's frontier is past ``as_of_us`` (True) or the timeout
        passes (False, counted and logged); afterwards, :meth:`drain` holds what is needed."""
        with self._frontier:
            self._requested += 1
            wait = self._requested
            passed = self._frontier.wait_for(lambda: self._passed(as_of_us, wait), timeout_seconds)
            self._served_us = max(self._served_us, as_of_us)
        if not passed:
            self.wait_timeouts.inc()
            log.warning(
                "merchant volume: partitions not read past as_of=%d within %.1fs: %s",
                as_of_us,
                timeout_seconds,
                self.frontiers(),
            )
        return passed

    @property
    def waits_begun(self) -> int:
        with self._frontier:
            return self._requested

    def frontiers(self) -> dict[int, int | str]:
        """Per partition: the newest event time read, or "end"; for logs and tests."""
        with self._frontier:
            return {
                p: "end" if self._at_end.get(p) else self._newest_us[p] for p in self._newest_us
            }

    def _passed(self, as_of_us: int, wait: int) -> bool:
        if not self._newest_us:  # not assigned yet
            return False
        return all(
            newest > as_of_us or (self._at_end[p] and self._end_checked[p] >= wait)
            for p, newest in self._newest_us.items()
        )

    def _run(self) -> None:
        consumer = Consumer(
            {
                **self.kafka.confluent_config(),
                "group.id": f"fraudstream-volume-{uuid.uuid4().hex[:8]}",  # never committed
                "enable.auto.commit": False,
                "enable.partition.eof": True,
            }
        )
        # End checks go through a client of their own: on the reading consumer's connection a
        # watermark query waits behind the broker's long-poll fetch (fetch.wait.max.ms, 500 ms
        # per partition), which held batches up for seconds (py-spy of a backlog drain).
        watermarks = Consumer({**self.kafka.confluent_config(), "group.id": "unused"})
        try:
            self._assign(consumer)
            while not self._stop.is_set():
                self.read(consume_available(consumer, 1000, CONSUME_SECONDS))
                if self.ends_to_confirm():
                    self.confirm_ends(consumer, watermarks)
        finally:
            watermarks.close()
            consumer.close()

    def _assign(self, consumer: Consumer) -> None:
        topic = self.topic
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        since_ms = int((time.time() - self.lookback.total_seconds()) * 1000)
        starts = consumer.offsets_for_times(
            [TopicPartition(topic, p, since_ms) for p in partitions], timeout=30
        )
        consumer.assign(starts)
        self.track([start.partition for start in starts])

    def track(self, partitions: Sequence[int]) -> None:
        """Start the frontiers of the assigned ``partitions`` (nothing read, not at the end)."""
        with self._frontier:
            for partition in partitions:
                self._newest_us[partition] = _NO_TIME
                self._at_end[partition] = False
                self._end_checked[partition] = 0
        self.caught_up.set()

    def read(self, messages: Sequence[Message[bytes, bytes]]) -> None:
        now = datetime.now(UTC)
        ends: set[int] = set()
        newest: dict[int, int] = {}
        late = 0
        served = self._served_us
        for message in messages:
            error = message.error()
            partition = message.partition() or 0  # set on every consumed message
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    ends.add(partition)
                else:
                    log.warning("merchant volume reader error=%s", error)
                continue
            ends.discard(partition)
            parsed = _transaction(message.value(), now)
            if parsed is None:
                continue
            t_us = core.to_micros(parsed.timestamp)
            late += t_us <= served
            # The item goes into pending before the frontier moves past it: a scorer that
            # sees the frontier and then drains is sure to get it.
            self.pending.append((parsed.merchant_id, t_us))
            newest[partition] = max(newest.get(partition, _NO_TIME), t_us)
        if late:
            self.late_records.inc(late)
        if newest or ends:
            self._advance(newest, ends)

    def _advance(self, newest: dict[int, int], ends: set[int]) -> None:
        with self._frontier:
            for partition, t_us in newest.items():
                self._newest_us[partition] = max(self._newest_us[partition], t_us)
                self._at_end[partition] = False
            for partition in ends:
                self._at_end[partition] = True
            self._frontier.notify_all()

    def ends_to_confirm(self) -> list[int]:
        """Partitions at their end whose end was not yet confirmed for the latest wait. Asked
        after every read, not once per wait: a partition can reach its end (again) after a
        check, and the waiting batch needs that end confirmed too."""
        with self._frontier:
            wait = self._requested
            checked = self._end_checked
            return [p for p, at_end in self._at_end.items() if at_end and checked[p] < wait]

    def confirm_ends(self, consumer: Consumer, watermarks: Consumer) -> None:
        """For a waiting batch: are the partitions at their end still there? One look at each
        one's high watermark (through ``watermarks``), made now, after the wait began."""
        with self._frontier:
            wait = self._requested
        ended = self.ends_to_confirm()
        still: list[int] = []
        if ended:
            positions = consumer.position([TopicPartition(self.topic, p) for p in ended])
            for position in positions:
                high = watermarks.get_watermark_offsets(position, timeout=5, cached=False)[1]
                if position.offset >= high:
                    still.append(position.partition)
        with self._frontier:
            for partition in ended:
                if not self._at_end[partition]:
                    continue  # read on meanwhile: its frontier moved, or it ends again later
                if partition in still:
                    self._end_checked[partition] = max(self._end_checked[partition], wait)
                else:  # records to read: the frontier moves when they are
                    self._at_end[partition] = False
            self._frontier.notify_all()


def _transaction(value: bytes | None, now: datetime) -> Transaction | None:
    parsed = parse_transaction(value, now)
    return parsed if isinstance(parsed, Transaction) else None
