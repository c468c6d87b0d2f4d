"""The bulk-recovery store in Faust's rebalance and recovery steps (the reads are fakes)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import SimpleNamespace
from typing import Any, NamedTuple

import pytest
from faust.types import TP

from stream_app.worker import bulk_recovery, changelog_read
from stream_app.worker.bulk_recovery import BulkRecoveryStore
from stream_app.worker.changelog_read import ChangelogImage
from tests.changelog_data import (
    RECORDS,
    Record,
    ends_of,
    messages,
    new_app,
    new_table,
    recovered_by_faust,
)


class FakeReads:
    """Stands in for changelog_read.read_changelog: the records' partitions, from a list."""

    def __init__(self, records: Sequence[Record], failures: int = 0) -> None:
        self.records, self.failures = records, failures
        self.calls: list[list[int]] = []

    def __call__(
        self,
        config: Mapping[str, Any],
        topic: str,
        partitions: Iterable[int],
        image: ChangelogImage,
        stop: threading.Event,
        on_ends: Any = lambda ends: None,
    ) -> ChangelogImage:
        wanted = list(partitions)
        self.calls.append(wanted)
        mine = [r for r in self.records if r[0] in wanted]
        if not image.ends:
            image.ends = {p: ends_of(mine).get(p, 0) for p in wanted}
        on_ends(dict(image.ends))
        if self.failures:
            self.failures -= 1
            image.apply(messages(mine)[:2])  # part of it read when the broker went away
            raise RuntimeError("no changelog message for 30 s")
        image.apply(messages(mine))
        return image


def changelog_tps(table: Any) -> tuple[str, set[TP]]:
    topic = table.changelog_topic.get_topic_name()
    return topic, {TP(topic, p) for p in range(3)}


def test_faust_is_told_how_far_the_store_reads_until_its_recovery_completes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reads = FakeReads(RECORDS)
    monkeypatch.setattr(changelog_read, "read_changelog", reads)
    table = new_table(new_app())
    store: BulkRecoveryStore = table.data
    topic, tps = changelog_tps(table)
    other = TP("transactions", 0)  # source partitions are not the store's to read

    async def scenario() -> None:
        await store.on_rebalance(tps | {other}, set(), tps | {other})
        assert reads.calls == [[0, 1, 2]]
        assert {tp.partition: store.persisted_offset(tp) for tp in tps} == {0: 4, 1: 3, 2: 2}

        # A new generation before recovery ran: the promise stays, nothing is read again.
        await store.on_rebalance(tps, {TP(topic, 2)}, set())
        assert reads.calls == [[0, 1, 2]]
        assert store.persisted_offset(TP(topic, 2)) is None  # revoked
        assert store.persisted_offset(TP(topic, 0)) == 4

        await store.on_recovery_completed({TP(topic, 0), TP(topic, 1)}, set())
        assert store.data["C1"] == b"\x01second"
        assert "C5" not in store.data  # partition 2's keys: revoked, dropped as Faust drops them
        assert all(store.persisted_offset(tp) is None for tp in tps)  # Faust's offsets now

        # Assigned again later: read again from the beginning, as Faust's own recovery would.
        await store.on_rebalance(tps, set(), {TP(topic, 2)})
        assert reads.calls == [[0, 1, 2], [2]]
        assert store.persisted_offset(TP(topic, 2)) == 2

    asyncio.run(scenario())


def faust_event(
    topic: str, partition: int, customer: str, value: bytes | None, offset: int = 0
) -> Any:
    message = SimpleNamespace(topic=topic, partition=partition, value=value, offset=offset)
    return SimpleNamespace(key=customer, value=value, message=message)


def test_keys_of_partitions_given_up_leave_the_store_as_faust_drops_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(changelog_read, "read_changelog", FakeReads(RECORDS))
    table = new_table(new_app())
    store: BulkRecoveryStore = table.data
    topic, tps = changelog_tps(table)
    kept = {TP(topic, 0), TP(topic, 2)}
    faust_store = recovered_by_faust(new_app(), table, RECORDS)
    # A key Faust's own recovery moved to a kept partition later stays, in both stores.
    moved = faust_event(topic, 2, "C2", b"\x01moved")

    async def scenario() -> None:
        await store.on_rebalance(tps, set(), tps)
        store.apply_changelog_batch([moved], table._to_key, table._to_value)
        await store.on_recovery_completed(kept, set())
        faust_store.apply_changelog_batch([moved], table._to_key, table._to_value)
        await faust_store.on_recovery_completed(kept, set())

    asyncio.run(scenario())
    assert dict(store.data) == faust_store.data
    assert store.data["C2"] == b"\x01moved" and "C3" not in store.data


