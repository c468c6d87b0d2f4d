"""Merchant volume from every partition: the reader's frontiers and the scorer that uses them.

The reader is driven without a broker (its ``read`` and ``confirm_ends`` steps with fake
messages and a fake consumer); the real reader on the real broker, with two workers, is in
tests/integration/test_merchant_volume.py."""

from __future__ import annotations

import threading
import time
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import numpy as np
import pandas as pd
from confluent_kafka import KafkaError, TopicPartition
from prometheus_client import CollectorRegistry

from stream_app.features import FEATURE_NAMES, VOLUME_LAG_US, offline_features, to_micros
from stream_app.metrics import create_worker_metrics
from stream_app.processor import BatchScorer
from stream_app.schemas import Transaction
from stream_app.scoring import Thresholds
from stream_app.settings import KafkaSettings
from stream_app.validation import RawRecord
from stream_app.worker.merchant_volume_reader import MerchantVolumeReader
from tests.factories import amount_model, simulated_transactions

SECOND_US = 1_000_000
START = datetime.now(UTC) - timedelta(hours=2)


class FakeError:
    def __init__(self, code: int) -> None:
        self._code = code

    def code(self) -> int:
        return self._code


@dataclass
class FakeMessage:
    partition_: int
    value_: bytes | None = None
    eof: bool = False

    def error(self) -> FakeError | None:
        return FakeError(KafkaError._PARTITION_EOF) if self.eof else None

    def partition(self) -> int:
        return self.partition_

    def value(self) -> bytes | None:
        return self.value_


class FakeConsumer:
    """Positions and high watermarks of a consumer at the end of ``ends`` partitions."""

    def __init__(self, positions: dict[int, int], highs: dict[int, int]) -> None:
        self.positions, self.highs = positions, highs

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [
            TopicPartition(p.topic, p.partition, self.positions[p.partition]) for p in partitions
        ]

    def get_watermark_offsets(self, partition: TopicPartition, **_: Any) -> tuple[int, int]:
        return 0, self.highs[partition.partition]


def payment(txn_id: str, seconds: float, merchant: str = "m1") -> Transaction:
    return Transaction(
        transaction_id=txn_id,
        customer_id="c1",
        amount=10.0,
        merchant_category="grocery",
        transaction_type="online",
        device_id="d1",
        geo_location="IN-MH",
        timestamp=START + timedelta(seconds=seconds),
        merchant_id=merchant,
    )


def at(partition: int, txn: Transaction) -> FakeMessage:
    return FakeMessage(partition, txn.to_bytes())


def new_reader() -> MerchantVolumeReader:
    reader = MerchantVolumeReader(
        KafkaSettings(), "transactions", timedelta(days=2), CollectorRegistry()
    )
    reader.track([0, 1])
    return reader


def micros_after_start(seconds: float) -> int:
    return to_micros(START) + int(seconds * SECOND_US)


def test_a_wait_passes_only_once_every_partition_is_read_past_the_as_of_time() -> None:
    reader = new_reader()
    reader.read(cast(Any, [at(0, payment("a", 100)), at(1, payment("b", 50))]))

    assert reader.wait_until(micros_after_start(40), timeout_seconds=0.01)
    assert not reader.wait_until(micros_after_start(60), timeout_seconds=0.01)
    assert reader.wait_timeouts._value.get() == 1  # counted
    reader.read(cast(Any, [at(1, payment("c", 70))]))
    assert reader.wait_until(micros_after_start(60), timeout_seconds=0.01)
    assert [t for _, t in reader.drain()] == [micros_after_start(s) for s in (100, 50, 70)]


def test_a_partition_at_its_end_passes_only_when_its_end_is_confirmed_after_the_wait_began() -> (
    None
):
    reader = new_reader()
    reader.read(cast(Any, [at(0, payment("a", 100)), at(1, payment("b", 50))]))
    reader.read(cast(Any, [FakeMessage(1, eof=True)]))
    # The end seen before the wait is not enough: a record may have landed since.
    assert not reader.wait_until(micros_after_start(60), timeout_seconds=0.01)
    fake = cast(Any, FakeConsumer({1: 2}, {1: 2}))
    reader.confirm_ends(fake, fake)  # still at the end, now
    assert reader.frontiers() == {0: micros_after_start(100), 1: "end"}


