"""The windower: closes by count or event time, merges sparse windows, tracks commit offsets."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from drift.windows import DECISION_COLUMN, Row, Span, Windower, WindowPolicy

COLUMNS = ("amount", "score")
T0 = 1_700_000_000.0


def row(
    seconds: float,
    value: float = 1.0,
    partition: int = 0,
    offset: int = -1,
    version: str = "1",
    decision: str = "approve",
) -> Row:
    return Row(T0 + seconds, (value, 0.1), decision, version, partition, offset)


def windower(max_rows: int = 5, max_seconds: float = 60.0, min_rows: int = 2) -> Windower:
    return Windower(WindowPolicy(max_rows, max_seconds, min_rows), COLUMNS)


def test_a_window_closes_at_max_rows_with_its_rows_in_order() -> None:
    cutter = windower(max_rows=3)
    assert cutter.add(row(0, 1.0)) == []
    assert cutter.add(row(1, 2.0)) == []
    [window] = cutter.add(row(2, 3.0, decision="review"))
    assert window.closed_by == "size"
    assert window.frame["amount"].tolist() == [1.0, 2.0, 3.0]
    assert window.frame[DECISION_COLUMN].tolist() == ["approve", "approve", "review"]
    assert list(window.frame.columns) == [*COLUMNS, DECISION_COLUMN]
    assert window.span == Span.from_epoch(T0, T0 + 2)
    assert cutter.open_rows == 0


def test_a_window_closes_by_event_time_before_the_late_row_which_opens_the_next() -> None:
    cutter = windower(max_seconds=60)
    for second in (0, 10, 59):
        assert cutter.add(row(second)) == []
    [window] = cutter.add(row(60, 9.0))
    assert (window.closed_by, window.rows) == ("time", 3)
    assert window.span.end == datetime.fromtimestamp(T0 + 59, UTC)
    assert cutter.open_rows == 1  # the row at 60 s starts the next window


def test_a_sparse_window_is_merged_into_the_next_period_until_it_has_min_rows() -> None:
    cutter = windower(max_rows=100, max_seconds=60, min_rows=3)
    assert cutter.add(row(0)) == []
    assert cutter.add(row(120)) == []  # time is up, but 1 row < 3: stays open
    assert cutter.add(row(130)) == []  # 3 rows now; the next row decides
    [window] = cutter.add(row(140))
    assert (window.closed_by, window.rows) == ("time", 3)
    assert window.span == Span.from_epoch(T0, T0 + 130)


def test_out_of_order_rows_join_the_open_window_and_widen_its_span() -> None:
    cutter = windower(max_rows=3)
    cutter.add(row(10))
    cutter.add(row(5))
    [window] = cutter.add(row(12))
    assert window.span == Span.from_epoch(T0 + 5, T0 + 12)


def test_commit_offsets_cover_rows_and_skipped_messages_per_partition() -> None:
    cutter = windower(max_rows=3)
    cutter.add(row(0, partition=0, offset=40))
    cutter.skip(partition=2, offset=7)  # an unusable message still moves its partition on
    cutter.add(row(1, partition=1, offset=3))
    [window] = cutter.add(row(2, partition=0, offset=41))
    assert window.commit_offsets == {0: 42, 1: 4, 2: 8}
    cutter.add(row(3, partition=1, offset=4))
    cutter.add(row(4, partition=0, offset=42))
    [second] = cutter.add(row(70, partition=1, offset=5))  # by time: the row at 70 s stays open
    assert second.commit_offsets == {0: 43, 1: 5}


def test_the_window_model_version_is_the_one_most_rows_carry() -> None:
    cutter = windower(max_rows=3)
    cutter.add(row(0, version="7"))
    cutter.add(row(1, version="8"))
    [window] = cutter.add(row(2, version="8"))
    assert window.model_version == "8"


def test_discard_drops_the_open_window_and_its_offsets() -> None:
    cutter = windower(max_rows=2)
    cutter.add(row(0, offset=1))
    cutter.discard()
    cutter.add(row(1, offset=5))
    [window] = cutter.add(row(2, offset=6))
    assert (window.rows, window.commit_offsets) == (2, {0: 7})


def test_policy_caps_min_rows_at_max_rows_and_rejects_nonsense() -> None:
    assert WindowPolicy.create(500, 300, 1_000) == WindowPolicy(500, 300, 500)
    with pytest.raises(ValueError, match="min_rows"):
        WindowPolicy(10, 300, 11)
    with pytest.raises(ValueError, match="3 values for 2 columns"):
        windower().add(Row(T0, (1.0, 2.0, 3.0), "approve", "1"))
