"""The fraud scenarios: given the world, the day's generator, a window and a count, the incidents.

A scenario returns a :class:`~producers.simulator.draft.Draft` of its fraudulent transactions
(most incidents are several: a card-testing burst is 8-25). They are kept apart from legitimate
traffic so that a new pattern is one function and one entry in :data:`SCENARIOS`, which the
configuration (:class:`~producers.simulator.config.FraudRates`) and the drift events name
(the registry, with the realistic preset's scenarios of :mod:`.subtle_fraud`, is
:mod:`.scenarios`). These classic scenarios are loud on purpose: each has a signal a model
learns in a day (new device abroad, tiny bursts, a new terminal, amounts far above habit).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from producers.simulator.draft import Draft, make_draft
from producers.simulator.world import (
    ACCOUNT_TAKEOVER,
    ATM,
    CARD_PRESENT,
    CARD_TESTING,
    CATEGORIES,
    CATEGORY_INDEX,
    COMPROMISED_MERCHANT,
    CONTACTLESS,
    CRYPTO_CASHOUT,
    HIGH_VALUE,
    HOUR_MS,
    IMPOSSIBLE_TRAVEL,
    MINUTE_MS,
    ONLINE,
    STOLEN_CARD_SPREE,
    TYPICAL_USD,
    FloatArray,
    IntArray,
    ObjectArray,
    World,
    group_offsets,
    random_ids,
)


@dataclass(frozen=True)
class Window:
    """Incidents start in [start_ms, end_ms); their transactions stay before day_end_ms."""

    start_ms: int
    end_ms: int
    day_end_ms: int

    def starts(self, rng: np.random.Generator, n: int, span_ms: int) -> IntArray:
        latest = max(self.start_ms + 1, min(self.end_ms, self.day_end_ms - span_ms))
        return rng.integers(self.start_ms, latest, size=n, dtype=np.int64)

    def clip(self, time_ms: IntArray) -> IntArray:
        return np.minimum(time_ms, self.day_end_ms - 1)


Scenario = Callable[[World, np.random.Generator, Window, int, Draft], Draft]


def incident_rows(sizes: IntArray) -> IntArray:
    """Incident index for each transaction of a set of incidents with the given sizes."""
    return np.repeat(np.arange(sizes.size, dtype=np.int64), sizes)


def burst(
    rng: np.random.Generator, window: Window, starts: IntArray, sizes: IntArray, mean_gap_ms: float
) -> IntArray:
    """Times of each incident's transactions: its start, then exponential gaps."""
    gaps = rng.exponential(mean_gap_ms, size=int(sizes.sum()))
    first = group_offsets(sizes)
    gaps[first[sizes > 0]] = 0.0
    running = np.cumsum(gaps)
    offsets = running - np.repeat(running[first], sizes)
    return window.clip(np.repeat(starts, sizes) + offsets.astype(np.int64))


def choose(rng: np.random.Generator, weights: dict[str, float], n: int) -> IntArray:
    names = list(weights)
    p = np.array([weights[name] for name in names])
    picks = rng.choice(len(names), size=n, p=p / p.sum())
    return np.array([CATEGORY_INDEX[name] for name in names], dtype=np.int64)[picks]


def _typical_amount(
    world: World,
    rng: np.random.Generator,
    customer: IntArray,
    category: IntArray,
    low: float,
    high: float,
) -> FloatArray:
    """The customer's usual ticket for the category, times a factor drawn in [low, high)."""
    factor = rng.uniform(low, high, size=customer.size)
    amount: FloatArray = TYPICAL_USD[category] * world.customers.spend_level[customer] * factor
    return amount


def attacker_devices(world: World, rng: np.random.Generator, n: int) -> ObjectArray:
    """A device from the fraudsters' shared pool (by default half the time), else a new one."""
    pooled = world.fraud_devices[rng.integers(world.fraud_devices.size, size=n)]
    fresh = random_ids(rng, n, "dev-")
    reuse = rng.random(n) < world.fraud_device_reuse
    return np.where(reuse, pooled, fresh)


def _elsewhere(world: World, rng: np.random.Generator, home: IntArray) -> IntArray:
    """A region that is not the customer's: another one at home or (half the time) abroad."""
    start, count = world.regions.country_start[home], world.regions.country_count[home]
    domestic = start + (home - start + 1 + rng.integers(0, np.maximum(count - 1, 1))) % count
    # Regions are grouped by country: draw among the others and skip over the home block.
    other = rng.integers(0, world.regions.size - count)
    abroad = np.where(other < start, other, other + count)
    return np.where(rng.random(home.size) < 0.5, domestic, abroad).astype(np.int64)


