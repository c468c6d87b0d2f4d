"""The simulator's contract: reproducible, realistic, labelled, delayed and drifting on schedule."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from producers import cli
from producers.cli import stream as stream_cli
from producers.cli.options import parse_delay_range
from producers.simulator import (
    DriftSchedule,
    FraudRates,
    LabelPolicy,
    RealtimePacing,
    Simulator,
    SimulatorConfig,
    StreamSchedule,
    generate_history,
    iter_events,
    stream_events,
    stream_schedule,
)
from producers.simulator.config import DriftEvent
from producers.simulator.live_stream import paced
from producers.simulator.scenarios import FRAUD_SCENARIOS, SUBTLE_SCENARIOS
from producers.simulator.world import IMPOSSIBLE_DISTANCE_KM, LEGIT
from producers.sinks import KafkaSink
from stream_app.geo import (
    CURRENCY_PER_USD,
    REGION_COORDINATES,
    haversine_km,
    haversine_km_many,
)
from stream_app.kafka import DeliveryError
from stream_app.schemas import Label, Transaction
from stream_app.settings import KafkaSettings
from stream_app.store import LABEL_COLUMNS, TRANSACTION_COLUMNS

SMALL = SimulatorConfig(seed=11, n_customers=400, n_merchants=500)
DRIFT_AT = datetime(2025, 1, 16, 6, 0, tzinfo=UTC)  # day 15 of a 30-day run, mid-morning
DRIFTING = SimulatorConfig(
    seed=3,
    n_customers=2000,
    # A few more compromised terminals than the default (~1 per 30 days for 2,000 customers), so
    # that every scenario has several incidents in this short run.
    fraud_rates=FraudRates(compromised_merchant=0.15),
    drift=DriftSchedule.standard(at=DRIFT_AT),
)


@pytest.fixture(scope="module")
def drifting_run() -> tuple[pd.DataFrame, pd.DataFrame]:
    """30 days, 2,000 customers, standard drift on day 15: ~60k transactions, shared by tests."""
    return generate_history(DRIFTING, 30)


def usd(frame: pd.DataFrame) -> pd.Series:
    return frame["amount"] / frame["currency"].map(CURRENCY_PER_USD)


# --- determinism ------------------------------------------------------------------------------


def test_same_seed_same_frames_and_bytes() -> None:
    first = generate_history(SMALL, 6)
    second = generate_history(SMALL, 6)
    pd.testing.assert_frame_equal(first[0], second[0])
    pd.testing.assert_frame_equal(first[1], second[1])
    wire_a = [event.to_bytes() for event in iter_events(SMALL, days=6)]
    wire_b = [event.to_bytes() for event in iter_events(SMALL, days=6)]
    assert wire_a == wire_b


def test_different_seed_different_output() -> None:
    ours, _ = generate_history(SMALL, 3)
    theirs, _ = generate_history(SMALL.model_copy(update={"seed": 12}), 3)
    assert not set(ours["transaction_id"]) & set(theirs["transaction_id"])
    assert len(ours) != len(theirs) or not np.array_equal(ours["amount"], theirs["amount"])


def test_iter_events_carries_exactly_the_history() -> None:
    transactions, labels = generate_history(SMALL, 8)
    events = list(iter_events(SMALL, days=8))
    streamed = [e for e in events if isinstance(e, Transaction)]
    published = [e for e in events if isinstance(e, Label)]
    assert [t.transaction_id for t in streamed] == transactions["transaction_id"].tolist()
    assert [lb.transaction_id for lb in published] == labels["transaction_id"].tolist()
    times = [e.timestamp if isinstance(e, Transaction) else e.labeled_at for e in events]
    assert times == sorted(times)  # labels interleaved at their labeled_at


# --- shape and realism ------------------------------------------------------------------------


def test_columns_dtypes_and_order(drifting_run: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    transactions, labels = drifting_run
    assert list(transactions.columns) == [*TRANSACTION_COLUMNS, "is_fraud", "scenario"]
    assert list(labels.columns) == list(LABEL_COLUMNS)
    assert transactions["amount"].dtype == np.float64
    assert str(transactions["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert str(labels["labeled_at"].dtype) == "datetime64[ns, UTC]"
    assert transactions["is_fraud"].dtype == bool and labels["is_fraud"].dtype == bool
    for column in ["transaction_id", "customer_id", "merchant_id", "device_id", "geo_location"]:
        assert all(isinstance(value, str) for value in transactions[column]), column
    assert transactions["timestamp"].is_monotonic_increasing
    assert labels["labeled_at"].is_monotonic_increasing
    assert transactions["transaction_id"].is_unique
    assert transactions["geo_location"].isin(list(REGION_COORDINATES)).all()


def test_volume_and_fraud_rate_are_realistic(
    drifting_run: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    transactions, _ = drifting_run
    per_customer_day = len(transactions) / (DRIFTING.n_customers * 30)
    assert 0.9 < per_customer_day < 1.1
    # Fraud comes in incidents of several transactions, so a short run varies a lot around the
    # default 0.7 %: the band is what a fraud team would still call realistic.
    assert 0.004 < transactions["is_fraud"].mean() < 0.012


def test_weekly_and_daily_seasonality(drifting_run: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    transactions, _ = drifting_run
    legit = transactions[~transactions["is_fraud"]]
    weekday = legit["timestamp"].dt.dayofweek.value_counts()
    assert weekday[5] > 1.1 * weekday[6]  # Saturday busier than Sunday
    # Indian customers (UTC+5:30) pay during their day and rarely at 3-4 am local time.
    india = legit[legit["currency"] == "INR"]
    local_hour = (india["timestamp"] + pd.Timedelta(hours=5, minutes=30)).dt.hour
    hours = local_hour.value_counts()
    assert hours[13] > 4 * hours[3]


def test_every_generated_row_validates(drifting_run: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    transactions, labels = drifting_run
    fields = [column for column in TRANSACTION_COLUMNS if column != "timestamp"]
    for record, timestamp in zip(
        transactions[fields].to_dict("records"), transactions["timestamp"], strict=True
    ):
        Transaction.model_validate({**record, "timestamp": timestamp.to_pydatetime()})
    label_fields = [column for column in LABEL_COLUMNS if column != "labeled_at"]
    for record, labeled_at in zip(
        labels[label_fields].to_dict("records"), labels["labeled_at"], strict=True
    ):
        Label.model_validate({**record, "labeled_at": labeled_at.to_pydatetime()})


def test_wire_round_trip_of_streamed_events() -> None:
    for event in iter_events(SMALL, max_transactions=300):
        assert type(event).model_validate_json(event.to_bytes()) == event


# --- fraud scenarios and ground truth ----------------------------------------------------------


def test_every_scenario_appears_with_its_ground_truth(
    drifting_run: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    transactions, labels = drifting_run
    assert set(transactions["scenario"]) == {LEGIT, *FRAUD_SCENARIOS} - set(SUBTLE_SCENARIOS)
    assert (transactions["is_fraud"] == (transactions["scenario"] != LEGIT)).all()
    joined = labels.merge(transactions, on="transaction_id", suffixes=("", "_tx"))
    assert len(joined) == len(labels)
    assert (joined["is_fraud"] == joined["is_fraud_tx"]).all()
    assert (joined["scenario"] == joined["scenario_tx"]).all()
    assert (joined["customer_id"] == joined["customer_id_tx"]).all()
    assert (joined["merchant_id"] == joined["merchant_id_tx"]).all()
    assert set(joined.loc[joined["is_fraud"], "source"]) == {"chargeback"}


def test_card_testing_is_bursts_of_tiny_online_payments(
    drifting_run: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    transactions, _ = drifting_run
    testing = transactions[transactions["scenario"] == "card_testing"]
    assert (usd(testing) <= 5.01).all()
    assert (testing["transaction_type"] == "online").all()
    per_card = testing.groupby("customer_id")
    assert per_card.size().min() >= 8
    assert (per_card["merchant_id"].nunique() >= 4).all()


def test_takeover_uses_devices_the_customer_never_used(
    drifting_run: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    transactions, _ = drifting_run
    legit = transactions[~transactions["is_fraud"]]
    known = set(zip(legit["customer_id"], legit["device_id"], strict=True))
    takeover = transactions[transactions["scenario"] == "account_takeover"]
    pairs = zip(takeover["customer_id"], takeover["device_id"], strict=True)
    assert not any(pair in known for pair in pairs)
    home = legit.groupby("customer_id")["geo_location"].agg(lambda regions: regions.mode()[0])
    assert (takeover["geo_location"] != takeover["customer_id"].map(home)).mean() > 0.95
    assert usd(takeover).max() > 5 * usd(legit).median()


def test_impossible_travel_follows_a_far_away_genuine_payment(
    drifting_run: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    transactions, _ = drifting_run
    legit = transactions[~transactions["is_fraud"]]
    travel = transactions[transactions["scenario"] == "impossible_travel"]
    previous = pd.merge_asof(
        travel.sort_values("timestamp"),
        legit[["timestamp", "customer_id", "geo_location"]].rename(
            columns={"geo_location": "previous_region", "timestamp": "previous_at"}
        ),
        left_on="timestamp",
        right_on="previous_at",
        by="customer_id",
    )
    gap = previous["timestamp"] - previous["previous_at"]
    assert (gap < pd.Timedelta(hours=6)).all()
    distance = haversine_km_many(
        previous["geo_location"].tolist(), previous["previous_region"].tolist()
    )
    assert (distance > IMPOSSIBLE_DISTANCE_KM).all()


def test_compromised_merchant_concentrates_on_one_terminal(
    drifting_run: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    transactions, _ = drifting_run
    compromised = transactions[transactions["scenario"] == "compromised_merchant"]
    by_terminal = compromised.groupby("device_id")
    assert by_terminal.size().min() >= 10
    assert (by_terminal["merchant_id"].nunique() == 1).all()
    assert (by_terminal["customer_id"].nunique() >= 5).all()


def test_fraud_rates_are_configurable() -> None:
    quiet = SMALL.model_copy(update={"fraud_rates": SMALL.fraud_rates.scaled(0.0)})
    transactions, _ = generate_history(quiet, 5)
    assert not transactions["is_fraud"].any()
    only_high_value = SMALL.model_copy(
        update={"fraud_rates": SMALL.fraud_rates.scaled(0.0).model_copy(update={"high_value": 50})}
    )
    transactions, _ = generate_history(only_high_value, 5)
    assert set(transactions.loc[transactions["is_fraud"], "scenario"]) == {"high_value"}


# --- delayed labels ---------------------------------------------------------------------------


def test_labels_wait_their_delay_and_only_published_ones_are_returned() -> None:
    policy = LabelPolicy(delay_min=timedelta(days=2), delay_max=timedelta(days=5))
    config = SMALL.model_copy(update={"labels": policy})
    transactions, labels = generate_history(config, 12)
    joined = labels.merge(transactions[["transaction_id", "timestamp"]], on="transaction_id")
    delay = joined["labeled_at"] - joined["timestamp"]
    assert delay.min() >= policy.delay_min
    assert delay.max() <= policy.delay_max
    end = config.start + timedelta(days=12)
    assert labels["labeled_at"].max() < end
    assert labels["transaction_id"].is_unique
    # Everything old enough has its label; nothing younger than the minimum delay does.
    old = transactions["timestamp"] < end - policy.delay_max
    assert set(transactions.loc[old, "transaction_id"]) <= set(labels["transaction_id"])
    young = transactions["timestamp"] >= end - policy.delay_min
    assert not set(transactions.loc[young, "transaction_id"]) & set(labels["transaction_id"])


def test_legit_labels_can_be_switched_off() -> None:
    config = SMALL.model_copy(update={"labels": LabelPolicy(emit_legit=False)})
    _, labels = generate_history(config, 12)
    assert len(labels) > 0
    assert labels["is_fraud"].all()


def test_stream_stops_at_count_and_drains_every_label() -> None:
    events = list(iter_events(SMALL, max_transactions=1000, drain_labels=True))
    transactions = [e for e in events if isinstance(e, Transaction)]
    labels = [e for e in events if isinstance(e, Label)]
    assert len(transactions) == 1000
    assert sorted(lb.transaction_id for lb in labels) == sorted(
        t.transaction_id for t in transactions
    )
    sent_at = {t.transaction_id: t.timestamp for t in transactions}
    assert all(lb.labeled_at - sent_at[lb.transaction_id] >= timedelta(days=1) for lb in labels)


# --- real-time mode -----------------------------------------------------------------------------


class FakeClock:
    """Time moves only when the code under test sleeps."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.slept = 0.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds
        self.sleeps.append(seconds)


