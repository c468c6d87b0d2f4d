"""The progress watchdog's decision on a fake clock, and the Faust internals its log line reads."""

from __future__ import annotations

import asyncio
import inspect
from types import SimpleNamespace

import pytest
from faust.transport.consumer import Consumer
from faust.types import TP

from stream_app.worker.watchdog import Progress, ProgressWatchdog, Stall, _progress

STALL = 30.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def watchdog(clock: FakeClock) -> ProgressWatchdog:
    return ProgressWatchdog(STALL, clock=clock)


def test_a_partition_behind_its_watermark_that_does_not_move_stalls_once(
    watchdog: ProgressWatchdog, clock: FakeClock
) -> None:
    behind = {0: Progress(position=10, highwater=50)}
    assert watchdog.observe(behind) == []
    clock.now += STALL - 0.1
    assert watchdog.observe(behind) == []
    clock.now += 0.1
    assert watchdog.observe(behind) == [Stall(0, 10, 50, STALL)]
    assert watchdog.stalled == {0}
    clock.now += STALL
    assert watchdog.observe(behind) == [], "one stall is reported once"
    assert watchdog.stalled == {0}


def test_a_moving_partition_never_stalls_and_moving_clears_a_stall(
    watchdog: ProgressWatchdog, clock: FakeClock
) -> None:
    for position in range(0, 100, 10):
        assert watchdog.observe({1: Progress(position, highwater=500)}) == []
        clock.now += STALL - 1
    watchdog.observe({1: Progress(100, 500)})
    clock.now += STALL
    assert watchdog.observe({1: Progress(100, 500)})
    assert watchdog.observe({1: Progress(101, 500)}) == []
    assert watchdog.stalled == set()


def test_a_caught_up_partition_never_stalls(watchdog: ProgressWatchdog, clock: FakeClock) -> None:
    """An idle worker on a quiet topic: position at the watermark for ever."""
    for _ in range(10):
        assert watchdog.observe({0: Progress(7, 7), 1: Progress(0, 0)}) == []
        clock.now += STALL * 2
    assert watchdog.stalled == set()


def test_new_records_on_a_quiet_partition_start_the_clock_then(
    watchdog: ProgressWatchdog, clock: FakeClock
) -> None:
    watchdog.observe({0: Progress(7, 7)})
    clock.now += STALL * 5
    assert watchdog.observe({0: Progress(7, 9)}) == [], "the clock starts when records arrive"
    clock.now += STALL
    assert watchdog.observe({0: Progress(7, 9)}) == [Stall(0, 7, 9, STALL)]


def test_only_the_unmoving_partition_stalls(watchdog: ProgressWatchdog, clock: FakeClock) -> None:
    watchdog.observe({0: Progress(0, 100), 1: Progress(0, 100)})
    clock.now += STALL
    assert watchdog.observe({0: Progress(40, 100), 1: Progress(0, 100)}) == [
        Stall(1, 0, 100, STALL)
    ]


def test_a_revoked_partition_is_forgotten(watchdog: ProgressWatchdog, clock: FakeClock) -> None:
    watchdog.observe({0: Progress(0, 100), 2: Progress(0, 100)})
    clock.now += STALL
    assert {s.partition for s in watchdog.observe({0: Progress(0, 100), 2: Progress(0, 100)})} == {
        0,
        2,
    }
    assert watchdog.observe({0: Progress(0, 100)}) == []
    assert watchdog.stalled == {0}
    # Assigned again later: a fresh clock, not the old one.
    assert watchdog.observe({0: Progress(0, 100), 2: Progress(0, 100)}) == []


def test_restarted_clocks_wait_a_full_period_again(
    watchdog: ProgressWatchdog, clock: FakeClock
) -> None:
    watchdog.observe({0: Progress(0, 100)})
    clock.now += STALL - 1
    watchdog.restart_clocks()  # a rebalance or a recovery in between
    watchdog.observe({0: Progress(0, 100)})
    clock.now += 2
    assert watchdog.observe({0: Progress(0, 100)}) == []


def test_the_lag_never_goes_negative() -> None:
    assert Progress(position=12, highwater=10).lag == 0
    assert Progress(position=3, highwater=10).lag == 7


def test_guard_faust_flow_control_sets_the_stall_log_reads() -> None:
    """The stall log names where Faust's flow control has the partition; the pinned
    faust-streaming 0.15.3 keeps it in these three sets (reset in ``_reset_state``)."""
    reset = inspect.getsource(Consumer._reset_state)
    for name in ("_active_partitions", "_paused_partitions", "_buffered_partitions"):
        assert f"self.{name} = set()" in reset, name


class FakeConsumer:
    """Fetch positions, watermarks and (optionally) commits of a consumer, no broker."""

    def __init__(self, fetched: int, processed: int | None, highwater: int = 100) -> None:
        self.fetched, self.processed, self.highwater = fetched, processed, highwater

    async def highwaters(self, *tps: TP) -> dict[TP, int]:
        return dict.fromkeys(tps, self.highwater)

    async def earliest_offsets(self, *tps: TP) -> dict[TP, int]:
        return dict.fromkeys(tps, 0)

    async def position(self, tp: TP) -> int:
        return self.fetched

    def processed_offset(self, tp: TP) -> int | None:
        return self.processed


class FetchOnlyConsumer(FakeConsumer):
    processed_offset = None  # type: ignore[assignment]  # a consumer without commit tracking


def progress_of(consumer: FakeConsumer) -> Progress:
    app = SimpleNamespace(consumer=consumer)
    progress = asyncio.run(_progress(app, {TP("transactions", 0)}))  # type: ignore[arg-type]
    assert progress is not None
    return progress[0]


def test_records_fetched_to_the_end_but_never_committed_count_as_unread() -> None:
    """Issue 17 after its first fix: the fetch position at the watermark, the commits stuck."""
    assert progress_of(FakeConsumer(fetched=100, processed=37)) == Progress(37, 100)


def test_a_partition_never_committed_counts_from_its_start() -> None:
    assert progress_of(FakeConsumer(fetched=100, processed=None)) == Progress(0, 100)


def test_a_committed_and_caught_up_partition_has_no_lag() -> None:
    assert progress_of(FakeConsumer(fetched=100, processed=100)).lag == 0


def test_without_commit_tracking_the_fetch_position_is_watched() -> None:
    assert progress_of(FetchOnlyConsumer(fetched=60, processed=None)) == Progress(60, 100)
