"""The bulk changelog read: the same table as Faust's own recovery, and how Faust is told."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from confluent_kafka import KafkaError

from stream_app.worker.changelog_read import ChangelogImage
from tests.changelog_data import (
    RECORDS,
    FakeChangelogMessage,
    Record,
    ends_of,
    key,
    messages,
    new_app,
    new_table,
    recovered_by_faust,
)


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
        image.apply([FakeChangelogMessage(0, 0, None, None, fatal)])
    transient = KafkaError(KafkaError._TRANSPORT, "broker down")
    assert (
        image.apply([FakeChangelogMessage(0, 0, None, None, transient)]) == set()
    )  # retried by librdkafka