def card_testing(
    world: World, rng: np.random.Generator, window: Window, n: int, legit: Draft
) -> Draft:
    """A stolen card number checked with bursts of tiny online payments at many merchants."""
    customer = rng.integers(world.customers.size, size=n)
    sizes = rng.integers(8, 26, size=n)
    rows = incident_rows(sizes)
    time_ms = burst(rng, window, window.starts(rng, n, 45 * MINUTE_MS), sizes, 90_000)
    weights = {"digital_goods": 0.6, "entertainment": 0.25, "apparel": 0.15}
    return make_draft(
        CARD_TESTING,
        time_ms,
        customer[rows],
        rng.integers(world.regions.size, size=n)[rows],
        choose(rng, weights, rows.size),
        ONLINE,
        attacker_devices(world, rng, n)[rows],
        rng.uniform(0.5, 5.0, size=rows.size),
    )


def account_takeover(
    world: World, rng: np.random.Generator, window: Window, n: int, legit: Draft
) -> Draft:
    """A new device in a new place: one or two small probes, then several large purchases."""
    customer = rng.integers(world.customers.size, size=n)
    probes = rng.integers(1, 3, size=n)
    sizes = probes + rng.integers(2, 7, size=n)
    rows = incident_rows(sizes)
    time_ms = burst(rng, window, window.starts(rng, n, 6 * HOUR_MS), sizes, 40 * MINUTE_MS)
    position = np.arange(rows.size) - np.repeat(group_offsets(sizes), sizes)
    probe = position < probes[rows]
    big = choose(rng, {"electronics": 0.45, "jewelry": 0.25, "travel": 0.3}, rows.size)
    category = np.where(probe, CATEGORY_INDEX["digital_goods"], big)
    cash_out = _typical_amount(world, rng, customer[rows], category, 2.0, 6.0)
    amount = np.where(probe, rng.uniform(5.0, 30.0, size=rows.size), cash_out)
    region = _elsewhere(world, rng, world.customers.home_region[customer])[rows]
    device = attacker_devices(world, rng, n)[rows]
    return make_draft(
        ACCOUNT_TAKEOVER, time_ms, customer[rows], region, category, ONLINE, device, amount
    )


def compromised_merchant(
    world: World, rng: np.random.Generator, window: Window, n: int, legit: Draft
) -> Draft:
    """A tampered terminal charging many local cards for a few hours."""
    active = np.array([c.popularity > 0 for c in CATEGORIES])[world.merchants.category]
    p = world.merchants.weight * active
    merchant = rng.choice(world.merchants.ids.size, size=n, p=p / p.sum())
    sizes = rng.integers(10, 41, size=n)
    rows = incident_rows(sizes)
    duration = rng.integers(2 * HOUR_MS, 12 * HOUR_MS, size=n)
    start = window.starts(rng, n, 2 * HOUR_MS)
    time_ms = window.clip(start[rows] + (rng.random(rows.size) * duration[rows]).astype(np.int64))
    region = world.merchants.region[merchant][rows]
    customer = local_customers(world, rng, region)
    category = world.merchants.category[merchant][rows]
    amount = _typical_amount(world, rng, customer, category, 1.5, 4.0)
    terminal = random_ids(rng, n, "dev-")[rows]
    return make_draft(
        COMPROMISED_MERCHANT,
        time_ms,
        customer,
        region,
        category,
        CARD_PRESENT,
        terminal,
        amount,
        merchant=merchant[rows].astype(np.int64),
    )


def local_customers(world: World, rng: np.random.Generator, region: IntArray) -> IntArray:
    """A random customer living in each row's region (anyone, for regions nobody lives in)."""
    count = world.customers.region_count[region]
    local = world.customers.by_region[
        world.customers.region_start[region] + (rng.random(region.size) * count).astype(np.int64)
    ]
    anyone = rng.integers(world.customers.size, size=region.size)
    return np.where(count > 0, local, anyone).astype(np.int64)


