"""The realistic preset: each of its scenarios leaves the signature it is meant to leave.

Each test checks a property of the generated data that breaks if the scenario breaks (fraud that
stops mimicking, a breach that stops lasting days, noise that stops being noise), measured on the
data against the world the simulator built, never a hard-coded result.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from producers import cli
from producers.cli.options import simulator_config
from producers.simulator import Simulator, SimulatorConfig, generate_history, iter_events
from producers.simulator.config import FraudRates, Fraudsters, LabelPolicy
from producers.simulator.presets import PRESETS, REALISTIC
from producers.simulator.subtle_fraud import BREACH_DAYS
from producers.simulator.world import (
    CATEGORY_INDEX,
    HABIT_MIMIC,
    HIGH_VALUE,
    LEGIT,
    MERCHANT_BREACH,
    QUIET_CARD_TESTING,
    TYPICAL_USD,
)
from stream_app.geo import CURRENCY_PER_USD
from stream_app.schemas import Transaction

# The preset on 2,000 customers with more breaches than its own rate (about one a month for
# 2,000 customers), so that a 30-day run has several.
PRESET_RUN = SimulatorConfig(
    **{
        **dict(REALISTIC),
        "n_customers": 2000,
        "fraud_rates": FraudRates(**{**dict(REALISTIC.fraud_rates), "merchant_breach": 0.1}),
    }
)
RUN_DAYS = 30


@pytest.fixture(scope="module")
def run() -> tuple[pd.DataFrame, pd.DataFrame]:
    return generate_history(PRESET_RUN, RUN_DAYS)


@pytest.fixture(scope="module")
def simulator() -> Simulator:
    return Simulator(PRESET_RUN)  # its world is the one the run was drawn from


def usd(frame: pd.DataFrame) -> pd.Series:
    return frame["amount"] / frame["currency"].map(CURRENCY_PER_USD)


def customer_index(frame: pd.DataFrame) -> np.ndarray:
    return frame["customer_id"].str[1:].astype(int).to_numpy()


def ticket_ratio(frame: pd.DataFrame, simulator: Simulator) -> pd.Series:
    """Amount over the customer's usual ticket in that category (typical ticket x spend level)."""
    category = frame["merchant_category"].map(CATEGORY_INDEX).to_numpy()
    usual = TYPICAL_USD[category] * simulator.world.customers.spend_level[customer_index(frame)]
    ratio: pd.Series = usd(frame) / usual
    return ratio


