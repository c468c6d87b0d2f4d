"""Seeded transaction simulator: months of labelled history in seconds, or a live paced stream.

The simulator runs one simulated UTC day at a time. A day is generated as columns with numpy
(see :mod:`producers.scenarios`): who pays when, what they buy under the drift regime in force at
that moment, the fraud incidents of the day, then merchant lookup, currency conversion and IDs
for all rows at once. Each day draws from its own generator seeded by ``(seed, day)``, so the
same seed and config give byte-identical output however the days are consumed.

A live stream runs in simulated time too (:func:`stream_schedule`, :func:`stream_events`): it
replays a warm-up of recent simulated days at full speed, then throttles the rest to a target
rate in wall time, anchored so that the simulated timeline ends at the wall clock. The real-time
alternative, :class:`RealtimePacing`, stamps events with the wall clock instead.

Ground truth travels in two ways: the ``is_fraud`` and ``scenario`` columns of the history frame
(for backtests), and :class:`~stream_app.schemas.Label` records published after a random delay
(as a chargeback feed would). Legitimate transactions get labels too (``emit_legit``, on by
default) with the *same* delay distribution as fraud: if the two differed, the mere arrival time
of a label would reveal the class to anything that trains on "what is labelled so far".
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from producers import scenarios as sc
from stream_app.geo import REGIONS
from stream_app.schemas import MAX_AMOUNT, MAX_EVENT_AGE, Label, Transaction
from stream_app.store import LABEL_COLUMNS, TRANSACTION_COLUMNS

logger = logging.getLogger(__name__)

GROUND_TRUTH_COLUMNS: tuple[str, ...] = ("is_fraud", "scenario")
FRAUD_LABEL_SOURCE = "chargeback"
LEGIT_LABEL_SOURCE = "no_dispute"
# Monday first; Friday and Saturday busiest, Sunday quietest. Mean 1.0.
WEEKDAY_VOLUME = (0.94, 0.96, 0.98, 1.0, 1.08, 1.12, 0.92)
MIN_MERCHANTS = len(REGIONS) * len(sc.CATEGORIES)  # one per region and category at least
AMOUNT_CAP = MAX_AMOUNT - 1.0
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Spawn keys of the independent random streams derived from the seed.
_WORLD_STREAM, _DAY_STREAM, _DRIFT_STREAM = 0, 1, 2

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _ms(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(milliseconds=1)


def _datetime(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# --- configuration ------------------------------------------------------------------------------


class _Config(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FraudRates(_Config):
    """Fraud incidents per 1,000 customers per day, per scenario.

    Most incidents are several transactions (a card-testing burst is 8-25), see
    :mod:`producers.scenarios`. The defaults give about 0.7 % fraudulent transactions.
    """

    card_testing: float = Field(default=0.08, ge=0)
    account_takeover: float = Field(default=0.3, ge=0)
    compromised_merchant: float = Field(default=0.02, ge=0)
    stolen_card_spree: float = Field(default=0.15, ge=0)
    impossible_travel: float = Field(default=0.5, ge=0)
    high_value: float = Field(default=0.8, ge=0)
    crypto_cashout: float = Field(default=0.0, ge=0, description="Off until a drift enables it.")

    def per_scenario(self) -> dict[str, float]:
        return {name: float(getattr(self, name)) for name in sc.FRAUD_SCENARIOS}

    def scaled(self, factor: float) -> FraudRates:
        return FraudRates(**{name: rate * factor for name, rate in self.per_scenario().items()})


class LabelPolicy(_Config):
    """When ground truth becomes known: a uniform delay after the transaction, for every label."""

    delay_min: timedelta = timedelta(days=1)
    delay_max: timedelta = timedelta(days=10)
    emit_legit: bool = Field(
        default=True, description="Also publish is_fraud=false labels (training needs negatives)."
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
        return None if value is None else _utc(value)

    @model_validator(mode="after")
    def _consistent(self) -> DriftEvent:
        if (self.at is None) == (self.at_transaction is None):
            raise ValueError("a drift event needs exactly one of 'at' and 'at_transaction'")
        _check_names(self.category_weight_multipliers, sc.CATEGORY_INDEX, "category")
        _check_names(self.new_category_shares, sc.CATEGORY_INDEX, "category")
        _check_names(self.fraud_rate_multipliers, sc.SCENARIOS, "fraud scenario")
        _check_names(self.fraud_rates, sc.SCENARIOS, "fraud scenario")
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
            fraud_rate_multipliers={sc.CARD_TESTING: 2.0},
            fraud_rates={sc.CRYPTO_CASHOUT: 0.6},
        )
        return cls(events=(event,))


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
    drift: DriftSchedule = DriftSchedule()

    @field_validator("start")
    @classmethod
    def _midnight(cls, value: datetime) -> datetime:
        value = _utc(value)
        if value != value.replace(hour=0, minute=0, second=0, microsecond=0):
            raise ValueError("start must be a UTC midnight (days are partitions of the lake)")
        return value

    @model_validator(mode="after")
    def _travel(self) -> SimulatorConfig:
        if self.domestic_travel_rate + self.international_travel_rate > 1:
            raise ValueError("travel rates must sum to at most 1")
        return self


# --- drift regimes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Regime:
    """The population's behaviour between two drift events."""

    category_weights: FloatArray  # (customers, categories)
    amount_multiplier: FloatArray  # (categories,)
    fraud_rates: dict[str, float]

    @property
    def category_cum(self) -> FloatArray:
        return np.cumsum(self.category_weights, axis=1)

    def after(self, event: DriftEvent, rng: np.random.Generator) -> _Regime:
        weights = self.category_weights.copy()
        for name, multiplier in event.category_weight_multipliers.items():
            weights[:, sc.CATEGORY_INDEX[name]] *= multiplier
        totals = weights.sum(axis=1, keepdims=True)
        weights = np.where(
            totals > 0, weights / np.where(totals > 0, totals, 1), self.category_weights
        )
        weights = _with_new_categories(weights, event.new_category_shares, rng)
        rates = {
            name: rate * event.fraud_rate_multipliers.get(name, 1.0)
            for name, rate in self.fraud_rates.items()
        }
        rates.update(event.fraud_rates)
        return _Regime(weights, self.amount_multiplier * event.amount_multiplier, rates)


