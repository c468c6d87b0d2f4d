"""The lake writer: part names, flush policy, the simulator's layout, commit after write, replay."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from producers.simulator import Simulator, SimulatorConfig
from producers.sinks import LakeSink
from stream_app.schemas import Label, Transaction
from stream_app.settings import KafkaSettings
from stream_app.store import LocalStore, ObjectStore, lake_key
from tests.fakes import FakeMessage
from training.dataset import load_lake
from training.lake_writer.buffers import (
    FlushPolicy,
    LakeTable,
    PartitionBuffer,
    Position,
    intent_key,
    part_name,
    tables_for,
)
from training.lake_writer.writer import LakeWriter

TOPICS = KafkaSettings().topics
TX_TOPIC, LABEL_TOPIC = TOPICS.transactions, TOPICS.labels
TABLES = tables_for(KafkaSettings())
DAY = datetime(2025, 3, 1, tzinfo=UTC)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Committer:
    """Records commits, and what the lake held at each one (writes must come first)."""

    def __init__(self, store: ObjectStore, fail_on_call: int | None = None) -> None:
        self.store = store
        self.fail_on_call = fail_on_call
        self.commits: list[list[Position]] = []
        self.parts_at_commit: list[int] = []

    def __call__(self, positions: list[Position]) -> None:
        if self.fail_on_call == len(self.commits):
            raise ConnectionError("the process died before committing")
        self.commits.append(positions)
        self.parts_at_commit.append(len(parquet_keys(self.store)))


def parquet_keys(store: ObjectStore, prefix: str = "lake/") -> list[str]:
    return [key for key in store.list(prefix) if key.endswith(".parquet")]


def transaction(index: int, at: datetime) -> Transaction:
    return Transaction(
        transaction_id=f"t{index}",
        customer_id=f"c{index % 3}",
        amount=10.0 + index,
        merchant_category="grocery",
        transaction_type="pos",
        device_id="d1",
        geo_location="US-CA",
        timestamp=at,
        merchant_id="m1",
        currency="USD",
    )


def tx_records(offsets: range, partition: int = 0) -> list[FakeMessage]:
    return [
        FakeMessage(TX_TOPIC, partition, o, transaction(o, DAY + timedelta(minutes=o)).to_bytes())
        for o in offsets
    ]


def writer_for(
    store: ObjectStore, commit: Committer, max_rows: int = 1000, clock: FakeClock | None = None
) -> LakeWriter:
    return LakeWriter(store, TABLES, FlushPolicy(max_rows, 60.0), commit, clock or FakeClock())


def lake_rows(store: ObjectStore, table: str = "lake/transactions") -> pd.DataFrame:
    frames = [pq.read_table(io.BytesIO(store.get_bytes(k))).to_pandas() for k in store.list(table)]
    combined: pd.DataFrame = pd.concat(frames, ignore_index=True)
    return combined


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LocalStore]:
    yield LocalStore(tmp_path / "store")


# --- names and policy ----------------------------------------------------------------------------


def test_part_names_carry_topic_partition_and_padded_offsets_so_key_order_is_offset_order() -> None:
    assert part_name("transactions", 2, 1200, 1999) == "transactions-2-000000001200-000000001999"
    early, late = part_name("t", 0, 9, 99), part_name("t", 0, 100, 150)
    assert sorted([late, early]) == [early, late]
    assert lake_key("lake/labels", "2025-03-01", part_name("labels", 0, 1, 2)) == (
        "lake/labels/date=2025-03-01/labels-0-000000000001-000000000002.parquet"
    )
    assert intent_key("transactions", 2) == "lake/_writer/transactions/2.json"


def buffer(rows: int, opened_at: float = 0.0, pinned_last: int | None = None) -> PartitionBuffer:
    table = TABLES[TX_TOPIC]
    result = PartitionBuffer(TX_TOPIC, 0, table, 0, opened_at, pinned_last=pinned_last)
    for offset in range(rows):
        result.add(offset, table.row(transaction(offset, DAY).to_bytes()))
    return result


def test_flush_policy_fires_on_rows_or_age_and_replays_only_at_the_recorded_end() -> None:
    policy = FlushPolicy(max_rows=3, max_seconds=10.0)
    assert not policy.due(buffer(2), now=9.9)
    assert policy.due(buffer(3), now=0.0)
    assert policy.due(buffer(0), now=10.0)  # invalid-only buffers still get committed
    assert not policy.due(buffer(4, pinned_last=4), now=99.0)  # offsets 0..3 < recorded end 4
    assert policy.due(buffer(5, pinned_last=4), now=0.0)


# --- layout -------------------------------------------------------------------------------------


def wire_messages(frame: pd.DataFrame, table: LakeTable, topic: str) -> list[FakeMessage]:
    model = Transaction if table.model is Transaction else Label
    return [
        FakeMessage(topic, 0, offset, model.model_validate(row).to_bytes())
        for offset, row in enumerate(frame.loc[:, list(table.columns)].to_dict("records"))
    ]


def test_same_rows_through_kafka_give_the_simulators_parquet_schema_and_values(
    tmp_path: Path,
) -> None:
    """What the simulator writes straight to the lake and what arrives through the topics must be
    interchangeable, or one lake holding both would not read as one table."""
    batch = list(Simulator(SimulatorConfig(seed=3, n_customers=200)).iter_days(3))[-1]
    assert len(batch.released_labels) > 0
    simulated, archived = LocalStore(tmp_path / "sim"), LocalStore(tmp_path / "kafka")
    LakeSink(simulated).write_day(batch)
    writer = writer_for(archived, Committer(archived))
    for record in wire_messages(batch.transactions, TABLES[TX_TOPIC], TX_TOPIC) + wire_messages(
        batch.released_labels, TABLES[LABEL_TOPIC], LABEL_TOPIC
    ):
        writer.add(record)
    writer.flush()
    for table, order in (("lake/transactions", "transaction_id"), ("lake/labels", "labeled_at")):
        (expected_key,), (actual_key,) = (
            parquet_keys(simulated, table),
            parquet_keys(archived, table),
        )
        expected = pq.read_table(io.BytesIO(simulated.get_bytes(expected_key)))
        actual = pq.read_table(io.BytesIO(archived.get_bytes(actual_key)))
        assert actual.schema.remove_metadata() == expected.schema.remove_metadata()
        pd.testing.assert_frame_equal(
            actual.to_pandas().sort_values([order, "transaction_id"], ignore_index=True),
            expected.to_pandas().sort_values([order, "transaction_id"], ignore_index=True),
        )


def test_rows_land_in_the_partition_of_their_own_date_and_training_reads_them(
    store: LocalStore,
) -> None:
    before_midnight = DAY - timedelta(minutes=1)
    records = [
        FakeMessage(TX_TOPIC, 1, 0, transaction(0, before_midnight).to_bytes()),
        FakeMessage(TX_TOPIC, 1, 1, transaction(1, DAY).to_bytes()),
        FakeMessage(
            LABEL_TOPIC,
            0,
            7,
            Label(
                transaction_id="t0", is_fraud=True, labeled_at=DAY + timedelta(hours=5)
            ).to_bytes(),
        ),
    ]
    writer = writer_for(store, Committer(store))
    for record in records:
        writer.add(record)
    writer.flush()
    name = part_name(TX_TOPIC, 1, 0, 1)
    assert parquet_keys(store) == [
        f"lake/labels/date=2025-03-01/{part_name(LABEL_TOPIC, 0, 7, 7)}.parquet",
        f"lake/transactions/date=2025-02-28/{name}.parquet",
        f"lake/transactions/date=2025-03-01/{name}.parquet",
    ]
    transactions, labels = load_lake(store, pd.Timestamp(DAY + timedelta(days=1)), 2)
    assert sorted(transactions["transaction_id"]) == ["t0", "t1"]
    assert labels[["transaction_id", "is_fraud"]].to_dict("records") == [
        {"transaction_id": "t0", "is_fraud": True}
    ]


# --- delivery ----------------------------------------------------------------------------------


def test_offsets_are_committed_after_the_parts_are_written(store: LocalStore) -> None:
    commit = Committer(store)
    writer = writer_for(store, commit, max_rows=4)
    for record in tx_records(range(10)):
        writer.add(record)
        writer.flush_due()
    assert commit.commits == [[Position(TX_TOPIC, 0, 4)], [Position(TX_TOPIC, 0, 8)]]
    assert commit.parts_at_commit == [1, 2]
    assert writer.buffered_rows == 2


def test_time_limit_flushes_a_quiet_partition(store: LocalStore) -> None:
    clock, commit = FakeClock(), Committer(store)
    writer = writer_for(store, commit, clock=clock)
    writer.add(tx_records(range(1))[0])
    clock.now += 59.9
    writer.flush_due()
    assert commit.commits == []
    clock.now += 0.1
    writer.flush_due()
    assert commit.commits == [[Position(TX_TOPIC, 0, 1)]]


def test_invalid_messages_are_counted_skipped_and_committed_past(store: LocalStore) -> None:
    commit = Committer(store)
    writer = writer_for(store, commit)
    good = tx_records(range(3))
    for record in (good[0], FakeMessage(TX_TOPIC, 0, 1, b'{"amount": -1}'), good[2]):
        writer.add(record)
    writer.flush()
    assert writer.stats.invalid == 1
    assert writer.stats.rows == 2
    assert sorted(lake_rows(store)["transaction_id"]) == ["t0", "t2"]
    assert commit.commits == [[Position(TX_TOPIC, 0, 3)]]


def test_a_replay_after_a_crash_rewrites_the_same_parts_without_duplicate_rows(
    store: LocalStore,
) -> None:
    """Crash after writing offsets 4-7 but before committing them; the next writer, even with a
    different row limit, cuts the replay at 7 again, so the same part is overwritten."""
    crashed = writer_for(store, Committer(store, fail_on_call=1), max_rows=4)
    with pytest.raises(ConnectionError):
        for record in tx_records(range(10)):
            crashed.add(record)
            crashed.flush_due()
    replay_commit = Committer(store)
    replay = writer_for(store, replay_commit, max_rows=3)
    for record in tx_records(range(4, 10)):  # from the last committed offset
        replay.add(record)
        replay.flush_due()
    replay.flush()
    assert [key.rsplit("/", 1)[1] for key in parquet_keys(store)] == [
        f"{part_name(TX_TOPIC, 0, first, last)}.parquet" for first, last in [(0, 3), (4, 7), (8, 9)]
    ]
    rows = lake_rows(store)["transaction_id"]
    assert sorted(rows) == sorted(f"t{offset}" for offset in range(10))
    assert replay_commit.commits == [[Position(TX_TOPIC, 0, 8)], [Position(TX_TOPIC, 0, 10)]]


def test_an_unfinished_replay_is_dropped_on_revoke_not_written_short(store: LocalStore) -> None:
    """Writing offsets 4-5 under the recorded name 4-7 and committing 6 would lose rows 6-7 when
    the next owner rewrites that name from offset 6."""
    with pytest.raises(ConnectionError):
        crashed = writer_for(store, Committer(store, fail_on_call=0), max_rows=4)
        for record in tx_records(range(4, 8)):
            crashed.add(record)
            crashed.flush_due()
    before = {key: store.get_bytes(key) for key in parquet_keys(store)}
    commit = Committer(store)
    replay = writer_for(store, commit, max_rows=4)
    for record in tx_records(range(4, 6)):
        replay.add(record)
    replay.flush([(TX_TOPIC, 0)])
    assert commit.commits == []
    assert {key: store.get_bytes(key) for key in parquet_keys(store)} == before
