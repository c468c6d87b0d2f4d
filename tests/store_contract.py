"""The object-store contract: the cases every ``ObjectStore`` backend must pass, written once.

tests/unit/test_store.py runs them on ``LocalStore`` and tests/integration/test_s3_store.py on
``S3Store`` against a real S3-compatible server, so code written against a local folder runs
unchanged on S3. Each case takes an empty store; what only one backend has (path escapes, the
server-side prefix, S3's error codes) stays in that backend's own test module.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from stream_app.store import ObjectNotFoundError, ObjectStore, read_parquet_prefix, write_parquet


def bytes_round_trip_and_overwrite(store: ObjectStore) -> None:
    store.put_bytes("reports/2025/a.json", b"first")
    store.put_bytes("reports/2025/a.json", b"second")  # a write replaces the whole object
    store.put_bytes("reports/2025/b.json", b"\x00\xff")
    assert store.get_bytes("reports/2025/a.json") == b"second"
    assert store.get_bytes("reports/2025/b.json") == b"\x00\xff"
    assert store.exists("reports/2025/a.json")
    assert not store.exists("reports/2025/c.json")


def missing_key_raises_not_found(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFoundError) as caught:
        store.get_bytes("lake/nothing-here.parquet")
    assert str(caught.value) == store.uri("lake/nothing-here.parquet")
    assert isinstance(caught.value, FileNotFoundError)


def list_is_a_sorted_string_prefix_match(store: ObjectStore) -> None:
    for key in ["t/date=2025-01-02/p.parquet", "t/date=2025-01-01/p.parquet", "t2/x", "u/y"]:
        store.put_bytes(key, b"x")
    assert store.list("t/") == ["t/date=2025-01-01/p.parquet", "t/date=2025-01-02/p.parquet"]
    assert store.list("t") == ["t/date=2025-01-01/p.parquet", "t/date=2025-01-02/p.parquet", "t2/x"]
    assert store.list("t/date=2025-01-02") == ["t/date=2025-01-02/p.parquet"]
    assert store.list() == store.list("") == [*store.list("t"), "u/y"]
    assert store.list("nothing/") == []


def parquet_round_trip_keeps_dtypes_and_key_order(store: ObjectStore) -> None:
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


DAYS = ("2025-01-01", "2025-01-02", "2025-01-03")


def day_frame(day: str, rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "transaction_id": [f"{day}-{i}" for i in range(rows)],
            "amount": rng.gamma(2.0, 40.0, rows).round(2),
            "timestamp": pd.date_range(day, periods=rows, freq="7min", tz="UTC"),
        }
    )


def write_lake(store: ObjectStore) -> list[str]:
    """Days written out of order, plus objects a reader of the transactions must skip."""
    uris = [
        write_parquet(store, f"lake/transactions/date={day}/part-0.parquet", day_frame(day, 5, i))
        for i, day in sorted(enumerate(DAYS), key=lambda item: item[1], reverse=True)
    ]
    store.put_bytes("lake/transactions/_SUCCESS", b"")
    write_parquet(store, "lake/labels/date=2025-01-01/part-0.parquet", day_frame(DAYS[0], 2, 9))
    return uris


def partitioned_lake_round_trip(store: ObjectStore) -> None:
    uris = write_lake(store)
    assert uris[0] == store.uri("lake/transactions/date=2025-01-03/part-0.parquet")

    frame = read_parquet_prefix(store, "lake/transactions/")
    expected = pd.concat([day_frame(day, 5, i) for i, day in enumerate(DAYS)], ignore_index=True)
    pd.testing.assert_frame_equal(frame, expected)  # key order is date order

    amounts = read_parquet_prefix(store, "lake/transactions/", columns=["amount"])
    pd.testing.assert_frame_equal(amounts, expected[["amount"]])
    empty = read_parquet_prefix(store, "lake/nothing/", columns=["amount"])
    assert empty.empty
    assert list(empty.columns) == ["amount"]


def observe(store: ObjectStore) -> tuple[list[str], list[str], pd.DataFrame, bool]:
    """What a reader sees of the lake ``write_lake`` leaves: compared across backends."""
    write_lake(store)
    return (
        store.list("lake/"),
        store.list("lake/transactions/date=2025-01-0"),
        read_parquet_prefix(store, "lake/transactions"),
        store.exists("lake/labels/date=2025-01-01/part-0.parquet"),
    )


CONTRACT: tuple[Callable[[ObjectStore], None], ...] = (
    bytes_round_trip_and_overwrite,
    missing_key_raises_not_found,
    list_is_a_sorted_string_prefix_match,
    parquet_round_trip_keeps_dtypes_and_key_order,
    partitioned_lake_round_trip,
)
CONTRACT_IDS = [case.__name__ for case in CONTRACT]
