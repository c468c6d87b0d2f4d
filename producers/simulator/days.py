"""The day generator: one simulated UTC day at a time, as columns, with its labels.

A day is generated with numpy: who pays when (:mod:`.legit`), what they buy under the drift
regime in force at that moment (:mod:`.drift`), the fraud incidents of the day (:mod:`.fraud`),
then merchant lookup, currency conversion and IDs for all rows at once. Each day draws from its
own generator seeded by ``(seed, day)``, so the same seed and config give byte-identical output
however the days are consumed. Labels are drawn with the day and filed under the day they will be
published on; both history and stream modes read the days from here.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from producers.simulator.config import DriftEvent, SimulatorConfig
from producers.simulator.draft import Draft
from producers.simulator.drift import DriftRecord, Regime
from producers.simulator.frames import (
    concat_frames,
    empty_labels,
    empty_transactions,
    epoch_ms,
    from_ms,
    to_ms,
)
from producers.simulator.fraud import Window
from producers.simulator.legit import Schedule, legit_draft, legit_schedule
from producers.simulator.scenarios import FRAUD_SCENARIOS, SCENARIOS
from producers.simulator.world import (
    CATEGORIES,
    CHANNELS,
    DAY_MS,
    LEGIT,
    ONLINE,
    IntArray,
    build_world,
    random_ids,
)
from stream_app.schemas import MAX_AMOUNT

FRAUD_LABEL_SOURCE = "chargeback"
LEGIT_LABEL_SOURCE = "no_dispute"
# Monday first; Friday and Saturday busiest, Sunday quietest. Mean 1.0.
WEEKDAY_VOLUME = (0.94, 0.96, 0.98, 1.0, 1.08, 1.12, 0.92)
AMOUNT_CAP = MAX_AMOUNT - 1.0

# Spawn keys of the independent random streams derived from the seed.
_WORLD_STREAM, _DAY_STREAM, _DRIFT_STREAM = 0, 1, 2


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


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
    regime: Regime
    pending_events: list[tuple[int, DriftEvent]]
    emitted: int = 0
    # Fraud rows of incidents that outlive their day (a merchant breach), by the day they are on.
    carried: dict[int, list[Draft]] = field(default_factory=dict)


class Simulator:
    """Generates days in order; ``drift_log`` and ``pending_labels`` follow the last day yielded."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.world = build_world(
            _rng(config.seed, _WORLD_STREAM),
            config.n_customers,
            config.n_merchants,
            config.transactions_per_customer_day,
            config.fraudsters.devices,
            config.fraudsters.device_reuse,
        )
        self.drift_log: list[DriftRecord] = []
        # Labels not yet published, by the simulated day (from start) they will be published on.
        self._label_buckets: dict[int, list[pd.DataFrame]] = {}

    def iter_days(self, days: int | None = None) -> Iterator[DayBatch]:
        """Day 0, 1, ... up to ``days`` (forever if None); each call starts a fresh run."""
        regime = Regime(
            self.world.customers.category_weights,
            np.ones(len(CATEGORIES)),
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
        start_ms = to_ms(day_start)
        end_ms = start_ms + DAY_MS
        travel = (config.domestic_travel_rate, config.international_travel_rate)
        volume = WEEKDAY_VOLUME[day_start.weekday()]
        schedule = legit_schedule(self.world, rng, start_ms, volume, travel)
        switches = self._due_switches(state, start_ms, end_ms, schedule.time_ms)
        regimes = [state.regime]
        for _, index, event in switches:
            regimes.append(regimes[-1].after(event, _rng(config.seed, _DRIFT_STREAM, index)))
        state.regime = regimes[-1]
        bounds = [start_ms, *(time_ms for time_ms, _, _ in switches), end_ms]
        draft = self._carry_over(state, day, self._draft_day(rng, schedule, regimes, bounds))
        transactions = self._frame(draft, rng)
        new_labels = self._labels(transactions, rng)
        for time_ms, _, event in switches:
            index = state.emitted + int(np.searchsorted(draft.time_ms, time_ms, side="left"))
            self.drift_log.append(DriftRecord(event.name, from_ms(time_ms), index))
        state.emitted += len(draft)
        released = self._release(new_labels, day, start_ms)
        return DayBatch(day, day_start, transactions, new_labels, released)

    def _draft_day(
        self,
        rng: np.random.Generator,
        schedule: Schedule,
        regimes: list[Regime],
        bounds: list[int],
    ) -> Draft:
        """Legitimate and fraudulent rows of a day, sorted by time; ``regimes[i]`` rules
        ``[bounds[i], bounds[i + 1])``."""
        row_regime = np.searchsorted(np.array(bounds[1:-1]), schedule.time_ms, side="right")
        legit = legit_draft(
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
            for draft in self._incidents(rng, regime, Window(low, high, bounds[-1]), legit)
        ]
        draft = Draft.concat([legit, *fraud])
        return draft.take(np.argsort(draft.time_ms, kind="stable"))

    def _carry_over(self, state: _RunState, day: int, draft: Draft) -> Draft:
        """Today's rows: the day's own plus those carried to it; later rows wait for their day."""
        carried = state.carried.pop(day, [])
        if carried:
            draft = Draft.concat([draft, *carried])
            draft = draft.take(np.argsort(draft.time_ms, kind="stable"))
        day_end_ms = to_ms(self.config.start) + (day + 1) * DAY_MS
        later = draft.time_ms >= day_end_ms
        if not later.any():
            return draft
        rest = draft.take(np.flatnonzero(later))
        due_day = day + 1 + (rest.time_ms - day_end_ms) // DAY_MS
        for due in np.unique(due_day):
            state.carried.setdefault(int(due), []).append(rest.take(np.flatnonzero(due_day == due)))
        return draft.take(np.flatnonzero(~later))

    def _due_switches(
        self, state: _RunState, start_ms: int, end_ms: int, legit_ms: IntArray
    ) -> list[tuple[int, int, DriftEvent]]:
        """Drift events that trigger today, with their time, in trigger order."""
        due: list[tuple[int, int, DriftEvent]] = []
        for index, event in state.pending_events:
            when: int | None = None
            if event.at is not None:
                at_ms = to_ms(event.at)
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
        self, rng: np.random.Generator, regime: Regime, window: Window, legit: Draft
    ) -> list[Draft]:
        day_share = (window.end_ms - window.start_ms) / DAY_MS
        customers_k = self.world.customers.size / 1000
        drafts = []
        for name in FRAUD_SCENARIOS:
            rate = regime.fraud_rates.get(name, 0.0)
            count = int(rng.poisson(rate * customers_k * day_share)) if rate > 0 else 0
            if count:
                drafts.append(SCENARIOS[name](self.world, rng, window, count, legit))
        return drafts

    def _frame(self, draft: Draft, rng: np.random.Generator) -> pd.DataFrame:
        """Columns of the public transaction format, plus the ground truth."""
        world = self.world
        merchant = draft.merchant.copy()
        unset = merchant < 0
        merchant[unset] = world.merchants.pick(
            draft.region[unset], draft.category[unset], rng.random(int(unset.sum()))
        )
        local = draft.amount_usd * world.regions.usd_rate[draft.region]
        columns: dict[str, Any] = {
            "transaction_id": random_ids(rng, len(draft), "tx-"),
            "customer_id": world.customers.ids[draft.customer],
            "merchant_id": world.merchants.ids[merchant],
            "amount": np.round(np.clip(local, 0.01, AMOUNT_CAP), 2),
            "currency": world.regions.currency[draft.region],
            "merchant_category": _CATEGORY_NAMES[draft.category],
            "transaction_type": _CHANNEL_NAMES[draft.channel],
            "device_id": draft.device,
            "geo_location": world.regions.codes[draft.region],
            "timestamp": pd.to_datetime(draft.time_ms, unit="ms", utc=True),
            "is_fraud": draft.scenario != LEGIT,
            "scenario": draft.scenario,
        }
        columns["is_fraud"] = self._reported(draft, rng)
        return pd.DataFrame(columns)

    def _reported(self, draft: Draft, rng: np.random.Generator) -> npt.NDArray[np.bool_]:
        """What the chargeback feed will say: the truth, unless the policy adds label noise.

        Noise draws from the day's generator only when it is on, so runs without noise are
        identical to runs from before it existed.
        """
        truth: npt.NDArray[np.bool_] = draft.scenario != LEGIT
        policy = self.config.labels
        if policy.missed_fraud == 0 and policy.false_chargeback == 0:
            return truth
        u = rng.random(len(draft))
        missed = truth & (u < policy.missed_fraud)
        charged_back = ~truth & (draft.channel == ONLINE) & (u < policy.false_chargeback)
        reported: npt.NDArray[np.bool_] = (truth & ~missed) | charged_back
        return reported

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
        publish_day = day + (epoch_ms(new_labels["labeled_at"]) - day_start_ms) // DAY_MS
        order = np.argsort(publish_day, kind="stable")
        by_day = new_labels.take(order)
        days, starts = np.unique(publish_day[order], return_index=True)
        ends = [*starts[1:], len(by_day)] if len(by_day) else []
        for due_day, start, end in zip(days, starts, ends, strict=True):
            self._label_buckets.setdefault(int(due_day), []).append(by_day.iloc[start:end])
        released = concat_frames(self._label_buckets.pop(day, []), empty_labels())
        return released.sort_values("labeled_at", kind="stable", ignore_index=True)

    @property
    def pending_labels(self) -> pd.DataFrame:
        """Labels of the transactions generated so far that are not published yet."""
        frames = [
            frame for day in sorted(self._label_buckets) for frame in self._label_buckets[day]
        ]
        pending = concat_frames(frames, empty_labels())
        return pending.sort_values("labeled_at", kind="stable", ignore_index=True)


_CATEGORY_NAMES = np.array([category.name for category in CATEGORIES], dtype=object)
_CHANNEL_NAMES = np.array(CHANNELS, dtype=object)


def generate_history(config: SimulatorConfig, days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``days`` of transactions (with ground truth) and the labels published by their end.

    Transactions are sorted by timestamp; labels by labeled_at, and only those with labeled_at
    before ``config.start + days``: at the end of the history, recent transactions are still
    waiting for their labels, as they would be in production.
    """
    if days < 0:
        raise ValueError("days must be >= 0")
    batches = list(Simulator(config).iter_days(days))
    transactions = concat_frames([batch.transactions for batch in batches], empty_transactions())
    labels = concat_frames([batch.released_labels for batch in batches], empty_labels())
    return transactions, labels