def test_realtime_paces_stamps_wall_clock_and_delays_labels_in_wall_time() -> None:
    clock = FakeClock(1_750_000_000.0)
    policy = LabelPolicy(delay_min=timedelta(seconds=1), delay_max=timedelta(seconds=3))
    config = SMALL.model_copy(update={"labels": policy})
    pacing = RealtimePacing(rate=8.0, clock=clock)
    events = list(iter_events(config, max_transactions=40, pacing=pacing, drain_labels=True))
    transactions = [e for e in events if isinstance(e, Transaction)]
    labels = [e for e in events if isinstance(e, Label)]
    assert len(transactions) == 40
    start = datetime.fromtimestamp(1_750_000_000, UTC)
    expected = [start + timedelta(seconds=i / 8) for i in range(40)]
    assert [t.timestamp for t in transactions] == expected
    sent_at = {t.transaction_id: t.timestamp for t in transactions}
    assert len(labels) == 40
    assert all(timedelta(seconds=1) <= lb.labeled_at - sent_at[lb.transaction_id] for lb in labels)
    # Labels go out as soon as they are due: never later than the next transaction (1/8 s).
    assert all(
        lb.labeled_at - sent_at[lb.transaction_id] <= timedelta(seconds=3.125) for lb in labels
    )


def test_realtime_duration_stops_the_transactions() -> None:
    clock = FakeClock(1_750_000_000.0)
    pacing = RealtimePacing(rate=8.0, duration_s=2.0, clock=clock)
    events = list(iter_events(SMALL, pacing=pacing))
    assert sum(isinstance(e, Transaction) for e in events) == 16
    assert clock.slept == pytest.approx(2.0)


