"""Legitimate traffic: who pays when and where today, then what each payment buys.

Two steps, because drift can switch the population's behaviour in the middle of a day: the
schedule (customers, regions, times) comes first, the day generator finds which drift regime
rules each row's time, and :func:`legit_draft` draws categories, channels, devices and amounts
under that regime.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from producers.simulator.draft import Draft, make_draft
from producers.simulator.world import (
    CHANNEL_CUM,
    DAY_MS,
    HOUR_MS,
    LEGIT,
    TYPICAL_USD,
    FloatArray,
    IntArray,
    World,
)


@dataclass(frozen=True)
class Schedule:
    """Who pays when and where today, sorted by time; what they buy is drawn afterwards."""

    customer: IntArray
    region: IntArray
    time_ms: IntArray


def legit_schedule(
    world: World,
    rng: np.random.Generator,
    day_start_ms: int,
    volume: float,
    travel: tuple[float, float],
) -> Schedule:
    """Each customer's payments today at hours drawn around their own active local hours."""
    people = world.customers
    counts = rng.poisson(people.daily_rate * volume)
    customer = np.repeat(np.arange(people.size, dtype=np.int64), counts)
    region = _regions_today(world, rng, travel)[customer]
    local_hour = rng.normal(people.active_center_h[customer], people.active_spread_h[customer]) % 24
    # Wrapping into the UTC day keeps every day's rows inside that day, so days never overlap.
    utc_ms = ((local_hour * HOUR_MS).astype(np.int64) - world.regions.offset_ms[region]) % DAY_MS
    time_ms = day_start_ms + utc_ms
    order = np.argsort(time_ms, kind="stable")
    return Schedule(customer[order], region[order], time_ms[order])


def _regions_today(world: World, rng: np.random.Generator, travel: tuple[float, float]) -> IntArray:
    """Home for most customers; a few travel for the day, in their country or abroad."""
    domestic_rate, abroad_rate = travel
    home = world.customers.home_region
    roll = rng.random(home.size)
    in_country = world.regions.country_start[home] + (
        rng.random(home.size) * world.regions.country_count[home]
    ).astype(np.int64)
    anywhere = rng.integers(world.regions.size, size=home.size)
    region = np.where(roll < domestic_rate, in_country, home)
    abroad = (roll >= domestic_rate) & (roll < domestic_rate + abroad_rate)
    return np.where(abroad, anywhere, region).astype(np.int64)


def legit_draft(
    world: World,
    rng: np.random.Generator,
    schedule: Schedule,
    regime: IntArray,
    category_cum: FloatArray,
    amount_multiplier: FloatArray,
) -> Draft:
    """What each scheduled payment buys, under the regime (drift state) in force at its time.

    ``category_cum`` is (regimes, customers, categories) cumulative category probabilities and
    ``amount_multiplier`` is (regimes, categories).
    """
    people, customer = world.customers, schedule.customer
    n = customer.size
    category = categorical(category_cum[regime, customer], rng.random(n))
    channel = categorical(CHANNEL_CUM[category], rng.random(n))
    # Squaring skews the pick towards the customer's first (primary) device.
    device_pick = (rng.random(n) ** 2 * people.device_count[customer]).astype(np.int64)
    device = people.device_ids[people.device_start[customer] + device_pick]
    spread = np.exp(rng.normal(size=n) * people.spend_sigma[customer])
    amount = TYPICAL_USD[category] * people.spend_level[customer] * spread
    amount *= amount_multiplier[regime, category]
    return make_draft(
        LEGIT, schedule.time_ms, customer, schedule.region, category, channel, device, amount
    )


def categorical(cumulative: FloatArray, u: FloatArray) -> IntArray:
    """Row-wise draw from per-row cumulative probabilities (last column ~1)."""
    index: IntArray = (cumulative < u[:, None]).sum(axis=1, dtype=np.int64)
    last = np.int64(cumulative.shape[1] - 1)
    clipped: IntArray = np.minimum(index, last)
    return clipped
