"""The lake writer: buffers records per partition, writes parts, commits through a callback.

It knows nothing of Kafka (records are anything with topic/partition/offset/value, commits a
function of positions), so the at-least-once, no-duplicate rules of :mod:`training.lake_writer`
are tested with fakes; :mod:`.loop` connects it to a consumer.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import ValidationError

from stream_app.store import (
    ObjectNotFoundError,
    ObjectStore,
    lake_key,
    write_parquet,
)
from training.lake_writer.buffers import (
    FlushIntent,
    FlushPolicy,
    LakeTable,
    PartitionBuffer,
    Position,
    intent_key,
)

logger = logging.getLogger(__name__)


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
