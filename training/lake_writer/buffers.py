"""What a flush is made of: the lake tables, a partition's buffer, when it is due, its intent.

The rules that make replays exact live here as small values (a part is named after its offset
range; a buffer opened inside a recorded :class:`FlushIntent` is pinned to that range), apart
from the writer that moves them, so each rule reads and tests on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from pydantic import BaseModel

from stream_app.schemas import Label, Transaction
from stream_app.settings import KafkaSettings
from stream_app.store import (
    LABEL_COLUMNS,
    LAKE_LABELS,
    LAKE_TRANSACTIONS,
    TRANSACTION_COLUMNS,
)

INTENT_PREFIX = "lake/_writer"
OFFSET_DIGITS = 12  # zero-padded, so key order is offset order


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
