"""The object store's local backend, Parquet helpers, and the simulator's lake layout on top."""

from __future__ import annotations

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
    ObjectNotFoundError,
    S3Store,
    open_store,
    read_parquet_prefix,
    write_parquet,
)


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def test_bytes_round_trip_and_overwrite(store: LocalStore) -> None:
    store.put_bytes("a/b/c.bin", b"first")
    store.put_bytes("a/b/c.bin", b"second")
    assert store.get_bytes("a/b/c.bin") == b"second"
    assert store.exists("a/b/c.bin")
    assert not store.exists("a/b/missing.bin")


def test_opening_a_store_creates_nothing(tmp_path: Path) -> None:
    root = tmp_path / "never-written"
    store = open_store(StoreSettings(uri=str(root)))
    assert store.list("") == []
    assert not root.exists()


def test_missing_key_raises_not_found(store: LocalStore) -> None:
    with pytest.raises(ObjectNotFoundError):
        store.get_bytes("nope.bin")
    assert issubclass(ObjectNotFoundError, FileNotFoundError)


def test_list_is_a_sorted_string_prefix_match(store: LocalStore) -> None:
    for key in ["t/date=2025-01-02/p.parquet", "t/date=2025-01-01/p.parquet", "t2/x", "u/y"]:
        store.put_bytes(key, b"x")
    assert store.list("t/") == ["t/date=2025-01-01/p.parquet", "t/date=2025-01-02/p.parquet"]
    assert store.list("t") == [
        "t/date=2025-01-01/p.parquet",
        "t/date=2025-01-02/p.parquet",
        "t2/x",
    ]
    assert store.list("t/date=2025-01-02") == ["t/date=2025-01-02/p.parquet"]
    assert store.list("") == [*store.list("t"), "u/y"]
    assert store.list("nothing/") == []


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


def test_parquet_round_trip_keeps_dtypes_and_key_order(store: LocalStore) -> None:
    first = pd.DataFrame(
        {
            "id": ["a", "b"],
            "amount": [1.5, 2.25],
            "flag": [True, False],
            "ts": pd.to_datetime(
                ["2025-01-01T00:00:00.001Z", "2025-01-01T10:00:00.000Z"], utc=True
            ),
        }
    )
    second = first.assign(id=["c", "d"], amount=[3.0, 4.0])
    write_parquet(store, "t/date=2025-01-02/part-0.parquet", second)
    uri = write_parquet(store, "t/date=2025-01-01/part-0.parquet", first)
    assert uri == store.uri("t/date=2025-01-01/part-0.parquet")
    back = read_parquet_prefix(store, "t/")
    pd.testing.assert_frame_equal(back, pd.concat([first, second], ignore_index=True))
    assert str(back["ts"].dtype) == "datetime64[ns, UTC]"
    only = read_parquet_prefix(store, "t/", columns=["id"])
    assert list(only.columns) == ["id"]
    assert read_parquet_prefix(store, "missing/").empty


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
