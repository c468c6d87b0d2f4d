"""How drift events change the population while a run goes on, and the record of when they did.

:class:`~producers.simulator.config.DriftEvent` says *what* changes; a :class:`Regime` is the
behaviour in force between two events, derived from the one before it, and a
:class:`DriftRecord` is the known answer a drift-detection test checks against.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from producers.simulator.config import DriftEvent
from producers.simulator.world import CATEGORY_INDEX, FloatArray


@dataclass(frozen=True)
class Regime:
    """The population's behaviour between two drift events."""

    category_weights: FloatArray  # (customers, categories)
    amount_multiplier: FloatArray  # (categories,)
    fraud_rates: dict[str, float]

    @property
    def category_cum(self) -> FloatArray:
        return np.cumsum(self.category_weights, axis=1)

    def after(self, event: DriftEvent, rng: np.random.Generator) -> Regime:
        weights = self.category_weights.copy()
        for name, multiplier in event.category_weight_multipliers.items():
            weights[:, CATEGORY_INDEX[name]] *= multiplier
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
        return Regime(weights, self.amount_multiplier * event.amount_multiplier, rates)


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
        result[:, CATEGORY_INDEX[name]] += share * scale
    return result


@dataclass(frozen=True)
class DriftRecord:
    """When a drift event took effect: the known answer for drift-detection tests."""

    name: str
    effective_at: datetime
    first_transaction_index: int  # 0-based position in the run of the first drifted transaction