def _with_new_categories(
    weights: FloatArray, shares: dict[str, float], rng: np.random.Generator
) -> FloatArray:
    """Move part of each customer's spending to new categories; keen adopters move more."""
    if not shares:
        return weights
    n = weights.shape[0]
    moved = {name: share * rng.gamma(2.0, 0.5, size=n) for name, share in shares.items()}
    total = np.minimum(sum(moved.values()), 0.9)
    scale = total / np.maximum(sum(moved.values()), 1e-12)
    result: FloatArray = weights * (1 - total)[:, None]
    for name, share in moved.items():
        result[:, sc.CATEGORY_INDEX[name]] += share * scale
    return result


@dataclass(frozen=True)
class DriftRecord:
    """When a drift event took effect: the known answer for drift-detection tests."""

    name: str
    effective_at: datetime
    first_transaction_index: int  # 0-based position in the run of the first drifted transaction


# --- the simulator ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DayBatch:
    """One simulated UTC day.

    ``new_labels`` are the labels of this day's transactions, whenever they will be published;
    ``released_labels`` are those published during this day (labeled_at within it), from this
    and earlier days, sorted by labeled_at.
    """

    day: int
    day_start: datetime
    transactions: pd.DataFrame
    new_labels: pd.DataFrame
    released_labels: pd.DataFrame


@dataclass
class _RunState:
    regime: _Regime
    pending_events: list[tuple[int, DriftEvent]]
    emitted: int = 0


