"""The bulk changelog read: the same table as Faust's own recovery, and how Faust is told."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from confluent_kafka import KafkaError
from faust.stores import memory

from stream_app.settings import KafkaSettings
from stream_app.worker import bulk_recovery
from stream_app.worker.bulk_recovery import STORE_URL
from stream_app.worker.changelog_read import ChangelogImage

Record = tuple[int, bytes | None, bytes | None]  # partition, raw key, raw value


class FakeMessage:
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


def messages(records: Sequence[Record]) -> list[FakeMessage]:
    """Each record at the next offset of its partition, then each partition's end marker."""
    next_offset: dict[int, int] = {}
    out = []
    for partition, key, value in records:
        offset = next_offset.get(partition, 0)
        out.append(FakeMessage(partition, offset, key, value))
        next_offset[partition] = offset + 1
    eof = KafkaError(KafkaError._PARTITION_EOF)
    out += [FakeMessage(p, end, None, None, eof) for p, end in sorted(next_offset.items())]
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


def recovered_in_bulk(table: Any, records: Sequence[Record]) -> ChangelogImage:
    store = table.data
    image = ChangelogImage(store._key_decoder(), store._value_decoder(), ends_of(records))
    assert image.apply(messages(records)) == {p for p, _, _ in records}
    return image


def test_the_bulk_read_builds_the_table_faust_recovery_builds() -> None:
    app = new_app()
    table = new_table(app)
    faust_store = recovered_by_faust(app, table, RECORDS)
    image = recovered_in_bulk(table, RECORDS)
    store = table.data
    store._add(image, touched=set())

    assert store.data == faust_store.data
    partitions = {k: p for p, keys in store._read_keys.items() for k in keys}
    assert partitions == faust_store._key_partition
    assert all(type(store.data[k]) is type(v) for k, v in faust_store.data.items())
    assert "C3" not in store.data and store.data["C4"] == b"\x01four again"
    assert image.messages == len(RECORDS)


def test_a_tombstone_removes_a_key_the_store_already_held() -> None:
    app = new_app()
    table = new_table(app)
    store = table.data
    store.data["C3"], store._key_partition["C3"] = b"\x01stale", 1
    store._add(recovered_in_bulk(table, RECORDS), touched=set())
    assert "C3" not in store.data and "C3" not in store._key_partition
    assert store.data["C1"] == b"\x01second"


def test_messages_written_after_the_read_started_are_left_to_faust() -> None:
    table = new_table(new_app())
    store = table.data
    image = ChangelogImage(store._key_decoder(), store._value_decoder(), {0: 2})
    later = [(0, key("C1"), b"\x01one"), (0, key("C2"), b"\x01two"), (0, key("C1"), b"\x01new")]
    assert image.apply(messages(later)[:2]) == {0}  # offset 1 is the last below the end
    assert image.apply(messages(later)[2:]) == {0}  # offset 2 and the end marker: not ours
    assert image.data == {"C1": b"\x01one", "C2": b"\x01two"}


@pytest.mark.parametrize(
    "raw",
    [
        b'"C00000001"',
        b'"with space"',
        b'"esc\\"aped"',
        b'"\\u00fcnicode"',
        '"ünï"'.encode(),
        b'"tab\tinside"',  # a raw control character: invalid JSON
        b"42",
        b'"unterminated',
        b"\xff\xfe",
        None,
    ],
)
def test_the_key_shortcut_decodes_exactly_as_faust_does(raw: bytes | None) -> None:
    app = new_app()
    decode = new_table(app).data._key_decoder()
    try:
        expected: Any = app.serializers.loads_key(str, raw, serializer="json")
    except Exception as exc:
        with pytest.raises(type(exc)):
            decode(raw)
    else:
        assert decode(raw) == expected and type(decode(raw)) is type(expected)


def test_an_undecodable_key_is_skipped_and_counted_as_faust_skips_it() -> None:
    table = new_table(new_app())
    image = recovered_in_bulk(table, [(0, b'"bad\tkey"', b"\x01x"), (0, key("ok"), b"\x01y")])
    assert image.data == {"ok": b"\x01y"} and image.undecodable == 1


def test_a_fatal_read_error_stops_the_read() -> None:
    table = new_table(new_app())
    image = ChangelogImage(table.data._key_decoder(), table.data._value_decoder(), {0: 1})
    fatal = KafkaError(KafkaError._FATAL, "fenced", fatal=True)
    with pytest.raises(RuntimeError, match="changelog read failed"):
        image.apply([FakeMessage(0, 0, None, None, fatal)])
    transient = KafkaError(KafkaError._TRANSPORT, "broker down")
    assert image.apply([FakeMessage(0, 0, None, None, transient)]) == set()  # retried by librdkafka
