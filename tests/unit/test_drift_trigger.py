"""The retrain trigger: K drifted windows in a row, a reset on a clean one, a cooldown."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from drift.checks import AlertRates, DriftResult, FeatureDrift
from drift.trigger import (
    FLAG_KEY,
    RetrainTrigger,
    TriggerPolicy,
    read_flag,
    read_streak,
    request_id,
    write_flag,
    write_streak,
)
from drift.windows import Span
from stream_app.settings import DriftSettings
from stream_app.store import LocalStore

START = datetime(2025, 3, 1, tzinfo=UTC)
WINDOW = timedelta(minutes=5)


class FakeClock:
    """Wall time the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2025, 6, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def window(index: int, drifted: bool, features: tuple[str, ...] = ("amount",)) -> DriftResult:
    """The index-th 5-minute window's result; only what the trigger reads is meaningful."""
    flags = tuple(FeatureDrift(name, 0.3 if drifted else 0.01, drifted) for name in features)
    return DriftResult(
        span=Span(START + index * WINDOW, START + (index + 1) * WINDOW - timedelta(seconds=1)),
        rows=5_000,
        reference_rows=5_000,
        features=flags,
        drift_share=1.0 if drifted else 0.0,
        drifted=drifted,
        prediction=FeatureDrift("score", 0.0, False),
        alert_rate=AlertRates(0.02, 0.02),
        report_uri=f"file:///reports/{index}/report.json",
    )


def trigger(
    k: int = 3, cooldown: timedelta = timedelta(hours=1)
) -> tuple[RetrainTrigger, FakeClock]:
    clock = FakeClock()
    return RetrainTrigger(TriggerPolicy(k, cooldown), clock=clock), clock


def test_fires_after_exactly_k_drifted_windows_not_after_k_minus_one() -> None:
    retrain, _ = trigger(k=3)
    assert retrain.observe(window(0, True)) is None
    assert retrain.observe(window(1, True)) is None
    request = retrain.observe(window(2, True, ("amount", "merchant_category_code")))
    assert request is not None
    assert (request.window_start, request.window_end) == (
        window(0, True).span.start,
        window(2, True).span.end,
    )
    assert request.drifted_features == ("amount", "merchant_category_code")
    assert request.report_uri == "file:///reports/2/report.json"
    assert request.drift_share == 1.0


def test_a_clean_window_resets_the_streak() -> None:
    retrain, _ = trigger(k=3)
    outcomes = [
        retrain.observe(window(i, drifted))
        for i, drifted in enumerate([True, True, False, True, True])
    ]
    assert outcomes == [None] * 5
    assert retrain.streak == 2
    request = retrain.observe(window(5, True))
    assert request is not None
    assert request.window_start == window(3, True).span.start


def test_cooldown_holds_a_second_request_back_then_lets_one_through() -> None:
    retrain, clock = trigger(k=2, cooldown=timedelta(hours=1))
    retrain.observe(window(0, True))
    first = retrain.observe(window(1, True))
    assert first is not None and first.requested_at == clock.now
    clock.now += timedelta(minutes=59)
    assert [retrain.observe(window(i, True)) for i in (2, 3, 4)] == [None, None, None]
    assert retrain.streak == 3  # checked and counted, just not requested
    clock.now += timedelta(minutes=1)  # exactly the cooldown after the first request
    second = retrain.observe(window(5, True))
    assert second is not None
    assert (second.window_start, second.window_end) == (
        window(4, True).span.start,
        window(5, True).span.end,
    )
    assert second.request_id != first.request_id
    assert retrain.streak == 0


def test_a_restored_last_request_time_keeps_the_cooldown_across_restarts() -> None:
    clock = FakeClock()
    retrain = RetrainTrigger(
        TriggerPolicy(1, timedelta(hours=1)),
        clock=clock,
        last_request_at=clock.now - timedelta(minutes=30),
    )
    assert retrain.observe(window(0, True)) is None
    clock.now += timedelta(minutes=30)
    assert retrain.observe(window(1, True)) is not None


def test_request_ids_are_uuid5_of_the_bounds_so_a_replay_repeats_them() -> None:
    span = Span(START, START + WINDOW)
    assert request_id(span) == request_id(Span(START, START + WINDOW))
    assert request_id(span) != request_id(Span(START, START + 2 * WINDOW))
    assert uuid.UUID(request_id(span)).version == 5
    # Same instant in another time zone: same id.
    east, west = timezone(timedelta(hours=5)), timezone(timedelta(hours=-3))
    shifted = Span(START.astimezone(east), (START + WINDOW).astimezone(west))
    assert request_id(shifted) == request_id(span)

    ids: list[str] = []
    for _ in range(2):  # a replay: fresh trigger, later clock, same windows
        retrain, clock = trigger(k=2)
        clock.now += timedelta(days=len(ids))
        retrain.observe(window(7, True))
        request = retrain.observe(window(8, True))
        assert request is not None
        ids.append(request.request_id)
    assert ids[0] == ids[1]


def test_the_flag_round_trips_through_the_store(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    assert read_flag(store) is None
    retrain, _ = trigger(k=1)
    request = retrain.observe(window(0, True))
    assert request is not None
    assert write_flag(store, request) == store.uri(FLAG_KEY)
    assert read_flag(store) == request


def test_policy_from_settings() -> None:
    settings = DriftSettings(consecutive_windows=4, cooldown_seconds=90)
    assert TriggerPolicy.from_settings(settings) == TriggerPolicy(4, timedelta(seconds=90))
    with pytest.raises(ValueError, match="consecutive"):
        TriggerPolicy(0, timedelta(0))


def test_a_restored_streak_continues_across_a_restart(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    assert read_streak(store) is None
    before, _ = trigger(k=3)
    before.reference = "model-7"
    before.observe(window(0, True))
    before.observe(window(1, True, ("amount", "merchant_category_code")))
    write_streak(store, before.state())

    after, _ = trigger(k=3)  # a restarted monitor
    state = read_streak(store)
    assert state is not None
    after.restore(state)
    assert (after.streak, after.reference) == (2, "model-7")
    request = after.observe(window(2, True))
    assert request is not None, "the third drifted window in a row, across the restart"
    assert (request.window_start, request.window_end) == (
        window(0, True).span.start,
        window(2, True).span.end,
    )
    assert request.drifted_features == ("amount", "merchant_category_code")


def test_a_window_checked_again_after_a_restart_is_not_counted_twice() -> None:
    """Written, then the monitor died before committing: the window is read and checked again."""
    retrain, _ = trigger(k=3)
    retrain.observe(window(0, True))
    retrain.observe(window(1, True))
    assert retrain.observe(window(1, True)) is None
    assert retrain.streak == 2