def stolen_card_spree(
    world: World, rng: np.random.Generator, window: Window, n: int, legit: Draft
) -> Draft:
    """A stolen physical card spent fast near the owner's home before it is blocked."""
    customer = rng.integers(world.customers.size, size=n)
    sizes = rng.integers(4, 13, size=n)
    rows = incident_rows(sizes)
    time_ms = burst(rng, window, window.starts(rng, n, 4 * HOUR_MS), sizes, 20 * MINUTE_MS)
    weights = {
        "electronics": 0.3,
        "apparel": 0.25,
        "jewelry": 0.15,
        "fuel": 0.1,
        "cash_withdrawal": 0.2,
    }
    category = choose(rng, weights, rows.size)
    in_person = np.where(rng.random(rows.size) < 0.5, CARD_PRESENT, CONTACTLESS)
    channel = np.where(category == CATEGORY_INDEX["cash_withdrawal"], ATM, in_person)
    amount = _typical_amount(world, rng, customer[rows], category, 1.5, 4.0)
    return make_draft(
        STOLEN_CARD_SPREE,
        time_ms,
        customer[rows],
        world.customers.home_region[customer][rows],
        category,
        channel,
        world.customers.primary_device(customer)[rows],
        amount,
    )


def impossible_travel(
    world: World, rng: np.random.Generator, window: Window, n: int, legit: Draft
) -> Draft:
    """A cloned card used abroad, thousands of km away, minutes after a genuine payment."""
    in_window = np.flatnonzero((legit.time_ms >= window.start_ms) & (legit.time_ms < window.end_ms))
    if in_window.size == 0 or n == 0:
        return _empty(IMPOSSIBLE_TRAVEL)
    anchor = rng.choice(in_window, size=n)
    customer, origin = legit.customer[anchor], legit.region[anchor]
    far = world.regions.far[
        origin, (rng.random(n) * world.regions.far_count[origin]).astype(np.int64)
    ]
    sizes = rng.integers(1, 5, size=n)
    rows = incident_rows(sizes)
    start = legit.time_ms[anchor] + rng.integers(10 * MINUTE_MS, 2 * HOUR_MS, size=n)
    time_ms = burst(rng, window, start, sizes, 20 * MINUTE_MS)
    popularity = {c.name: c.popularity for c in CATEGORIES if c.popularity > 0}
    category = choose(rng, popularity, rows.size)
    amount = _typical_amount(world, rng, customer[rows], category, 1.0, 3.0)
    channel = np.where(rng.random(rows.size) < 0.6, CARD_PRESENT, ONLINE)
    device = random_ids(rng, n, "dev-")[rows]
    return make_draft(
        IMPOSSIBLE_TRAVEL, time_ms, customer[rows], far[rows], category, channel, device, amount
    )


def high_value(
    world: World, rng: np.random.Generator, window: Window, n: int, legit: Draft
) -> Draft:
    """One purchase many times the customer's usual ticket, from their own device at home."""
    customer = rng.integers(world.customers.size, size=n)
    time_ms = window.starts(rng, n, 0)
    category = choose(rng, {"electronics": 0.4, "jewelry": 0.3, "travel": 0.3}, n)
    amount = _typical_amount(world, rng, customer, category, 6.0, 25.0)
    channel = np.where(rng.random(n) < 0.6, ONLINE, CARD_PRESENT)
    return make_draft(
        HIGH_VALUE,
        time_ms,
        customer,
        world.customers.home_region[customer],
        category,
        channel,
        world.customers.primary_device(customer),
        amount,
    )


def crypto_cashout(
    world: World, rng: np.random.Generator, window: Window, n: int, legit: Draft
) -> Draft:
    """Mid-sized crypto purchases in a short run, from the victim's own device and region."""
    customer = rng.integers(world.customers.size, size=n)
    sizes = rng.integers(2, 6, size=n)
    rows = incident_rows(sizes)
    time_ms = burst(rng, window, window.starts(rng, n, 3 * HOUR_MS), sizes, 30 * MINUTE_MS)
    category = np.full(rows.size, CATEGORY_INDEX["crypto_exchange"], dtype=np.int64)
    return make_draft(
        CRYPTO_CASHOUT,
        time_ms,
        customer[rows],
        world.customers.home_region[customer][rows],
        category,
        ONLINE,
        world.customers.primary_device(customer)[rows],
        rng.uniform(150.0, 600.0, size=rows.size),
    )


def _empty(scenario: str) -> Draft:
    none = np.empty(0, dtype=np.int64)
    return make_draft(
        scenario, none, none, none, none, ONLINE, np.empty(0, dtype=object), np.empty(0)
    )


CLASSIC_SCENARIOS: dict[str, Scenario] = {
    CARD_TESTING: card_testing,
    ACCOUNT_TAKEOVER: account_takeover,
    COMPROMISED_MERCHANT: compromised_merchant,
    STOLEN_CARD_SPREE: stolen_card_spree,
    IMPOSSIBLE_TRAVEL: impossible_travel,
    HIGH_VALUE: high_value,
    CRYPTO_CASHOUT: crypto_cashout,
}
