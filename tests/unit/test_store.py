"""The object store's local backend, Parquet helpers, and the simulator's lake layout on top.

The cases every backend shares run here from tests/store_contract.py; S3 runs them in integration.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from producers.simulator import (
    Simulator,
    SimulatorConfig,
    generate_history,
)
from producers.sinks import LakeSink
from stream_app.settings import StoreSettings
from stream_app.store import (
    LAKE_LABELS,
    LAKE_TRANSACTIONS,
    TRANSACTION_COLUMNS,
    LocalStore,
    ObjectStore,
    S3Store,
    open_store,
    read_parquet_prefix,
)
from tests.store_contract import CONTRACT, CONTRACT_IDS


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


@pytest.mark.parametrize("case", CONTRACT, ids=CONTRACT_IDS)
def test_local_store_keeps_the_object_store_contract(
    store: LocalStore, case: Callable[[ObjectStore], None]
) -> None:
    case(store)


def test_opening_a_store_creates_nothing(tmp_path: Path) -> None:
    root = tmp_path / "never-written"
    store = open_store(StoreSettings(uri=str(root)))
    assert store.list("") == []
    assert not root.exists()


@pytest.mark.parametrize("key", ["", "/etc/passwd", "../outside", "a/../../b", "folder/"])
def test_keys_cannot_escape_the_root(store: LocalStore, key: str) -> None:
    with pytest.raises(ValueError, match="invalid object key"):
        store.put_bytes(key, b"x")


def test_uri_points_at_the_file(store: LocalStore) -> None:
    store.put_bytes("k/v.txt", b"hello")
    uri = store.uri("k/v.txt")
    assert uri.startswith("file://")
    assert Path(uri.removeprefix("file://")).read_bytes() == b"hello"


def test_open_store_picks_the_backend_without_connecting(tmp_path: Path) -> None:
    local = open_store(StoreSettings(uri=f"file://{tmp_path}"))
    assert isinstance(local, LocalStore)
    assert local.root == tmp_path
    s3 = open_store(StoreSettings(uri="s3://bucket/some/prefix/"))
    assert isinstance(s3, S3Store)
    assert (s3.bucket, s3.prefix) == ("bucket", "some/prefix")
    assert s3.uri("lake/x.parquet") == "s3://bucket/some/prefix/lake/x.parquet"
    assert s3._client is None  # no boto3 client until first use
    with pytest.raises(ValueError, match="scheme"):
        open_store(StoreSettings(uri="gs://bucket"))
    with pytest.raises(ValueError, match="bucket"):
        open_store(StoreSettings(uri="s3:///prefix"))


def test_lake_sink_partitions_by_date_and_round_trips(store: LocalStore) -> None:
    config = SimulatorConfig(seed=5, n_customers=300, n_merchants=500)
    sink = LakeSink(store, part="part-test")
    for batch in Simulator(config).iter_days(4):
        sink.write_day(batch)
    transactions, labels = generate_history(config, 4)

    assert store.list(f"{LAKE_TRANSACTIONS}/") == [
        f"{LAKE_TRANSACTIONS}/date=2025-01-0{day}/part-test.parquet" for day in range(1, 5)
    ]
    lake_transactions = read_parquet_prefix(store, f"{LAKE_TRANSACTIONS}/")
    # The lake holds what production would: no ground-truth columns next to the transactions.
    expected = transactions.loc[:, list(TRANSACTION_COLUMNS)]
    pd.testing.assert_frame_equal(lake_transactions, expected)
    for key in store.list(f"{LAKE_TRANSACTIONS}/"):
        day = read_parquet_prefix(store, key)
        assert (day["timestamp"].dt.strftime("%Y-%m-%d") == key.split("date=")[1][:10]).all()

    lake_labels = read_parquet_prefix(store, f"{LAKE_LABELS}/")
    pd.testing.assert_frame_equal(lake_labels, labels)
    for key in store.list(f"{LAKE_LABELS}/"):
        day = read_parquet_prefix(store, key)
        assert (day["labeled_at"].dt.strftime("%Y-%m-%d") == key.split("date=")[1][:10]).all()