def recovered_with_faust_applying(
    monkeypatch: pytest.MonkeyPatch, later: Callable[[str], list[Any]]
) -> BulkRecoveryStore:
    """A store whose bulk read gives RECORDS, while Faust's own recovery applies ``later(topic)``
    (records written after the read's end offsets were taken) before the recovery completes."""
    monkeypatch.setattr(changelog_read, "read_changelog", FakeReads(RECORDS))
    table = new_table(new_app())
    store: BulkRecoveryStore = table.data
    topic, tps = changelog_tps(table)

    async def scenario() -> None:
        await store.on_rebalance(tps, set(), tps)
        store.apply_changelog_batch(later(topic), table._to_key, table._to_value)
        await store.on_recovery_completed(tps, set())

    asyncio.run(scenario())
    return store


def test_what_faust_applies_after_the_read_ends_wins_over_the_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def later(topic: str) -> list[Any]:
        return [faust_event(topic, 0, "C1", b"\x01third"), faust_event(topic, 2, "C5", None)]

    store = recovered_with_faust_applying(monkeypatch, later)
    assert store.data["C1"] == b"\x01third" and "C5" not in store.data
    assert store.data["C2"] == b"\x01two"


def test_a_tombstone_faust_applies_into_an_empty_store_is_not_undone_by_the_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = recovered_with_faust_applying(
        monkeypatch, lambda topic: [faust_event(topic, 2, "C5", None)]
    )
    assert "C5" not in store.data and store.data["C1"] == b"\x01second"


def test_two_recoveries_completing_at_once_add_each_read_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(changelog_read, "read_changelog", FakeReads(RECORDS))
    table = new_table(new_app())
    store: BulkRecoveryStore = table.data
    topic, tps = changelog_tps(table)

    async def scenario() -> None:
        await store.on_rebalance({TP(topic, 0)}, set(), {TP(topic, 0)})
        await store.on_rebalance(tps, set(), {TP(topic, 1), TP(topic, 2)})
        assert len(store._pending) == 2
        await asyncio.gather(
            store.on_recovery_completed(tps, set()), store.on_recovery_completed(tps, set())
        )

    asyncio.run(scenario())
    assert (
        store._pending == []
        and dict(store.data) == recovered_by_faust(new_app(), table, RECORDS).data
    )
    assert sorted(len(keys) for keys in store._read_keys.values()) == [2, 2, 3]


def test_a_failed_read_is_read_again_before_recovery_completes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reads = FakeReads(RECORDS, failures=1)
    monkeypatch.setattr(changelog_read, "read_changelog", reads)
    monkeypatch.setattr(bulk_recovery, "RETRY_SECONDS", 0.0)
    table = new_table(new_app())
    _, tps = changelog_tps(table)

    async def scenario() -> None:
        await table.data.on_rebalance(tps, set(), tps)
        await table.data.on_recovery_completed(tps, set())

    asyncio.run(scenario())
    assert reads.calls == [[0, 1, 2], [0, 1, 2]]
    faust_store = recovered_by_faust(new_app(), table, RECORDS)
    assert dict(table.data.data) == faust_store.data


def test_without_end_offsets_in_time_nothing_is_promised_and_faust_recovers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def unreachable(*args: Any) -> ChangelogImage:
        raise RuntimeError("broker unreachable")

    monkeypatch.setattr(changelog_read, "read_changelog", unreachable)
    table = new_table(new_app())
    _, tps = changelog_tps(table)
    asyncio.run(table.data.on_rebalance(tps, set(), tps))
    assert all(table.data.persisted_offset(tp) is None for tp in tps)
    assert dict(table.data.data) == {}


class StandbySetup(NamedTuple):
    """A bulk store holding partitions 0 and 1 active and partition 2 as standby; the assigned
    sets are what Faust's assignor answers, and a test may change them."""

    table: Any
    store: BulkRecoveryStore
    topic: str
    tps: set[TP]
    actives: set[TP]
    standby: TP
    assigned_actives: set[TP]
    assigned_standbys: set[TP]


