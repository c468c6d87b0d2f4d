"""Everything that determines a run, as validated, frozen models: same config, same output.

The configuration is what callers build (the CLI, the demo, tests), so it is kept apart from
the code that runs it; validation here means the generator never sees a bad value.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from producers.simulator.frames import as_utc
from producers.simulator.scenarios import FRAUD_SCENARIOS, SCENARIOS
from producers.simulator.world import (
    CARD_TESTING,
    CATEGORIES,
    CATEGORY_INDEX,
    CRYPTO_CASHOUT,
    FRAUD_DEVICE_POOL,
)
from stream_app.geo import REGIONS

MIN_MERCHANTS = len(REGIONS) * len(CATEGORIES)  # one per region and category at least


class _Config(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FraudRates(_Config):
    """Fraud incidents per 1,000 customers per day, per scenario.

    Most incidents are several transactions (a card-testing burst is 8-25), see
    :mod:`producers.simulator.fraud`. The defaults give about 0.7 % fraudulent transactions.
    """

    card_testing: float = Field(default=0.08, ge=0)
    account_takeover: float = Field(default=0.3, ge=0)
    compromised_merchant: float = Field(default=0.02, ge=0)
    stolen_card_spree: float = Field(default=0.15, ge=0)
    impossible_travel: float = Field(default=0.5, ge=0)
    high_value: float = Field(default=0.8, ge=0)
    crypto_cashout: float = Field(default=0.0, ge=0, description="Off until a drift enables it.")
    # The quiet scenarios of producers.simulator.subtle_fraud, off unless a preset sets them.
    habit_mimic: float = Field(default=0.0, ge=0)
    merchant_breach: float = Field(default=0.0, ge=0, description="Breaches (each lasts days).")
    quiet_card_testing: float = Field(default=0.0, ge=0)

    def per_scenario(self) -> dict[str, float]:
        return {name: float(getattr(self, name)) for name in FRAUD_SCENARIOS}

    def scaled(self, factor: float) -> FraudRates:
        return FraudRates(**{name: rate * factor for name, rate in self.per_scenario().items()})


class LabelPolicy(_Config):
    """When ground truth becomes known (a uniform delay after the transaction, for every label)
    and how wrong it is.

    Noise is off by default. With it, a transaction's ``is_fraud`` (in the history frame and in
    its label) is what the chargeback feed reports, and ``scenario`` stays what happened: a
    fraud never reported has a fraud scenario and ``is_fraud`` false; a legitimate online
    purchase charged back anyway ("friendly fraud") has scenario ``legit`` and ``is_fraud`` true.
    """

    delay_min: timedelta = timedelta(days=1)
    delay_max: timedelta = timedelta(days=10)
    emit_legit: bool = Field(
        default=True, description="Also publish is_fraud=false labels (training needs negatives)."
    )
    missed_fraud: float = Field(
        default=0.0, ge=0, le=1, description="Share of fraudulent transactions never reported."
    )
    false_chargeback: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Share of legitimate online transactions charged back as fraud anyway.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> LabelPolicy:
        if not timedelta(0) <= self.delay_min <= self.delay_max:
            raise ValueError("label delays must satisfy 0 <= delay_min <= delay_max")
        return self


class DriftEvent(_Config):
    """A change of the population at a simulated time or after a number of transactions.

    Effects accumulate over events. ``at_transaction`` is resolved against the day's legitimate
    traffic, so the switch lands within a few fraud rows of that count; the exact time and
    transaction index are recorded in ``Simulator.drift_log``.
    """

    name: str = Field(min_length=1)
    at: datetime | None = None
    at_transaction: int | None = Field(default=None, ge=1)
    amount_multiplier: float = Field(default=1.0, gt=0, description="On legitimate amounts.")
    category_weight_multipliers: dict[str, float] = Field(default_factory=dict)
    new_category_shares: dict[str, float] = Field(
        default_factory=dict, description="Average share of spending moving to these categories."
    )
    fraud_rate_multipliers: dict[str, float] = Field(default_factory=dict)
    fraud_rates: dict[str, float] = Field(
        default_factory=dict, description="Set these scenarios' rates, e.g. a new pattern."
    )

    @field_validator("at")
    @classmethod
    def _utc_at(cls, value: datetime | None) -> datetime | None:
        return None if value is None else as_utc(value)

    @model_validator(mode="after")
    def _consistent(self) -> DriftEvent:
        if (self.at is None) == (self.at_transaction is None):
            raise ValueError("a drift event needs exactly one of 'at' and 'at_transaction'")
        _check_names(self.category_weight_multipliers, CATEGORY_INDEX, "category")
        _check_names(self.new_category_shares, CATEGORY_INDEX, "category")
        _check_names(self.fraud_rate_multipliers, SCENARIOS, "fraud scenario")
        _check_names(self.fraud_rates, SCENARIOS, "fraud scenario")
        if sum(self.new_category_shares.values()) >= 0.5:
            raise ValueError("new_category_shares must sum to less than 0.5")
        return self


def _check_names(values: dict[str, float], known: Any, kind: str) -> None:
    for name, value in values.items():
        if name not in known:
            raise ValueError(f"unknown {kind} {name!r}; known: {', '.join(known)}")
        if value < 0:
            raise ValueError(f"{kind} {name!r}: value must be >= 0")


class DriftSchedule(_Config):
    """Drift events, applied in the order they trigger."""

    events: tuple[DriftEvent, ...] = ()

    @classmethod
    def standard(
        cls, *, at: datetime | None = None, at_transaction: int | None = None
    ) -> DriftSchedule:
        """The reference drift: pricier baskets, a new spending mix, a new fraud pattern."""
        event = DriftEvent(
            name="spending-shift",
            at=at,
            at_transaction=at_transaction,
            amount_multiplier=1.3,
            category_weight_multipliers={
                "digital_goods": 2.0,
                "travel": 0.5,
                "cash_withdrawal": 0.5,
            },
            new_category_shares={"crypto_exchange": 0.05, "ev_charging": 0.04},
            fraud_rate_multipliers={CARD_TESTING: 2.0},
            fraud_rates={CRYPTO_CASHOUT: 0.6},
        )
        return cls(events=(event,))


class Fraudsters(_Config):
    """The fraudsters' shared devices: how many there are, and how often an attack uses one.

    Attacks that do not use a pooled device use a brand-new one. Few devices reused every time
    is "fewer fraudsters who do more"; no feature keys on a device across customers today, so
    it shows as victims sharing devices in the data, not as an easy signal.
    """

    devices: int = Field(default=FRAUD_DEVICE_POOL, ge=1)
    device_reuse: float = Field(default=0.5, ge=0, le=1)


class SimulatorConfig(_Config):
    """Everything that determines a run; same config (seed included) gives identical output."""

    seed: int = Field(default=42, ge=0)
    n_customers: int = Field(default=5000, ge=1)
    n_merchants: int = Field(default=2000, ge=MIN_MERCHANTS)
    start: datetime = Field(
        default=datetime(2025, 1, 1, tzinfo=UTC), description="First simulated day, UTC midnight."
    )
    transactions_per_customer_day: float = Field(default=1.0, gt=0)
    domestic_travel_rate: float = Field(default=0.03, ge=0, le=1)
    international_travel_rate: float = Field(default=0.005, ge=0, le=1)
    fraud_rates: FraudRates = FraudRates()
    labels: LabelPolicy = LabelPolicy()
    fraudsters: Fraudsters = Fraudsters()
    drift: DriftSchedule = DriftSchedule()

    @field_validator("start")
    @classmethod
    def _midnight(cls, value: datetime) -> datetime:
        value = as_utc(value)
        if value != value.replace(hour=0, minute=0, second=0, microsecond=0):
            raise ValueError("start must be a UTC midnight (days are partitions of the lake)")
        return value

    @model_validator(mode="after")
    def _travel(self) -> SimulatorConfig:
        if self.domestic_travel_rate + self.international_travel_rate > 1:
            raise ValueError("travel rates must sum to at most 1")
        return self