class Simulator:
    """Generates days in order; ``drift_log`` and ``pending_labels`` follow the last day yielded."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.world = sc.build_world(
            _rng(config.seed, _WORLD_STREAM),
            config.n_customers,
            config.n_merchants,
            config.transactions_per_customer_day,
        )
        self.drift_log: list[DriftRecord] = []
        # Labels not yet published, by the simulated day (from start) they will be published on.
        self._label_buckets: dict[int, list[pd.DataFrame]] = {}

    def iter_days(self, days: int | None = None) -> Iterator[DayBatch]:
        """Day 0, 1, ... up to ``days`` (forever if None); each call starts a fresh run."""
        regime = _Regime(
            self.world.customers.category_weights,
            np.ones(len(sc.CATEGORIES)),
            self.config.fraud_rates.per_scenario(),
        )
        state = _RunState(regime, list(enumerate(self.config.drift.events)))
        self.drift_log = []
        self._label_buckets = {}
        for day in itertools.count():
            if days is not None and day >= days:
                return
            yield self._day(day, state)

    def _day(self, day: int, state: _RunState) -> DayBatch:
        config = self.config
        rng = _rng(config.seed, _DAY_STREAM, day)
        day_start = config.start + timedelta(days=day)
        start_ms = _ms(day_start)
        end_ms = start_ms + sc.DAY_MS
        travel = (config.domestic_travel_rate, config.international_travel_rate)
        volume = WEEKDAY_VOLUME[day_start.weekday()]
        schedule = sc.legit_schedule(self.world, rng, start_ms, volume, travel)
        switches = self._due_switches(state, start_ms, end_ms, schedule.time_ms)
        regimes = [state.regime]
        for _, index, event in switches:
            regimes.append(regimes[-1].after(event, _rng(config.seed, _DRIFT_STREAM, index)))
        state.regime = regimes[-1]
        bounds = [start_ms, *(time_ms for time_ms, _, _ in switches), end_ms]
        draft = self._draft_day(rng, schedule, regimes, bounds)
        transactions = self._frame(draft, rng)
        new_labels = self._labels(transactions, rng)
        for time_ms, _, event in switches:
            index = state.emitted + int(np.searchsorted(draft.time_ms, time_ms, side="left"))
            self.drift_log.append(DriftRecord(event.name, _datetime(time_ms), index))
        state.emitted += len(draft)
        released = self._release(new_labels, day, start_ms)
        return DayBatch(day, day_start, transactions, new_labels, released)

    def _draft_day(
        self,
        rng: np.random.Generator,
        schedule: sc.Schedule,
        regimes: list[_Regime],
        bounds: list[int],
    ) -> sc.Draft:
        """Legitimate and fraudulent rows of a day, sorted by time; ``regimes[i]`` rules
        ``[bounds[i], bounds[i + 1])``."""
        row_regime = np.searchsorted(np.array(bounds[1:-1]), schedule.time_ms, side="right")
        legit = sc.legit_draft(
            self.world,
            rng,
            schedule,
            row_regime.astype(np.int64),
            np.stack([regime.category_cum for regime in regimes]),
            np.stack([regime.amount_multiplier for regime in regimes]),
        )
        fraud = [
            draft
            for low, high, regime in zip(bounds[:-1], bounds[1:], regimes, strict=True)
            for draft in self._incidents(rng, regime, sc.Window(low, high, bounds[-1]), legit)
        ]
        draft = sc.Draft.concat([legit, *fraud])
        return draft.take(np.argsort(draft.time_ms, kind="stable"))

    def _due_switches(
        self, state: _RunState, start_ms: int, end_ms: int, legit_ms: IntArray
    ) -> list[tuple[int, int, DriftEvent]]:
        """Drift events that trigger today, with their time, in trigger order."""
        due: list[tuple[int, int, DriftEvent]] = []
        for index, event in state.pending_events:
            when: int | None = None
            if event.at is not None:
                at_ms = _ms(event.at)
                when = max(at_ms, start_ms) if at_ms < end_ms else None
            elif event.at_transaction is not None:
                nth = event.at_transaction - state.emitted  # 1-based, among today's rows
                if nth <= legit_ms.size:
                    when = int(legit_ms[nth - 1]) if nth >= 1 else start_ms
            if when is not None:
                due.append((when, index, event))
        due.sort(key=lambda item: (item[0], item[1]))
        triggered = {index for _, index, _ in due}
        state.pending_events = [item for item in state.pending_events if item[0] not in triggered]
        return due

    def _incidents(
        self, rng: np.random.Generator, regime: _Regime, window: sc.Window, legit: sc.Draft
    ) -> list[sc.Draft]:
        day_share = (window.end_ms - window.start_ms) / sc.DAY_MS
        customers_k = self.world.customers.size / 1000
        drafts = []
        for name in sc.FRAUD_SCENARIOS:
            rate = regime.fraud_rates.get(name, 0.0)
            count = int(rng.poisson(rate * customers_k * day_share)) if rate > 0 else 0
            if count:
                drafts.append(sc.SCENARIOS[name](self.world, rng, window, count, legit))
        return drafts

    def _frame(self, draft: sc.Draft, rng: np.random.Generator) -> pd.DataFrame:
        """Columns of the public transaction format, plus the ground truth."""
        world = self.world
        merchant = draft.merchant.copy()
        unset = merchant < 0
        merchant[unset] = world.merchants.pick(
            draft.region[unset], draft.category[unset], rng.random(int(unset.sum()))
        )
        local = draft.amount_usd * world.regions.usd_rate[draft.region]
        columns: dict[str, Any] = {
            "transaction_id": sc.random_ids(rng, len(draft), "tx-"),
            "customer_id": world.customers.ids[draft.customer],
            "merchant_id": world.merchants.ids[merchant],
            "amount": np.round(np.clip(local, 0.01, AMOUNT_CAP), 2),
            "currency": world.regions.currency[draft.region],
            "merchant_category": _CATEGORY_NAMES[draft.category],
            "transaction_type": _CHANNEL_NAMES[draft.channel],
            "device_id": draft.device,
            "geo_location": world.regions.codes[draft.region],
            "timestamp": pd.to_datetime(draft.time_ms, unit="ms", utc=True),
            "is_fraud": draft.scenario != sc.LEGIT,
            "scenario": draft.scenario,
        }
        return pd.DataFrame(columns)

    def _labels(self, transactions: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        policy = self.config.labels
        low = policy.delay_min // timedelta(milliseconds=1)
        high = policy.delay_max // timedelta(milliseconds=1)
        delay_ms = rng.integers(low, high + 1, size=len(transactions))
        is_fraud = transactions["is_fraud"].to_numpy(dtype=bool)
        source = np.where(is_fraud, FRAUD_LABEL_SOURCE, LEGIT_LABEL_SOURCE).astype(object)
        labels = pd.DataFrame(
            {
                "transaction_id": transactions["transaction_id"],
                "is_fraud": is_fraud,
                "labeled_at": transactions["timestamp"] + pd.to_timedelta(delay_ms, unit="ms"),
                "source": source,
                "customer_id": transactions["customer_id"],
                "merchant_id": transactions["merchant_id"],
                "scenario": transactions["scenario"],
            }
        )
        if policy.emit_legit:
            return labels
        return labels[is_fraud].reset_index(drop=True)

    def _release(self, new_labels: pd.DataFrame, day: int, day_start_ms: int) -> pd.DataFrame:
        """File today's new labels under their publication day; return those due today."""
        publish_day = day + (_epoch_ms(new_labels["labeled_at"]) - day_start_ms) // sc.DAY_MS
        order = np.argsort(publish_day, kind="stable")
        by_day = new_labels.take(order)
        days, starts = np.unique(publish_day[order], return_index=True)
        ends = [*starts[1:], len(by_day)] if len(by_day) else []
        for due_day, start, end in zip(days, starts, ends, strict=True):
            self._label_buckets.setdefault(int(due_day), []).append(by_day.iloc[start:end])
        released = _concat(self._label_buckets.pop(day, []), empty_labels())
        return released.sort_values("labeled_at", kind="stable", ignore_index=True)

    @property
    def pending_labels(self) -> pd.DataFrame:
        """Labels of the transactions generated so far that are not published yet."""
        frames = [
            frame for day in sorted(self._label_buckets) for frame in self._label_buckets[day]
        ]
        pending = _concat(frames, empty_labels())
        return pending.sort_values("labeled_at", kind="stable", ignore_index=True)