def test_a_partition_whose_end_moved_on_is_no_longer_at_its_end() -> None:
    reader = new_reader()
    reader.read(cast(Any, [at(0, payment("a", 100)), FakeMessage(1, eof=True)]))
    assert not reader.wait_until(micros_after_start(60), timeout_seconds=0.01)
    fake = cast(Any, FakeConsumer({1: 2}, {1: 3}))
    reader.confirm_ends(fake, fake)  # one more record landed
    assert reader.frontiers()[1] != "end"


def test_an_end_reached_after_the_check_is_confirmed_for_the_waiting_batch() -> None:
    # The race a two-worker benchmark hit (a batch waited out its 5 s): the reader checked
    # the ends while partition 1 had not reported its end yet, then read the end, and no
    # check followed for that wait.
    reader = new_reader()
    reader.read(cast(Any, [at(0, payment("a", 100)), at(1, payment("b", 50))]))
    passed: list[bool] = []
    waiter = threading.Thread(
        target=lambda: passed.append(reader.wait_until(micros_after_start(60), 10.0))
    )
    waiter.start()
    deadline = time.monotonic() + 5
    while reader.waits_begun == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    fake = cast(Any, FakeConsumer({1: 2}, {1: 2}))
    reader.confirm_ends(fake, fake)  # nothing at its end yet
    reader.read(cast(Any, [FakeMessage(1, eof=True)]))
    assert reader.ends_to_confirm() == [1]
    reader.confirm_ends(fake, fake)
    waiter.join(5)
    assert passed == [True]
    assert reader.ends_to_confirm() == []


def test_a_record_older_than_an_as_of_time_already_served_is_counted_late() -> None:
    reader = new_reader()
    reader.read(cast(Any, [at(0, payment("a", 100)), at(1, payment("b", 100))]))
    assert reader.wait_until(micros_after_start(90), timeout_seconds=0.01)
    reader.read(cast(Any, [at(0, payment("late", 80)), at(1, payment("fine", 95))]))
    assert reader.late_records._value.get() == 1


def test_invalid_records_do_not_count() -> None:
    reader = new_reader()
    reader.read(cast(Any, [FakeMessage(0, b"{not json"), at(0, payment("a", 5))]))
    assert len(reader.drain()) == 1


class AllTransactions:
    """What every worker's reader hands over: all transactions of every partition."""

    def __init__(self, transactions: list[Transaction]) -> None:
        self.items = [(t.merchant_id, to_micros(t.timestamp)) for t in transactions]

    def wait_until(self, as_of_us: int, timeout_seconds: float) -> bool:
        return True

    def drain(self) -> list[tuple[str | None, int]]:
        items, self.items = self.items, []
        return items


def test_two_scorers_splitting_the_customers_give_the_offline_merchant_volume() -> None:
    """Each scorer sees only its customers' transactions but counts every merchant transaction
    through its feed: every row, merchant volume included, equals the offline features."""
    transactions = simulated_transactions(1500)
    now = max(txn.timestamp for txn in transactions)
    shifted = [
        txn.model_copy(update={"timestamp": txn.timestamp - now + datetime.now(UTC)})
        for txn in transactions
    ]
    scorers = []
    for _ in range(2):
        scorer = BatchScorer(
            amount_model(),
            Thresholds(review=0.5, block=0.9),
            create_worker_metrics(CollectorRegistry()),
        )
        scorer.volume = AllTransactions(shifted)
        scorers.append(scorer)
    rows: dict[str, list[float]] = {}
    for start in range(0, len(shifted), 200):
        for index, txn in enumerate(shifted[start : start + 200]):
            owner = scorers[zlib.crc32(txn.customer_id.encode()) % 2]
            record = RawRecord("transactions", 0, start + index, None, txn.to_bytes())
            (verdict,) = owner.score_batch([record]).verdicts
            assert verdict.feature_values is not None
            rows[txn.transaction_id] = verdict.feature_values
    frame = pd.DataFrame([txn.model_dump() for txn in shifted])
    offline = offline_features(frame).to_numpy(dtype=np.float32)
    online = np.array([rows[t.transaction_id] for t in shifted], dtype=np.float32)
    assert online.tobytes() == offline.tobytes()
    volume = FEATURE_NAMES.index("merchant_txn_count_24h")
    assert (online[:, volume] > 0).sum() > 0, "the merchant volume compared is not all zeros"
    assert VOLUME_LAG_US == SECOND_US