# --- simulated-time stream: warm-up, pacing, anchoring at now ------------------------------------

LIVE = SimulatorConfig(
    seed=5,
    n_customers=400,
    n_merchants=500,
    labels=LabelPolicy(delay_min=timedelta(days=1), delay_max=timedelta(days=3)),
)
NOW = datetime(2025, 6, 15, 13, 37, 21, tzinfo=UTC)
WARMUP_DAYS = 7.0
BURST_S = 0.05  # paced()'s default tolerance before it sleeps


def schedule_for(
    rate: float | None, duration_s: float | None, count: int | None, config: SimulatorConfig = LIVE
) -> StreamSchedule:
    return stream_schedule(
        config, warmup_days=WARMUP_DAYS, rate=rate, duration_s=duration_s, count=count, now=NOW
    )


def run_stream(
    schedule: StreamSchedule, rate: float | None, config: SimulatorConfig = LIVE
) -> tuple[list[Transaction | Label], list[float], FakeClock]:
    """The stream's events with the fake clock's time when each was yielded."""
    clock = FakeClock(NOW.timestamp())
    events, yielded_at = [], []
    for event in stream_events(config, schedule, rate=rate, clock=clock):
        events.append(event)
        yielded_at.append(clock.now)
    return events, yielded_at, clock


