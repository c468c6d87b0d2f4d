"""A customer-state changelog for the bulk-recovery tests: records (overwrites, tombstones,
keys in several partitions, keys only Faust's decoder reads), the confluent-kafka messages a read
of them returns, and the table Faust's own recovery builds from them, to compare with.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from types import SimpleNamespace
from typing import Any

import faust
from confluent_kafka import KafkaError
from faust.stores import memory

from stream_app.settings import KafkaSettings
from stream_app.worker import bulk_recovery
from stream_app.worker.bulk_recovery import STORE_URL

Record = tuple[int, bytes | None, bytes | None]  # partition, raw key, raw value


class FakeChangelogMessage:
    """A confluent-kafka message as consume() returns it (the real ones need a broker)."""

    def __init__(
        self, partition: int, offset: int, key: bytes | None, value: bytes | None, error: Any = None
    ) -> None:
        self._partition, self._offset, self._key, self._value = partition, offset, key, value
        self._error = error

    def error(self) -> KafkaError | None:
        return self._error  # type: ignore[no-any-return]

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def partition(self) -> int | None:
        return self._partition

    def offset(self) -> int | None:
        return self._offset


def messages(records: Sequence[Record]) -> list[FakeChangelogMessage]:
    """Each record at the next offset of its partition, then each partition's end marker."""
    next_offset: dict[int, int] = {}
    out = []
    for partition, key, value in records:
        offset = next_offset.get(partition, 0)
        out.append(FakeChangelogMessage(partition, offset, key, value))
        next_offset[partition] = offset + 1
    eof = KafkaError(KafkaError._PARTITION_EOF)
    out += [FakeChangelogMessage(p, end, None, None, eof) for p, end in sorted(next_offset.items())]
    return out


def key(customer_id: str) -> bytes:
    return json.dumps(customer_id).encode()


# Overwrites, tombstones (one re-set after it, one not), keys in several partitions, keys the
# fast path leaves to Faust's decoder (escapes, non-ASCII), a customer's state of many bytes.
RECORDS: list[Record] = [
    (0, key("C1"), b"\x01first"),
    (1, key("C2"), b"\x01two"),
    (0, key("C1"), b"\x01second"),
    (2, key('quote"d'), b"\x01q"),
    (2, key("ünï"), b"\x01u"),
    (1, key("C3"), b"\x01three"),
    (1, key("C3"), None),
    (0, key("C4"), b"\x01four"),
    (0, key("C4"), None),
    (0, key("C4"), b"\x01four again"),
    (1, key("back\\slash"), b"\x01b" * 700),
    (2, key("C5"), b"\x01five"),
]


def new_app() -> faust.App:
    return faust.App("test-bulk-recovery", broker="kafka://127.0.0.1:1")  # never connected


def new_table(app: faust.App) -> Any:
    return app.Table(
        "customers",
        key_type=str,
        value_type=bytes,
        partitions=3,
        store=STORE_URL,
        options={bulk_recovery.KAFKA_OPTION: KafkaSettings(bootstrap_servers="127.0.0.1:1")},
    )


def recovered_by_faust(
    app: faust.App, table: Any, records: Iterable[Record]
) -> memory.Store[Any, Any]:
    """What Faust's own recovery builds: its memory store fed the changelog's events."""
    store: memory.Store[Any, Any] = memory.Store("memory://", app, table)
    events: list[Any] = []  # stand-ins for faust Events: the attributes the store reads
    for partition, raw_key, raw_value in records:
        events.append(
            SimpleNamespace(  # what the changelog channel decodes, with its serializers
                key=app.serializers.loads_key(str, raw_key, serializer="json"),
                value=app.serializers.loads_value(bytes, raw_value, serializer="raw"),
                message=SimpleNamespace(value=raw_value, partition=partition),
            )
        )
    for start in range(0, len(events), 5):  # in buffers, as the recovery loop applies them
        store.apply_changelog_batch(events[start : start + 5], table._to_key, table._to_value)
    return store


def ends_of(records: Sequence[Record]) -> dict[int, int]:
    ends: dict[int, int] = {}
    for partition, _, _ in records:
        ends[partition] = ends.get(partition, 0) + 1
    return ends