def scenario(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    rows = frame[frame["scenario"] == name]
    assert len(rows) >= 20, f"too few {name} rows to judge"
    return rows


def test_the_demo_keeps_its_default_world() -> None:
    assert PRESETS["default"] == SimulatorConfig()
    args = cli.build_parser().parse_args(["history", "--no-lake", "--parquet", "x.parquet"])
    assert args.preset == "default"
    assert simulator_config(args, SimulatorConfig().start) == SimulatorConfig()


def test_preset_option_builds_the_preset_with_the_options_applied() -> None:
    base = ["history", "--preset", "realistic", "--seed", "9", "--customers", "300"]
    config = simulator_config(cli.build_parser().parse_args(base), REALISTIC.start)
    assert config == SimulatorConfig(**{**dict(REALISTIC), "seed": 9, "n_customers": 300})
    scaled = cli.build_parser().parse_args([*base, "--fraud-scale", "2", "--label-delay", "1d-2d"])
    config = simulator_config(scaled, REALISTIC.start)
    assert config.fraud_rates == REALISTIC.fraud_rates.scaled(2.0)
    assert (config.labels.delay_min, config.labels.delay_max) == (
        timedelta(days=1),
        timedelta(days=2),
    )
    assert config.labels.missed_fraud == REALISTIC.labels.missed_fraud  # noise kept
    stream = cli.build_parser().parse_args(["stream", "--preset", "realistic"])
    assert simulator_config(stream, REALISTIC.start).labels == REALISTIC.labels


def test_mimicking_fraud_buys_the_usual_categories_at_about_the_usual_ticket(
    run: tuple[pd.DataFrame, pd.DataFrame], simulator: Simulator
) -> None:
    transactions, _ = run
    mimic, loud = scenario(transactions, HABIT_MIMIC), scenario(transactions, HIGH_VALUE)
    weights = simulator.world.customers.category_weights

    def habit_weight(rows: pd.DataFrame) -> float:
        category = rows["merchant_category"].map(CATEGORY_INDEX).to_numpy()
        return float(weights[customer_index(rows), category].mean())

    # Categories drawn from the victim's own mix weigh far more in it than a category picked at
    # random (1 / the number of categories people spend in), and than the loud scenario's.
    spent_in = int((weights.sum(axis=0) > 0).sum())
    assert habit_weight(mimic) > 2 / spent_in
    assert habit_weight(mimic) > 2 * habit_weight(loud)
    assert 0.8 < ticket_ratio(mimic, simulator).median() < 2.5
    assert ticket_ratio(loud, simulator).median() > 5
    homes = simulator.world.regions.codes[simulator.world.customers.home_region]
    assert (mimic["geo_location"].to_numpy() == homes[customer_index(mimic)]).all()


def test_a_breached_merchant_charges_ordinary_tickets_for_days(
    run: tuple[pd.DataFrame, pd.DataFrame], simulator: Simulator
) -> None:
    transactions, _ = run
    breach = scenario(transactions, MERCHANT_BREACH)
    days = breach.groupby("merchant_id")["timestamp"].agg(lambda t: t.dt.floor("D").nunique())
    assert (days >= 3).mean() > 0.8  # charges on several days, not a burst of hours
    assert days.max() >= BREACH_DAYS[0]
    assert breach.groupby("merchant_id")["customer_id"].nunique().min() >= 2
    assert 0.6 < ticket_ratio(breach, simulator).median() < 2.0
    # From the customer's own device: no new terminal gives it away.
    primary = simulator.world.customers.primary_device(customer_index(breach))
    assert (breach["device_id"].to_numpy() == primary).all()


def test_a_breach_runs_on_after_the_day_it_started_and_streams_the_same() -> None:
    config = SimulatorConfig(
        **{**dict(PRESET_RUN), "n_customers": 400, "fraud_rates": FraudRates(merchant_breach=2.0)}
    )
    short, _ = generate_history(config, 4)
    longer, _ = generate_history(config, 8)
    # Carried-over rows land on their own day whatever the run's length.
    pd.testing.assert_frame_equal(short, longer.iloc[: len(short)])
    assert longer["timestamp"].iloc[len(short)] >= config.start + timedelta(days=4)
    first_day = longer["timestamp"] < config.start + timedelta(days=1)
    assert not (longer.loc[first_day, "scenario"] == MERCHANT_BREACH).any()  # starts the day after
    assert (longer["scenario"] == MERCHANT_BREACH).sum() > 0
    streamed = [e.transaction_id for e in iter_events(config, days=8) if isinstance(e, Transaction)]
    assert streamed == longer["transaction_id"].tolist()


def test_quiet_card_testing_is_a_few_small_payments_near_home(
    run: tuple[pd.DataFrame, pd.DataFrame], simulator: Simulator
) -> None:
    transactions, _ = run
    testing = scenario(transactions, QUIET_CARD_TESTING)
    assert (usd(testing) <= 4.01).all()
    assert (testing["transaction_type"] == "online").all()
    per_card_day = testing.groupby(["customer_id", testing["timestamp"].dt.floor("D")]).size()
    assert per_card_day.quantile(0.9) <= 4  # a handful, not the classic burst of 8-25
    homes = simulator.world.regions.codes[simulator.world.customers.home_region]
    assert (testing["geo_location"].to_numpy() == homes[customer_index(testing)]).all()


def _victims_per_attacker_device(fraudsters: Fraudsters) -> tuple[pd.Series, Simulator]:
    config = SimulatorConfig(
        seed=8, n_customers=1000, fraud_rates=FraudRates(habit_mimic=20.0), fraudsters=fraudsters
    )
    simulator = Simulator(config)
    transactions = pd.concat(batch.transactions for batch in simulator.iter_days(10))
    mimic = transactions[transactions["scenario"] == HABIT_MIMIC]
    attacker = mimic[~mimic["device_id"].isin(set(simulator.world.customers.device_ids))]
    return attacker.groupby("device_id")["customer_id"].nunique(), simulator


def test_few_fraudsters_share_few_devices_across_many_victims() -> None:
    victims, simulator = _victims_per_attacker_device(REALISTIC.fraudsters)
    pool = set(simulator.world.fraud_devices)
    assert len(pool) == REALISTIC.fraudsters.devices
    assert victims.index.isin(pool).mean() > 0.5  # the few fresh devices are one victim each
    assert victims[victims.index.isin(pool)].median() >= 3
    # The default world's large pool, used half the time: a device rarely sees a second victim.
    default_victims, _ = _victims_per_attacker_device(Fraudsters())
    assert default_victims.median() == 1


def test_label_noise_misses_frauds_and_charges_back_legit_online_purchases() -> None:
    noisy = SimulatorConfig(
        seed=5,
        n_customers=1000,
        labels=LabelPolicy(missed_fraud=0.3, false_chargeback=0.02),
        fraud_rates=SimulatorConfig().fraud_rates.scaled(3.0),
    )
    transactions, labels = generate_history(noisy, 14)
    fraud = transactions[transactions["scenario"] != LEGIT]
    missed = 1 - fraud["is_fraud"].mean()
    assert abs(missed - 0.3) < 4 * np.sqrt(0.3 * 0.7 / len(fraud))
    legit = transactions[transactions["scenario"] == LEGIT]
    charged_back = legit[legit["is_fraud"]]
    assert (charged_back["transaction_type"] == "online").all()
    online = legit[legit["transaction_type"] == "online"]
    rate = len(charged_back) / len(online)
    assert abs(rate - 0.02) < 4 * np.sqrt(0.02 * 0.98 / len(online))
    # The chargeback feed says what the file says: labels carry the same (noisy) is_fraud.
    joined = labels.merge(transactions, on="transaction_id", suffixes=("", "_tx"))
    assert (joined["is_fraud"] == joined["is_fraud_tx"]).all()
    assert set(joined.loc[joined["is_fraud"], "source"]) == {"chargeback"}


def test_labels_arrive_up_to_weeks_late_whatever_the_class() -> None:
    config = SimulatorConfig(**{**dict(REALISTIC), "n_customers": 1000})
    labels = pd.concat(batch.new_labels for batch in Simulator(config).iter_days(3))
    transactions = pd.concat(batch.transactions for batch in Simulator(config).iter_days(3))
    delay = labels["labeled_at"] - labels["transaction_id"].map(
        transactions.set_index("transaction_id")["timestamp"]
    )
    assert delay.min() >= REALISTIC.labels.delay_min
    assert delay.max() <= REALISTIC.labels.delay_max
    assert (delay > timedelta(days=21)).mean() > 0.2  # weeks, not days
    days = delay.dt.total_seconds().to_numpy() / 86_400
    fraud = labels["is_fraud"].to_numpy(dtype=bool)
    # Same delays for both classes: arrival time must not give the label away.
    assert abs(float(np.median(days[fraud])) - float(np.median(days))) < 5