@pytest.mark.parametrize(
    ("rate", "duration_s", "count", "live"),
    [
        (200.0, 20.0, None, 4000),  # the demo's 200 tx/s for 20 s: about 10 simulated days here
        (50.0, 7.5, None, 375),  # under one simulated day
        (None, None, 900, 900),  # unthrottled, bounded by a count
        (100.0, 60.0, 2500, 2500),  # the count is the smaller bound
    ],
)
def test_live_part_ends_at_now_after_an_unthrottled_warmup(
    rate: float | None, duration_s: float | None, count: int | None, live: int
) -> None:
    schedule = schedule_for(rate, duration_s, count)
    events, yielded_at, _ = run_stream(schedule, rate)
    transactions = [e for e in events if isinstance(e, Transaction)]
    warm = schedule.warmup_transactions
    assert schedule.live_transactions == live
    assert len(transactions) == warm + live
    # Warm-up: at least the requested days, and sent without the clock moving.
    assert schedule.start == schedule.start.replace(hour=0, minute=0, second=0, microsecond=0)
    assert transactions[0].timestamp >= schedule.start
    assert transactions[warm].timestamp >= schedule.start + timedelta(days=WARMUP_DAYS)
    assert transactions[warm - 1].timestamp <= transactions[warm].timestamp
    first_live = events.index(transactions[warm])
    assert set(yielded_at[: first_live + 1]) == {NOW.timestamp()}
    # Live part: ends within an hour before now, never stamped after the clock.
    assert transactions[warm].timestamp == schedule.live_from
    assert transactions[-1].timestamp == schedule.live_until
    assert NOW - timedelta(hours=1) <= transactions[-1].timestamp <= NOW
    stamped = [
        (e.timestamp.timestamp(), t)
        for e, t in zip(events, yielded_at, strict=True)
        if isinstance(e, Transaction)
    ]
    assert all(stamp <= sent for stamp, sent in stamped)
    if rate is not None:
        assert yielded_at[-1] - NOW.timestamp() == pytest.approx((live - 1) / rate, abs=BURST_S)