_CATEGORY_NAMES = np.array([category.name for category in sc.CATEGORIES], dtype=object)
_CHANNEL_NAMES = np.array(sc.CHANNELS, dtype=object)


def empty_transactions() -> pd.DataFrame:
    """A transactions frame with no rows and the documented dtypes."""
    frame = pd.DataFrame({name: pd.Series(dtype=object) for name in TRANSACTION_COLUMNS})
    frame["amount"] = frame["amount"].astype(np.float64)
    frame["timestamp"] = pd.Series(dtype="datetime64[ns, UTC]")
    frame["is_fraud"] = pd.Series(dtype=bool)
    frame["scenario"] = pd.Series(dtype=object)
    return frame


def empty_labels() -> pd.DataFrame:
    """A labels frame with no rows and the documented dtypes."""
    frame = pd.DataFrame({name: pd.Series(dtype=object) for name in LABEL_COLUMNS})
    frame["is_fraud"] = frame["is_fraud"].astype(bool)
    frame["labeled_at"] = pd.Series(dtype="datetime64[ns, UTC]")
    return frame


def _concat(frames: Sequence[pd.DataFrame], empty: pd.DataFrame) -> pd.DataFrame:
    """Concatenate, skipping empty frames (pandas warns about their dtypes) and never failing."""
    non_empty = [frame for frame in frames if len(frame)]
    if not non_empty:
        return empty
    return pd.concat(non_empty, ignore_index=True)


# --- public entry points ------------------------------------------------------------------------