def standby_setup(monkeypatch: pytest.MonkeyPatch) -> StandbySetup:
    monkeypatch.setattr(changelog_read, "read_changelog", FakeReads(RECORDS))
    table = new_table(new_app())
    store: BulkRecoveryStore = table.data
    topic, tps = changelog_tps(table)
    actives, standby = {TP(topic, 0), TP(topic, 1)}, TP(topic, 2)
    assigned_actives, assigned_standbys = set(actives), {standby}
    monkeypatch.setattr(store.app.assignor, "assigned_actives", lambda: assigned_actives)
    monkeypatch.setattr(store.app.assignor, "assigned_standbys", lambda: assigned_standbys)
    return StandbySetup(
        table, store, topic, tps, actives, standby, assigned_actives, assigned_standbys
    )


def test_a_standby_partition_keeps_its_keys_and_a_takeover_resumes_where_the_copy_is(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    table, store, topic, tps, actives, standby, assigned_actives, assigned_standbys = standby_setup(
        monkeypatch
    )

    async def scenario() -> None:
        await store.on_rebalance(tps, set(), tps)
        await store.on_recovery_completed(actives, {standby})
        # Faust's memory store would drop partition 2's keys here (it is not active).
        assert store.data["C5"] == b"\x01five"
        assert store.persisted_offset(standby) == 2  # the read's promise: its last offset
        # Faust's standby reading applies what is written later; the store follows it.
        later = faust_event(topic, 2, "C5", b"\x01five later", offset=3)
        store.apply_changelog_batch([later], table._to_key, table._to_value)
        assert store.persisted_offset(standby) == 3
        assert store.persisted_offset(TP(topic, 0)) is None  # active: Faust's own offsets

        # The other worker leaves: partition 2 becomes active here, and Faust's recovery is
        # told the store holds it up to offset 3 (it reads only what comes after).
        assigned_actives.update(tps)
        assigned_standbys.clear()
        with caplog.at_level("INFO", logger=bulk_recovery.__name__):
            await store.on_rebalance(tps, set(), set())
        assert store.persisted_offset(standby) == 3
        assert "taken over from the standby copy at offset 3" in caplog.text
        await store.on_recovery_completed(tps, set())
        assert store.persisted_offset(standby) is None  # active now: written by the table
        assert store.data["C5"] == b"\x01five later"

    asyncio.run(scenario())


def test_a_standby_copy_that_missed_an_offset_is_not_offered_then_read_again(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    table, store, topic, tps, actives, standby, _, _ = standby_setup(monkeypatch)

    async def scenario() -> None:
        await store.on_rebalance(tps, set(), tps)
        await store.on_recovery_completed(actives, {standby})
        events = [faust_event(topic, 2, "C5", b"\x01x", offset=o) for o in (3, 6)]
        with caplog.at_level("WARNING", logger="stream_app.worker.standby_copy"):
            store.apply_changelog_batch(events, table._to_key, table._to_value)
        assert "missed offsets 4 to 5" in caplog.text
        # Faust's queue lost offsets 4 and 5: the copy is not offered for a takeover...
        assert store.persisted_offset(standby) is None
        # ...and at the next rebalance Faust reads the standby partition from its start.
        await store.on_rebalance(tps, set(), set())
        assert store.persisted_offset(standby) == -1

    asyncio.run(scenario())


def test_a_standby_partition_given_up_forgets_its_offset_and_its_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, store, _, tps, actives, standby, _, standbys = standby_setup(monkeypatch)

    async def scenario() -> None:
        await store.on_rebalance(tps, set(), tps)
        await store.on_recovery_completed(actives, {standby})
        standbys.clear()
        await store.on_rebalance(actives, {standby}, set())
        assert store.persisted_offset(standby) is None
        await store.on_recovery_completed(actives, set())

    asyncio.run(scenario())
    assert "C5" not in store.data and store.data["C1"] == b"\x01second"
    assert store._standbys.copies() == {}


def test_the_table_uses_the_bulk_store() -> None:
    assert type(new_table(new_app()).data) is BulkRecoveryStore