def test_labels_follow_their_transactions_by_at_least_the_minimum_delay() -> None:
    schedule = schedule_for(200.0, 10.0, None)
    events, _, _ = run_stream(schedule, 200.0)
    position = {e.transaction_id: i for i, e in enumerate(events) if isinstance(e, Transaction)}
    stamped = {e.transaction_id: e.timestamp for e in events if isinstance(e, Transaction)}
    labels = [(i, e) for i, e in enumerate(events) if isinstance(e, Label)]
    assert len(labels) > 1000  # the warm-up's transactions get theirs during the stream
    for index, label in labels:
        assert position[label.transaction_id] < index
        assert label.labeled_at - stamped[label.transaction_id] >= LIVE.labels.delay_min
        assert label.labeled_at <= NOW  # no drain: nothing from the future


def test_paced_holds_the_rate_sleeping_once_per_burst_not_per_event() -> None:
    delays = LabelPolicy(delay_min=timedelta(0), delay_max=timedelta(hours=1))
    config = SMALL.model_copy(update={"labels": delays})
    events = list(iter_events(config, max_transactions=400))
    assert sum(isinstance(e, Label) for e in events) > 50  # labels ride along, uncounted
    clock = FakeClock(datetime(2025, 6, 1, tzinfo=UTC).timestamp())  # after every timestamp
    started = clock.now
    sent_at = [clock.now for e in paced(events, 100.0, clock) if isinstance(e, Transaction)]
    due = [started + k / 100.0 for k in range(400)]
    assert all(d - BURST_S - 1e-9 <= t <= d + 1e-9 for t, d in zip(sent_at, due, strict=True))
    assert sent_at[-1] - started == pytest.approx(399 / 100.0, abs=BURST_S)
    assert len(clock.sleeps) <= 400 / 5  # at 100 tx/s a 50 ms burst is 5 transactions


def test_paced_holds_back_transactions_stamped_after_the_clock() -> None:
    events = list(iter_events(SMALL, max_transactions=60))
    clock = FakeClock(SMALL.start.timestamp())  # midnight: every transaction is still ahead
    for event in paced(events, None, clock):
        if isinstance(event, Transaction):
            assert clock.now == pytest.approx(event.timestamp.timestamp(), abs=1e-6)
    assert len(clock.sleeps) > 30  # the clock followed the timestamps, not a rate