def generate_history(config: SimulatorConfig, days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``days`` of transactions (with ground truth) and the labels published by their end.

    Transactions are sorted by timestamp; labels by labeled_at, and only those with labeled_at
    before ``config.start + days``: at the end of the history, recent transactions are still
    waiting for their labels, as they would be in production.
    """
    if days < 0:
        raise ValueError("days must be >= 0")
    batches = list(Simulator(config).iter_days(days))
    transactions = _concat([batch.transactions for batch in batches], empty_transactions())
    labels = _concat([batch.released_labels for batch in batches], empty_labels())
    return transactions, labels


class Clock(Protocol):
    """Wall clock for real-time mode; tests pass a fake one so nothing really sleeps."""

    def time(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass(frozen=True)
class RealtimePacing:
    """Live mode: timestamps are the wall clock at emission, ``rate`` transactions per second.

    ``rate=None`` emits as fast as the consumer takes events; ``duration_s`` stops transactions
    after that many seconds. Label delays from the config are wall-clock delays here, so set
    them to seconds or minutes for a live demo.
    """

    rate: float | None = None
    duration_s: float | None = None
    clock: Clock = field(default_factory=SystemClock)

    def __post_init__(self) -> None:
        if self.rate is not None and self.rate <= 0:
            raise ValueError("rate must be positive (or None for unthrottled)")
        if self.duration_s is not None and self.duration_s < 0:
            raise ValueError("duration_s must be >= 0")


def iter_events(
    config: SimulatorConfig,
    *,
    days: int | None = None,
    max_transactions: int | None = None,
    pacing: RealtimePacing | None = None,
    drain_labels: bool = False,
) -> Iterator[Transaction | Label]:
    """Transactions and labels in publication order, each label at its labeled_at.

    Without ``pacing`` the events carry simulated time and come as fast as they are consumed; with
    it, see :class:`RealtimePacing`. The stream ends after ``days`` simulated days or
    ``max_transactions`` transactions (never, if both are None). ``drain_labels`` then also emits
    every label still outstanding for the transactions sent (in real time, waiting for them).
    """
    if max_transactions is not None and max_transactions < 0:
        raise ValueError("max_transactions must be >= 0")
    simulator = Simulator(config)
    if pacing is None:
        return _simulated_events(simulator, days, max_transactions, drain_labels)
    return _realtime_events(simulator, days, max_transactions, pacing, drain_labels)


def _epoch_ms(values: pd.Series) -> IntArray:
    return values.to_numpy(dtype="datetime64[ms]").astype(np.int64)


def _records(frame: pd.DataFrame, columns: Sequence[str]) -> list[dict[str, Any]]:
    return [
        dict(zip(columns, row, strict=True))
        for row in zip(*(frame[column].tolist() for column in columns), strict=True)
    ]


_TRANSACTION_FIELDS = [name for name in TRANSACTION_COLUMNS if name != "timestamp"]
_LABEL_FIELDS = [name for name in LABEL_COLUMNS if name != "labeled_at"]


def _transaction_models(frame: pd.DataFrame) -> Iterator[Transaction]:
    for record, ms in zip(
        _records(frame, _TRANSACTION_FIELDS), _epoch_ms(frame["timestamp"]), strict=True
    ):
        yield Transaction.model_validate({**record, "timestamp": _datetime(int(ms))})


def _label_models(frame: pd.DataFrame) -> Iterator[Label]:
    for record, ms in zip(
        _records(frame, _LABEL_FIELDS), _epoch_ms(frame["labeled_at"]), strict=True
    ):
        yield Label.model_validate({**record, "labeled_at": _datetime(int(ms))})


def _simulated_events(
    simulator: Simulator, days: int | None, limit: int | None, drain: bool
) -> Iterator[Transaction | Label]:
    sent = 0
    unsent_ids: set[str] = set()
    leftover = empty_labels()
    for batch in simulator.iter_days(days):
        transactions, labels = batch.transactions, batch.released_labels
        if limit is not None and sent + len(transactions) >= limit:
            take = limit - sent
            unsent_ids = set(transactions["transaction_id"].iloc[take:])
            transactions = transactions.iloc[:take]
            cutoff = transactions["timestamp"].iloc[-1] if take else batch.day_start
            published = (labels["labeled_at"] <= cutoff) & ~labels["transaction_id"].isin(
                unsent_ids
            )
            leftover, labels = labels[~published], labels[published]
        yield from _merge_by_time(transactions, labels)
        sent += len(transactions)
        if limit is not None and sent >= limit:
            break
    if drain:
        outstanding = _concat([leftover, simulator.pending_labels], empty_labels())
        outstanding = outstanding[~outstanding["transaction_id"].isin(unsent_ids)]
        yield from _label_models(outstanding.sort_values("labeled_at", kind="stable"))


def _merge_by_time(
    transactions: pd.DataFrame, labels: pd.DataFrame
) -> Iterator[Transaction | Label]:
    """Both kinds in time order; a transaction before a label of the same millisecond."""
    times = np.concatenate((_epoch_ms(transactions["timestamp"]), _epoch_ms(labels["labeled_at"])))
    kinds = np.concatenate((np.zeros(len(transactions)), np.ones(len(labels))))
    transaction_models = _transaction_models(transactions)
    label_models = _label_models(labels)
    for position in np.lexsort((kinds, times)):
        yield next(transaction_models) if kinds[position] == 0 else next(label_models)


def _realtime_events(
    simulator: Simulator,
    days: int | None,
    limit: int | None,
    pacing: RealtimePacing,
    drain: bool,
) -> Iterator[Transaction | Label]:
    clock = pacing.clock
    waiting: list[tuple[int, int, dict[str, Any]]] = []  # (due ms, sequence, label fields)
    started, sent = clock.time(), 0
    deadline = started + pacing.duration_s if pacing.duration_s is not None else float("inf")

    def finished() -> bool:
        return (limit is not None and sent >= limit) or clock.time() >= deadline

    for batch in simulator.iter_days(days):
        delays = _label_delays(batch)
        for position, transaction in enumerate(_transaction_models(batch.transactions)):
            if pacing.rate is not None:
                _sleep_until(clock, min(started + sent / pacing.rate, deadline))
            if finished():
                break
            now_ms = int(clock.time() * 1000)
            yield from _due_labels(waiting, now_ms)
            yield transaction.model_copy(update={"timestamp": _datetime(now_ms)})
            if position in delays:
                delay_ms, fields = delays[position]
                heapq.heappush(waiting, (now_ms + delay_ms, sent, fields))
            sent += 1
        if finished():
            break
    while drain and waiting:
        _sleep_until(clock, waiting[0][0] / 1000)
        yield from _due_labels(waiting, max(int(clock.time() * 1000), waiting[0][0]))


def _label_delays(batch: DayBatch) -> dict[int, tuple[int, dict[str, Any]]]:
    """Transaction position -> (simulated label delay in ms, label fields) for a day."""
    labels = batch.new_labels
    positions = pd.Index(batch.transactions["transaction_id"]).get_indexer(labels["transaction_id"])
    transaction_ms = _epoch_ms(batch.transactions["timestamp"])[positions]
    delays = _epoch_ms(labels["labeled_at"]) - transaction_ms
    records = _records(labels, _LABEL_FIELDS)
    return {
        int(position): (int(delay), record)
        for position, delay, record in zip(positions, delays, records, strict=True)
    }


def _sleep_until(clock: Clock, moment: float) -> None:
    wait = moment - clock.time()
    if wait > 0:
        clock.sleep(wait)


def _due_labels(waiting: list[tuple[int, int, dict[str, Any]]], now_ms: int) -> Iterator[Label]:
    while waiting and waiting[0][0] <= now_ms:
        _, _, fields = heapq.heappop(waiting)
        yield Label.model_validate({**fields, "labeled_at": _datetime(now_ms)})


# --- live stream in simulated time --------------------------------------------------------------
#
# Streaming in wall-clock time squeezes a day of a customer's life into seconds (5,000 customers
# at 200 tx/s pay every 25 s each), which makes velocity features scream fraud. Instead, the
# stream keeps the simulated timeline, where a customer pays about once a day, and only paces how
# fast that timeline is sent: a warm-up of past days at full speed (the worker builds its
# per-customer state from it), then the live part at the target rate, ending at "now".

DAY = timedelta(days=1)
# Tried this many times to find a start early enough for the warm-up; each retry moves it back
# by the measured shortfall plus a day, so the second attempt practically always succeeds.
_SCHEDULE_ATTEMPTS = 6


@dataclass(frozen=True)
class StreamSchedule:
    """Where a simulated-time stream starts and which transactions are warm-up or live.

    The run is ``iter_events`` of the config started at ``start``: its first
    ``warmup_transactions`` transactions (simulated ``start`` to ``live_from``, at least the
    requested warm-up) go out unthrottled, the next ``live_transactions`` (all the rest if None)
    at the target rate. ``live_until`` is the timestamp of the last live transaction, at or just
    before the ``now`` the schedule was computed for; None when the stream is unbounded.
    """

    start: datetime
    warmup_transactions: int
    live_transactions: int | None
    live_from: datetime
    live_until: datetime | None

    @property
    def total_transactions(self) -> int | None:
        if self.live_transactions is None:
            return None
        return self.warmup_transactions + self.live_transactions

    def run_index(self, live_index: int) -> int:
        """Position in the whole run of the ``live_index``-th live transaction (1-based), as
        :attr:`DriftEvent.at_transaction` counts it."""
        return self.warmup_transactions + live_index


def live_count(rate: float | None, duration_s: float | None, count: int | None) -> int | None:
    """Live transactions to send: ``count``, or ``rate`` x ``duration_s``, the smaller; None when
    neither bounds the stream."""
    bounds = [] if count is None else [count]
    if duration_s is not None:
        if not rate:
            raise ValueError(
                "in simulated time a duration needs a positive rate (rate x duration is the "
                "number of live transactions); give a count instead to send unthrottled"
            )
        bounds.append(math.ceil(rate * duration_s))
    return min(bounds) if bounds else None


def stream_schedule(
    config: SimulatorConfig,
    *,
    warmup_days: float,
    rate: float | None,
    duration_s: float | None,
    count: int | None,
    now: datetime,
) -> StreamSchedule:
    """The simulated start and the warm-up/live split that make the stream end at ``now``.

    Bounded streams (a count, or a rate and a duration): the run is simulated once (columns
    only, about 0.3 s per 100,000 transactions) from a UTC midnight early enough for the warm-up,
    and the live part is the last ``count`` transactions stamped at or before ``now``, so the
    last live timestamp is within one inter-arrival gap of ``now`` whatever the time of day.
    The warm-up then covers ``warmup_days`` to about ``warmup_days + 2`` days. Unbounded streams
    start at the midnight before ``now - warmup_days - 1 day`` and go live after exactly
    ``warmup_days``: their live part reaches ``now`` after a while and then follows the wall
    clock (see :func:`paced`). ``config.start`` is ignored; the run uses the returned start.
    """
    if warmup_days < 0:
        raise ValueError("warmup_days must be >= 0")
    now = _utc(now)
    warmup = timedelta(days=warmup_days)
    live = live_count(rate, duration_s, count)
    if live is None:
        return _unbounded_schedule(config, warmup, now)
    return _bounded_schedule(config, warmup, live, now)


def _midnight(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _expected_per_day(config: SimulatorConfig) -> float:
    """Legitimate transactions per average day of this population (fraud adds under 1 %)."""
    return float(Simulator(config).world.customers.daily_rate.sum())


def _timeline(config: SimulatorConfig, until: datetime) -> IntArray:
    """Sorted epoch-ms timestamps of the run's transactions, from its start through ``until``'s
    day: the simulator's columns only, no wire models."""
    days = (until - config.start) // DAY + 1
    batches = Simulator(config).iter_days(max(days, 0))
    times = [_epoch_ms(batch.transactions["timestamp"]) for batch in batches]
    return np.concatenate(times) if times else np.zeros(0, dtype=np.int64)


def _checked_start(config: SimulatorConfig, lookback: timedelta, now: datetime) -> SimulatorConfig:
    start = _midnight(now - lookback)
    if start < now - MAX_EVENT_AGE:
        raise ValueError(
            f"the stream needs {(now - start).days:,} simulated days before now, more than the "
            f"{MAX_EVENT_AGE.days:,} a worker accepts: use more customers or fewer transactions"
        )
    return config.model_copy(update={"start": start})


def _unbounded_schedule(
    config: SimulatorConfig, warmup: timedelta, now: datetime
) -> StreamSchedule:
    run = _checked_start(config, warmup + DAY, now)
    live_from = run.start + warmup
    times = _timeline(run, live_from)
    warm = int(np.searchsorted(times, _ms(live_from), side="left"))
    return StreamSchedule(run.start, warm, None, live_from, None)


def _bounded_schedule(
    config: SimulatorConfig, warmup: timedelta, live: int, now: datetime
) -> StreamSchedule:
    per_day = _expected_per_day(config)
    # Margins for the estimate (a retry covers a miss): fraud adds volume, quiet weekdays take some.
    lookback = warmup + timedelta(days=1.01 * live / per_day + 1)
    for _ in range(_SCHEDULE_ATTEMPTS):
        run = _checked_start(config, lookback, now)
        times = _timeline(run, now)
        end = int(np.searchsorted(times, _ms(now), side="right"))  # stamped at or before now
        first_live = end - live
        shortfall = _shortfall_days(times, first_live, _ms(run.start + warmup), per_day)
        if shortfall <= 0:
            live_from = _datetime(int(times[first_live])) if first_live < end else now
            live_until = _datetime(int(times[end - 1])) if live else None
            return StreamSchedule(run.start, first_live, live, live_from, live_until)
        lookback += timedelta(days=math.ceil(shortfall) + 1)
    raise RuntimeError(f"no simulated start fits {live} live transactions before {now}")


def _shortfall_days(times: IntArray, first_live: int, warm_edge_ms: int, per_day: float) -> float:
    """How many days earlier the run must start for the live part to begin after the warm-up."""
    if first_live < 0:
        return -first_live / per_day
    if first_live == len(times):  # no live transactions: nothing to fit after the warm-up
        return 0.0
    return (warm_edge_ms - int(times[first_live])) / sc.DAY_MS


def paced(
    events: Iterable[Transaction | Label],
    rate: float | None,
    clock: Clock,
    *,
    max_lead: timedelta | None = timedelta(0),
    burst_s: float = 0.05,
) -> Iterator[Transaction | Label]:
    """The events, transactions throttled to ``rate`` per second of ``clock`` time.

    A token schedule (the n-th transaction is due ``n / rate`` s after the first) sleeps only
    when the stream is more than ``burst_s`` ahead, so it sleeps every ``burst_s`` rather than
    per event, and a consumer that fell behind catches up instead of lowering the rate. Labels
    are not counted and never wait. With ``max_lead`` set, a transaction stamped more than that
    after the clock waits for it: an unbounded stream that has caught up with the wall clock
    continues in real time, at the population's natural rate, rather than run into the future.
    ``rate=None`` (or 0) only applies ``max_lead``.
    """
    started = clock.time()
    sent = 0
    caught_up = False
    for event in events:
        if isinstance(event, Transaction):
            now = clock.time()
            ahead = started + sent / rate - now if rate else 0.0
            wait = ahead if ahead > burst_s else 0.0
            early = _early_s(event, now, max_lead)
            if early > wait and not caught_up:
                caught_up = True
                _log_caught_up(event)
            wait = max(wait, early)
            if wait > 0:
                clock.sleep(wait)
            sent += 1
        yield event


def _early_s(transaction: Transaction, now: float, max_lead: timedelta | None) -> float:
    """Seconds until ``transaction`` is no more than ``max_lead`` ahead of ``now``."""
    if max_lead is None:
        return 0.0
    return transaction.timestamp.timestamp() - max_lead.total_seconds() - now


def _log_caught_up(transaction: Transaction) -> None:
    logger.warning(
        "simulated time caught up with the clock (next transaction stamped %s): transactions "
        "now wait for their timestamps; more customers give a higher live rate",
        transaction.timestamp.isoformat(),
    )


def stream_events(
    config: SimulatorConfig,
    schedule: StreamSchedule,
    *,
    rate: float | None,
    clock: Clock | None = None,
    drain_labels: bool = False,
    max_lead: timedelta | None = timedelta(0),
) -> Iterator[Transaction | Label]:
    """The simulated-time stream: ``iter_events`` of ``config`` started at ``schedule.start``,
    the warm-up unthrottled, then :func:`paced`.

    Labels come at their simulated labeled_at, in order with the transactions; ``drain_labels``
    then sends the outstanding ones at once, stamped up to the maximum label delay after the
    last transaction. Put a drift at a live position with ``schedule.run_index``.
    """
    run = config.model_copy(update={"start": schedule.start})
    events = iter_events(
        run, max_transactions=schedule.total_transactions, drain_labels=drain_labels
    )
    yield from _first_transactions(events, schedule.warmup_transactions)
    yield from paced(events, rate, clock or SystemClock(), max_lead=max_lead)


def _first_transactions(
    events: Iterator[Transaction | Label], count: int
) -> Iterator[Transaction | Label]:
    """Events up to and including the ``count``-th transaction, leaving the rest in ``events``."""
    if count <= 0:
        return
    seen = 0
    for event in events:
        yield event
        seen += isinstance(event, Transaction)
        if seen >= count:
            return
