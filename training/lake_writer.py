"""Archive ``transactions`` and ``transaction-labels`` into the lake that training reads.

Layout (the same as the simulator's ``LakeSink``, so training cannot tell who wrote a day):
``lake/transactions/date=YYYY-MM-DD/<part>.parquet`` by transaction ``timestamp`` and
``lake/labels/date=YYYY-MM-DD/<part>.parquet`` by ``labeled_at``, both UTC, with the columns of
the simulator's frames (no ``schema_version``, no ground truth on transactions).

Delivery: at least once, without duplicate rows. Rows are buffered per topic-partition and a
buffer is flushed (one part per date it touches) once it holds ``max_rows`` rows (checked after
each consumed batch of up to 1,000) or is ``max_seconds`` old; its offsets are committed only
after its parts are written. A part is named after the topic, partition and offset range it
holds (``transactions-2-000000001200-000000001999``), so a replay after a crash rewrites the
same objects instead of adding rows, provided it cuts the replay at the same offsets. That is
what the flush intent is for: before writing parts, the writer records ``{first, last}`` under
``lake/_writer/<topic>/<partition>.json``; a buffer that opens inside a recorded range (the
crashed flush, replayed from the committed offset) adopts that range and flushes exactly at its
end, whatever the row and time limits say.
This assumes one writer group per lake: a second group, or a group reset to the start of the
topics, archives the messages again next to the first copy.

Invalid messages are counted, logged and skipped (their offsets are still committed): the
worker's dead-letter topic already records bad transactions with the reason.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd
from confluent_kafka import Consumer, KafkaException, TopicPartition
from pydantic import BaseModel, ValidationError

from stream_app.kafka import consumer_config
from stream_app.schemas import Label, Transaction
from stream_app.settings import KafkaSettings, TrainingSettings
from stream_app.store import (
    LABEL_COLUMNS,
    LAKE_LABELS,
    LAKE_TRANSACTIONS,
    TRANSACTION_COLUMNS,
    ObjectNotFoundError,
    ObjectStore,
    lake_key,
    write_parquet,
)

logger = logging.getLogger(__name__)

INTENT_PREFIX = "lake/_writer"
OFFSET_DIGITS = 12  # zero-padded, so key order is offset order
POLL_SECONDS = 0.5
CONSUME_BATCH = 1000


def part_name(topic: str, partition: int, first: int, last: int) -> str:
    return f"{topic}-{partition}-{first:0{OFFSET_DIGITS}d}-{last:0{OFFSET_DIGITS}d}"


def intent_key(topic: str, partition: int) -> str:
    return f"{INTENT_PREFIX}/{topic}/{partition}.json"


@dataclass(frozen=True)
class LakeTable:
    """Where one topic's messages go: the wire model, the lake prefix, columns, partition clock."""

    prefix: str
    model: type[BaseModel]
    columns: tuple[str, ...]
    time_column: str

    def row(self, value: bytes | None) -> dict[str, Any]:
        """The message as a lake row; raises ValidationError for anything the schema refuses."""
        event = self.model.model_validate_json(value or b"")
        row: dict[str, Any] = event.model_dump(include=set(self.columns))
        return row

    def frame(self, rows: list[dict[str, Any]]) -> pd.DataFrame:
        frame = pd.DataFrame.from_records(rows, columns=list(self.columns))
        return frame.assign(**{self.time_column: pd.to_datetime(frame[self.time_column], utc=True)})


TRANSACTIONS_TABLE = LakeTable(LAKE_TRANSACTIONS, Transaction, TRANSACTION_COLUMNS, "timestamp")
LABELS_TABLE = LakeTable(LAKE_LABELS, Label, LABEL_COLUMNS, "labeled_at")


def tables_for(kafka: KafkaSettings) -> dict[str, LakeTable]:
    return {kafka.topics.transactions: TRANSACTIONS_TABLE, kafka.topics.labels: LABELS_TABLE}


@dataclass(frozen=True)
class FlushIntent:
    """The offset range a flush is about to write: the cut a replay must repeat."""

    first: int
    last: int

    def covers(self, offset: int) -> bool:
        return self.first <= offset <= self.last


@dataclass
class PartitionBuffer:
    """Rows of one topic-partition since its last flush, grouped by lake date."""

    topic: str
    partition: int
    table: LakeTable
    first_offset: int
    opened_at: float
    pinned_last: int | None = None  # set when replaying a recorded flush: cut exactly here
    last_offset: int = -1
    rows_by_date: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    rows: int = 0

    def add(self, offset: int, row: dict[str, Any] | None) -> None:
        """Record that ``offset`` was read; ``row`` is None for an invalid message."""
        self.last_offset = offset
        if row is not None:
            date = row[self.table.time_column].date().isoformat()
            self.rows_by_date.setdefault(date, []).append(row)
            self.rows += 1

    def complete(self) -> bool:
        """A replayed range may be written only whole, or it would overwrite rows with fewer."""
        return self.pinned_last is None or self.last_offset >= self.pinned_last

    def ends_before(self, offset: int) -> bool:
        """A replayed range whose last offset never came (compacted away) ends before this one."""
        return self.pinned_last is not None and offset > self.pinned_last

    def offset_range(self) -> tuple[int, int]:
        return self.first_offset, self.last_offset if self.pinned_last is None else self.pinned_last

    def part(self) -> str:
        return part_name(self.topic, self.partition, *self.offset_range())


@dataclass(frozen=True)
class FlushPolicy:
    """Bound both the part size and how stale the lake can get at low traffic."""

    max_rows: int
    max_seconds: float

    def due(self, buffer: PartitionBuffer, now: float) -> bool:
        if buffer.pinned_last is not None:
            return buffer.complete()
        return buffer.rows >= self.max_rows or now - buffer.opened_at >= self.max_seconds