def test_unbounded_schedule_goes_live_after_exactly_the_warmup_days() -> None:
    schedule = schedule_for(200.0, None, None)
    assert schedule.start == datetime(2025, 6, 7, tzinfo=UTC)  # midnight of now - 7 d - 1 d
    assert schedule.live_from == datetime(2025, 6, 14, tzinfo=UTC)
    assert schedule.live_transactions is None and schedule.live_until is None
    warmup, _ = generate_history(LIVE.model_copy(update={"start": schedule.start}), 7)
    assert schedule.warmup_transactions == len(warmup)
    clock = FakeClock(NOW.timestamp())
    stream = stream_events(LIVE, schedule, rate=1000.0, clock=clock)
    sent = []
    for event in itertools.islice(stream, 20_000):
        if isinstance(event, Transaction):
            sent.append(event)
            if event.timestamp > NOW:
                break
    assert [t.transaction_id for t in sent[: len(warmup)]] == warmup["transaction_id"].tolist()
    # Caught up with the clock: from there on each transaction waits for its own timestamp.
    assert sent[-1].timestamp > NOW
    assert clock.now == pytest.approx(sent[-1].timestamp.timestamp(), abs=1e-6)


def test_simulated_stream_is_deterministic() -> None:
    first, second = schedule_for(200.0, 5.0, None), schedule_for(200.0, 5.0, None)
    assert first == second
    wire_a = [e.to_bytes() for e in run_stream(first, 200.0)[0]]
    wire_b = [e.to_bytes() for e in run_stream(second, 200.0)[0]]
    assert wire_a == wire_b


def test_drift_at_a_live_count_counts_after_the_warmup() -> None:
    schedule = schedule_for(None, None, 1500)
    drift = DriftSchedule.standard(at_transaction=schedule.run_index(500))
    events, _, _ = run_stream(schedule, None, LIVE.model_copy(update={"drift": drift}))
    live = [e for e in events if isinstance(e, Transaction)][schedule.warmup_transactions :]
    crypto = [t.merchant_category == "crypto_exchange" for t in live]
    assert not any(crypto[:490])  # resolved on legitimate rows: within a few of the 500th
    assert any(crypto[500:])


def test_schedule_refuses_what_cannot_be_anchored() -> None:
    with pytest.raises(ValueError, match="positive rate"):
        schedule_for(None, 60.0, None)
    with pytest.raises(ValueError, match="more than the 3,650"):
        schedule_for(None, None, 400 * 4000)  # 4,000 simulated days of 400 customers
    with pytest.raises(ValueError, match="warmup_days"):
        stream_schedule(LIVE, warmup_days=-1, rate=1.0, duration_s=None, count=1, now=NOW)


