"""The bulk changelog read: the same table as Faust's own recovery, and how Faust is told."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from confluent_kafka import KafkaError
from faust.stores import memory
from faust.types import TP

from stream_app.settings import KafkaSettings
from stream_app.worker import bulk_recovery
from stream_app.worker.bulk_recovery import (
    STORE_URL,
    BulkRecoveryStore,
    ChangelogImage,
)

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


def recovered_in_bulk(table: Any, records: Sequence[Record]) -> ChangelogImage:
    store = table.data
    image = ChangelogImage(store._key_decoder(), store._value_decoder())
    assert image.apply(messages(records)) == {p for p, _, _ in records}
    return image


def test_the_bulk_read_builds_the_table_faust_recovery_builds() -> None:
    app = new_app()
    table = new_table(app)
    faust_store = recovered_by_faust(app, table, RECORDS)
    image = recovered_in_bulk(table, RECORDS)
    store = table.data
    image.into(store.data, store._key_partition)

    assert store.data == faust_store.data
    assert store._key_partition == faust_store._key_partition
    assert all(type(store.data[k]) is type(v) for k, v in faust_store.data.items())
    assert "C3" not in store.data and store.data["C4"] == b"\x01four again"
    assert image.read_through == {0: 4, 1: 3, 2: 2}  # the last offset of each partition
    assert image.messages == len(RECORDS)


def test_a_tombstone_removes_a_key_the_store_already_held() -> None:
    app = new_app()
    table = new_table(app)
    store = table.data
    store.data["C3"], store._key_partition["C3"] = b"\x01stale", 1
    recovered_in_bulk(table, RECORDS).into(store.data, store._key_partition)
    assert "C3" not in store.data and "C3" not in store._key_partition


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
    assert image.read_through == {0: 1}


def test_a_fatal_read_error_stops_the_read() -> None:
    table = new_table(new_app())
    image = ChangelogImage(table.data._key_decoder(), table.data._value_decoder())
    fatal = KafkaError(KafkaError._FATAL, "fenced", fatal=True)
    with pytest.raises(RuntimeError, match="changelog read failed"):
        image.apply([FakeMessage(0, 0, None, None, fatal)])
    transient = KafkaError(KafkaError._TRANSPORT, "broker down")
    assert image.apply([FakeMessage(0, 0, None, None, transient)]) == set()  # retried by librdkafka


def fake_reader(records: Sequence[Record], calls: list[set[int]]) -> Any:
    def read(
        config: Mapping[str, Any],
        topic: str,
        partitions: Iterable[int],
        image: ChangelogImage,
        stop: threading.Event,
    ) -> ChangelogImage:
        wanted = set(partitions)
        calls.append(wanted)
        image.apply(messages([r for r in records if r[0] in wanted]))
        return image

    return read


def test_faust_is_told_how_far_the_store_was_read_until_its_recovery_completes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[set[int]] = []
    monkeypatch.setattr(bulk_recovery, "read_changelog", fake_reader(RECORDS, calls))
    table = new_table(new_app())
    store: BulkRecoveryStore = table.data
    topic = table.changelog_topic.get_topic_name()
    tps = {TP(topic, p) for p in range(3)}
    other = TP("transactions", 0)  # source partitions are not the store's to read

    asyncio.run(store.on_rebalance(tps | {other}, set(), tps | {other}))
    assert calls == [{0, 1, 2}]
    assert {tp.partition: store.persisted_offset(tp) for tp in tps} == {0: 4, 1: 3, 2: 2}
    assert store.data["C1"] == b"\x01second"

    # A new generation before recovery ran: what was read stays, nothing is read again.
    asyncio.run(store.on_rebalance(tps, {TP(topic, 2)}, set()))
    assert calls == [{0, 1, 2}]
    assert store.persisted_offset(TP(topic, 2)) is None  # revoked
    assert store.persisted_offset(TP(topic, 0)) == 4

    asyncio.run(store.on_recovery_completed({TP(topic, 0), TP(topic, 1)}, set()))
    assert all(store.persisted_offset(tp) is None for tp in tps)  # Faust's offsets from now on

    # Assigned again later: read again from the beginning, as Faust's own recovery would.
    asyncio.run(store.on_rebalance(tps, set(), {TP(topic, 2)}))
    assert calls == [{0, 1, 2}, {2}]
    assert store.persisted_offset(TP(topic, 2)) == 2


def test_a_failed_bulk_read_keeps_nothing_and_leaves_recovery_to_faust(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def failing(*args: Any) -> ChangelogImage:
        image: ChangelogImage = args[3]
        image.apply(messages(RECORDS[:3]))  # part of it was read when the broker went away
        raise RuntimeError("no changelog message for 30 s")

    monkeypatch.setattr(bulk_recovery, "read_changelog", failing)
    table = new_table(new_app())
    topic = table.changelog_topic.get_topic_name()
    tps = {TP(topic, p) for p in range(3)}
    asyncio.run(table.data.on_rebalance(tps, set(), tps))
    assert dict(table.data.data) == {}
    assert all(table.data.persisted_offset(tp) is None for tp in tps)


def test_the_table_uses_the_bulk_store() -> None:
    assert type(new_table(new_app()).data) is BulkRecoveryStore


# What the store relies on in the pinned faust-streaming (0.15.3), by the sha256 of its source:
# - Recovery._add: a partition's recovery starts at the store's persisted_offset;
# - Recovery._build_offsets / _seek_offsets: that offset is only ever moved forward, and seeked to;
# - Recovery._slurp_changelogs: a message at or below the offset already seen is skipped;
# - memory.Store.apply_changelog_batch / _create_batch_iterator / on_recovery_completed: the
#   rules ChangelogImage applies (last value wins, None deletes, keys remember their partition);
# - TableManager.on_rebalance: tables (so their stores) rebalance before the recovery does;
# - Collection._new_store and FactoryMapping.by_url: the table finds the store by URL scheme.
FAUST_SOURCES_SHA256 = {
    "Recovery._add": "1584a197b11bf835c0e3c497952413ce5a5f13078fdd88a9dcfd60ea1e125fa6",
    "Recovery._build_offsets": "27eec86be06cb51f66dfd2572be2f9b41acd22c3570239bb5c554bd94e59a1d6",
    "Recovery._seek_offsets": "19598ca63d94d250e49d2dfe48a3c48ecbdf65ee4f1a2871abda51d28b335e55",
    "Recovery._slurp_changelogs": (
        "7825c7e50f766d5ab0fd246b63420ea0dfcd732d005f1057cc9da656ff5d3967"
    ),
    "Store.apply_changelog_batch": (
        "71863e3cd727aac2001c4f19a393c637275eab36056c9a2d395ed1c7528e7647"
    ),
    "Store._create_batch_iterator": (
        "b082c8bcc040382347025bd5b08d31700b2e6b1d2c0232f1de551f1b5495d1ed"
    ),
    "Store.on_recovery_completed": (
        "a00bef343e139602606996e88809e62731a9113691ae678095266a52e0e0b013"
    ),
    "TableManager.on_rebalance": "2d2c23a07bf5432854a01ad790af19bb7e7acc8062a6ac2934ff0db94bf3924a",
    "Collection._new_store": "914a2bda605d38f5b5bdf07f2d0b01ef565dd036b2b3e5391c54321094daf4b5",
    "FactoryMapping.by_url": "9020f00af2bc4f62f525985b51daa0687f9000d5b1f737eb1b41fa35c8b94dc5",
}


def faust_sources() -> dict[str, str]:
    from faust.tables.base import Collection
    from faust.tables.manager import TableManager
    from faust.tables.recovery import Recovery
    from mode.utils.imports import FactoryMapping

    functions: list[Any] = [
        Recovery._add,
        Recovery._build_offsets,
        Recovery._seek_offsets,
        Recovery._slurp_changelogs.fun,  # a mode ServiceTask: the coroutine function inside
        memory.Store.apply_changelog_batch,
        memory.Store._create_batch_iterator,
        memory.Store.on_recovery_completed,
        TableManager.on_rebalance,
        Collection._new_store,
        FactoryMapping.by_url,
    ]
    return {function.__qualname__: inspect.getsource(function) for function in functions}


def test_the_faust_recovery_code_the_store_relies_on_is_unchanged() -> None:
    # An upgrade of faust-streaming that changes any of these must be looked at (and the guard's
    # hashes updated), not silently run past: see stream_app/worker/bulk_recovery.py.
    changed = [
        name
        for name, source in faust_sources().items()
        if hashlib.sha256(source.encode()).hexdigest() != FAUST_SOURCES_SHA256.get(name)
    ]
    assert changed == [], f"faust changed {changed}: re-check stream_app/worker/bulk_recovery.py"