@dataclass(frozen=True)
class Position:
    """The next offset to read in a topic-partition: what gets committed."""

    topic: str
    partition: int
    offset: int


class Record(Protocol):
    """The part of ``confluent_kafka.Message`` the writer reads (tests pass a fake)."""

    def topic(self) -> str | None: ...

    def partition(self) -> int | None: ...

    def offset(self) -> int | None: ...

    def value(self) -> bytes | None: ...


@dataclass
class WriterStats:
    rows: int = 0
    parts: int = 0
    invalid: int = 0


PartitionKey = tuple[str, int]


class LakeWriter:
    """Buffers records, writes parts and commits through ``commit``; knows nothing of Kafka."""

    def __init__(
        self,
        store: ObjectStore,
        tables: Mapping[str, LakeTable],
        policy: FlushPolicy,
        commit: Callable[[list[Position]], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.tables = tables
        self.policy = policy
        self.commit = commit
        self.clock = clock
        self.stats = WriterStats()
        self._buffers: dict[PartitionKey, PartitionBuffer] = {}
        self._intents: dict[PartitionKey, FlushIntent | None] = {}

    @property
    def buffered_rows(self) -> int:
        return sum(buffer.rows for buffer in self._buffers.values())

    def add(self, record: Record) -> None:
        topic, partition, offset = (
            str(record.topic()),
            int(record.partition() or 0),
            record.offset(),
        )
        key, offset = (topic, partition), int(offset or 0)
        buffer = self._buffers.get(key)
        if buffer is not None and buffer.ends_before(offset):
            self.commit([self._write(self._buffers.pop(key))])
            buffer = None
        if buffer is None:
            buffer = self._buffers[key] = self._open(topic, partition, offset)
        buffer.add(offset, self._row(buffer.table, record))

    def flush_due(self) -> None:
        now = self.clock()
        self._flush([key for key, buffer in self._buffers.items() if self.policy.due(buffer, now)])

    def flush(self, keys: Iterable[PartitionKey] | None = None) -> None:
        """Flush (all, or these partitions') buffers now, as on shutdown or a rebalance.

        An incomplete replayed range is dropped instead: the next reader of the partition
        replays it from the committed offset and cuts it at the recorded end.
        """
        wanted = set(self._buffers) if keys is None else set(keys) & set(self._buffers)
        incomplete = {key for key in wanted if not self._buffers[key].complete()}
        self.drop(incomplete)
        self._flush(sorted(wanted - incomplete))

    def drop(self, keys: Iterable[PartitionKey]) -> None:
        """Forget buffers without writing or committing (partitions lost to another reader)."""
        for key in keys:
            self._buffers.pop(key, None)

    def forget_intents(self, keys: Iterable[PartitionKey]) -> None:
        """Re-read the recorded ranges of newly assigned partitions: another writer may have
        flushed them since we last owned them."""
        for key in keys:
            self._intents.pop(key, None)

    def _flush(self, keys: list[PartitionKey]) -> None:
        positions = [self._write(self._buffers.pop(key)) for key in keys]
        if positions:
            self.commit(positions)

    def _open(self, topic: str, partition: int, offset: int) -> PartitionBuffer:
        buffer = PartitionBuffer(topic, partition, self.tables[topic], offset, self.clock())
        intent = self._intent((topic, partition))
        if intent is not None and intent.covers(offset):
            logger.info(
                "replaying recorded flush topic=%s partition=%d first=%d last=%d",
                topic,
                partition,
                intent.first,
                intent.last,
            )
            buffer.first_offset, buffer.pinned_last = intent.first, intent.last
        return buffer

    def _row(self, table: LakeTable, record: Record) -> dict[str, Any] | None:
        try:
            return table.row(record.value())
        except ValidationError as error:
            self.stats.invalid += 1
            logger.warning(
                "invalid message skipped topic=%s partition=%s offset=%s error=%s",
                record.topic(),
                record.partition(),
                record.offset(),
                error.errors(include_url=False, include_input=False)[:1],
            )
            return None

    def _intent(self, key: PartitionKey) -> FlushIntent | None:
        if key not in self._intents:
            try:
                document = json.loads(self.store.get_bytes(intent_key(*key)))
            except ObjectNotFoundError:
                document = None
            self._intents[key] = FlushIntent(**document) if document else None
        return self._intents[key]

    def _write(self, buffer: PartitionBuffer) -> Position:
        """Record the range, write one part per date, and return the offset to commit."""
        key = (buffer.topic, buffer.partition)
        if buffer.rows and buffer.pinned_last is None:
            intent = FlushIntent(*buffer.offset_range())
            self.store.put_bytes(intent_key(*key), json.dumps(intent.__dict__).encode())
            self._intents[key] = intent
        for date, rows in sorted(buffer.rows_by_date.items()):
            write_parquet(
                self.store,
                lake_key(buffer.table.prefix, date, buffer.part()),
                buffer.table.frame(rows),
            )
            self.stats.parts += 1
        self.stats.rows += buffer.rows
        logger.info(
            "flushed topic=%s partition=%d offsets=%d-%d rows=%d dates=%d",
            buffer.topic,
            buffer.partition,
            *buffer.offset_range(),
            buffer.rows,
            len(buffer.rows_by_date),
        )
        return Position(buffer.topic, buffer.partition, buffer.offset_range()[1] + 1)


# ---------------------------------------------------------------------------------------------
# The Kafka shell


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