def test_cli_stream_sends_warmup_then_live_ending_now(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    producer = FakeProducer()
    monkeypatch.setattr(stream_cli, "KafkaSink", lambda kafka: KafkaSink(kafka, producer=producer))
    args = ["stream", "--customers", "300", "--merchants", "500", "--rate", "0"]
    assert cli.main([*args, "--count", "150", "--warmup-days", "1"]) == 0
    (summary,) = capsys.readouterr().out.strip().splitlines()
    match = re.match(r"stream \(simulated clock\): ([\d,]+) warm-up .* then 150 live", summary)
    assert match is not None, summary
    sent = [
        Transaction.model_validate_json(v) for t, _, v in producer.messages if t == "transactions"
    ]
    assert len(sent) == int(match[1].replace(",", "")) + 150
    now = datetime.now(UTC)
    assert now - timedelta(hours=3) <= sent[-1].timestamp <= now
    assert sent[0].timestamp <= now - timedelta(days=1)


def test_cli_stream_wall_clock_stamps_now_without_warmup(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    producer = FakeProducer()
    monkeypatch.setattr(stream_cli, "KafkaSink", lambda kafka: KafkaSink(kafka, producer=producer))
    before = datetime.now(UTC) - timedelta(milliseconds=1)  # stamps are whole milliseconds
    args = ["stream", "--clock", "wall", "--customers", "300", "--merchants", "500"]
    assert cli.main([*args, "--count", "40", "--rate", "0"]) == 0
    assert capsys.readouterr().out.startswith("stream (wall clock): 0 warm-up transactions")
    sent = [
        Transaction.model_validate_json(v) for t, _, v in producer.messages if t == "transactions"
    ]
    assert len(sent) == 40
    assert all(before <= t.timestamp <= datetime.now(UTC) for t in sent)


# --- scheduled drift ----------------------------------------------------------------------------


def test_drift_shifts_the_population_after_its_time_and_not_before(
    drifting_run: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    transactions, _ = drifting_run
    legit = transactions[~transactions["is_fraud"]]
    day = pd.Timedelta(days=1)
    early = legit[legit["timestamp"] < DRIFT_AT - 7 * day]
    late_before = legit[
        (legit["timestamp"] >= DRIFT_AT - 7 * day) & (legit["timestamp"] < DRIFT_AT)
    ]
    after = legit[legit["timestamp"] >= DRIFT_AT]

    def crypto_share(frame: pd.DataFrame) -> float:
        return float((frame["merchant_category"] == "crypto_exchange").mean())

    assert crypto_share(early) == crypto_share(late_before) == 0.0
    assert crypto_share(after) > 0.02
    stable = usd(late_before).mean() / usd(early).mean()
    shifted = usd(after).mean() / usd(late_before).mean()
    assert abs(stable - 1) < 0.05
    assert shifted > 1.1
    new_pattern = transactions[transactions["scenario"] == "crypto_cashout"]
    assert len(new_pattern) > 0
    assert new_pattern["timestamp"].min() >= DRIFT_AT


def test_days_before_the_drift_match_a_run_without_it() -> None:
    config = SMALL.model_copy(update={"drift": DriftSchedule.standard(at=datetime(2025, 1, 5, 12))})
    drifted, _ = generate_history(config, 7)
    plain, _ = generate_history(SMALL, 7)
    cut = pd.Timestamp("2025-01-05", tz=UTC)
    pd.testing.assert_frame_equal(
        drifted[drifted["timestamp"] < cut], plain[plain["timestamp"] < cut]
    )
    assert not drifted[drifted["timestamp"] >= cut].equals(
        plain[plain["timestamp"] >= cut].reset_index(drop=True)
    )


def test_drift_at_a_transaction_count_is_logged_where_it_happened() -> None:
    config = SMALL.model_copy(update={"drift": DriftSchedule.standard(at_transaction=2500)})
    simulator = Simulator(config)
    transactions = pd.concat(
        [batch.transactions for batch in simulator.iter_days(10)], ignore_index=True
    )
    (record,) = simulator.drift_log
    index = record.first_transaction_index
    assert abs(index - 2500) <= 10  # resolved on legitimate rows; fraud rows shift it slightly
    assert transactions["timestamp"].iloc[index] >= record.effective_at
    assert transactions["timestamp"].iloc[index - 1] < record.effective_at
    crypto = transactions["merchant_category"] == "crypto_exchange"
    assert not crypto.iloc[:index].any()
    assert crypto.iloc[index:].any()


def test_drift_event_validation() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        DriftEvent(name="x")
    with pytest.raises(ValueError, match="unknown category"):
        DriftEvent(name="x", at_transaction=5, category_weight_multipliers={"nope": 2.0})
    with pytest.raises(ValueError, match="midnight"):
        SimulatorConfig(start=datetime(2025, 1, 1, 5, tzinfo=UTC))


# --- geo ----------------------------------------------------------------------------------------


def test_haversine_between_known_cities() -> None:
    mumbai_delhi = haversine_km("IN-MH", "IN-DL")
    assert mumbai_delhi is not None and 1100 < mumbai_delhi < 1200
    london_new_york = haversine_km("GB-ENG", "US-NY")
    assert london_new_york is not None and 5500 < london_new_york < 5650
    assert haversine_km("DE-BE", "DE-BE") == 0.0
    assert haversine_km("IN-MH", "US-CA") == haversine_km("US-CA", "IN-MH")
    assert haversine_km("IN-MH", "XX-ZZ") is None
    many = haversine_km_many(["IN-MH", "XX-ZZ", "GB-ENG"], ["IN-DL", "IN-DL", "US-NY"])
    assert many[0] == pytest.approx(mumbai_delhi)
    assert math.isnan(many[1])
    assert many[2] == pytest.approx(london_new_york)


# --- sinks and CLI -------------------------------------------------------------------------------


class FakeProducer:
    """Records messages; delivery reports say whatever the test decides."""

    def __init__(self, fail_every: int = 0, full_once: bool = False) -> None:
        self.messages: list[tuple[str, bytes, bytes]] = []
        self.pending: list[Any] = []
        self.fail_every = fail_every
        self.full_once = full_once

    def produce(self, topic: str, *, value: bytes, key: bytes, on_delivery: Any) -> None:
        if self.full_once:
            self.full_once = False
            raise BufferError("queue full")
        self.messages.append((topic, key, value))
        failed = self.fail_every and len(self.messages) % self.fail_every == 0
        self.pending.append((on_delivery, "broker said no" if failed else None))

    def poll(self, timeout: float) -> int:
        served, self.pending = self.pending, []
        for callback, error in served:
            callback(error, None if error is None else _Message())
        return len(served)

    def flush(self, timeout: float) -> int:
        self.poll(0)
        return 0


class _Message:
    def topic(self) -> str:
        return "transactions"


def sample_events(count: int) -> Iterator[Transaction | Label]:
    config = SMALL.model_copy(update={"labels": LabelPolicy(delay_max=timedelta(days=1))})
    return iter_events(config, max_transactions=count, drain_labels=True)


def test_kafka_sink_keys_topics_and_values() -> None:
    producer = FakeProducer(full_once=True)
    events = list(sample_events(50))
    with KafkaSink(KafkaSettings(), producer=producer) as sink:
        for event in events:
            sink.send(event)
    assert len(producer.messages) == len(events)
    for (topic, key, value), event in zip(producer.messages, events, strict=True):
        assert value == event.to_bytes()
        if isinstance(event, Transaction):
            assert (topic, key) == ("transactions", event.customer_id.encode())
        else:
            assert (topic, key) == ("transaction-labels", event.transaction_id.encode())
    assert sink.delivered == len(events)
    assert sink.transactions_sent == 50


def test_kafka_sink_raises_when_a_delivery_failed() -> None:
    producer = FakeProducer(fail_every=7)
    sink = KafkaSink(KafkaSettings(), producer=producer)
    events = sample_events(20)
    with pytest.raises(DeliveryError, match="broker said no"):
        for event in events:
            sink.send(event)
    assert len(producer.messages) == 7  # stopped at the first reported failure

    quiet_failure = KafkaSink(KafkaSettings(), producer=FakeProducer(fail_every=1))
    quiet_failure._producer.produce(  # a failure only reported at flush time
        "t", value=b"v", key=b"k", on_delivery=quiet_failure._on_delivery
    )
    with pytest.raises(DeliveryError, match="1 message"):
        quiet_failure.flush()


def test_cli_history_writes_lake_and_labelled_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["history", "--days", "3", "--customers", "300", "--merchants", "500", "--seed", "4"]
    csv = tmp_path / "labelled.csv"
    assert cli.main([*args, "--out", str(tmp_path / "store"), "--csv", str(csv)]) == 0
    summary = capsys.readouterr().out.strip().splitlines()
    assert len(summary) == 1 and summary[0].startswith("history:")
    partitions = sorted(p.name for p in (tmp_path / "store/lake/transactions").iterdir())
    assert partitions == ["date=2025-01-01", "date=2025-01-02", "date=2025-01-03"]
    expected, _ = generate_history(
        SimulatorConfig(seed=4, n_customers=300, n_merchants=500), days=3
    )
    written = pd.read_csv(csv, keep_default_na=False)
    written["timestamp"] = pd.to_datetime(written["timestamp"], utc=True)
    pd.testing.assert_frame_equal(written, expected, check_dtype=False)


def test_cli_fails_with_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["history", "--no-lake"]) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1
    assert "would write nothing" in error[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1d-10d", (timedelta(days=1), timedelta(days=10))),
        ("30s-5m", (timedelta(seconds=30), timedelta(minutes=5))),
        ("90", (timedelta(seconds=90), timedelta(seconds=90))),
        ("250ms-1.5h", (timedelta(milliseconds=250), timedelta(hours=1.5))),
    ],
)
def test_label_delay_ranges_parse(text: str, expected: tuple[timedelta, timedelta]) -> None:
    assert parse_delay_range(text) == expected
