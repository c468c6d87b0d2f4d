"""The realistic preset's quiet fraud: scenarios that look like the customer's own spending.

The classic scenarios (:mod:`.fraud`) each carry a loud signal. Real fraud teams mostly see the
opposite, and these three are off by default (rate 0; the ``realistic`` preset of
:mod:`.presets` switches them on):

- :func:`habit_mimic`: stolen credentials used like the owner would (usual categories, amounts
  near the usual ticket, at home, at the owner's active hours), sometimes from the owner's own
  device;
- :func:`merchant_breach`: a merchant compromised for days; its frauds look like local
  customers' ordinary purchases, so only the merchant's matured labels give it away, days later;
- :func:`quiet_card_testing`: a few small checks spread over hours near the owner's home, not a
  burst of tiny payments abroad.

:func:`merchant_breach` is the one scenario whose incidents outlive their day: its rows are
stamped on the following days and the day generator (:mod:`.days`) carries them over.
"""

from __future__ import annotations

import numpy as np

from producers.simulator.draft import Draft, make_draft
from producers.simulator.fraud import (
    Window,
    attacker_devices,
    burst,
    choose,
    incident_rows,
    local_customers,
)
from producers.simulator.legit import categorical
from producers.simulator.world import (
    CATEGORIES,
    CHANNEL_CUM,
    DAY_MS,
    HABIT_MIMIC,
    HOUR_MS,
    MERCHANT_BREACH,
    ONLINE,
    QUIET_CARD_TESTING,
    TYPICAL_USD,
    FloatArray,
    IntArray,
    ObjectArray,
    World,
)

# A breached merchant: how many days it stays compromised, and fraudulent charges per day.
BREACH_DAYS = (7, 22)  # [low, high) whole days, starting the day after the breach
BREACH_CHARGES_PER_DAY = (1, 3)
# The owner's own device in this share of mimicking incidents (malware, a stolen phone).
OWN_DEVICE_SHARE = 0.2
# Mimicking purchases cost the customer's usual amount times a factor in [1, MIMIC_MARKUP).
MIMIC_MARKUP = 2.5


def _usual_amount(
    world: World, rng: np.random.Generator, customer: IntArray, category: IntArray, markup: float
) -> FloatArray:
    """An amount drawn as the customer's own would be, times a factor in [1, markup)."""
    people = world.customers
    spread = np.exp(rng.normal(size=customer.size) * people.spend_sigma[customer])
    factor = rng.uniform(1.0, markup, size=customer.size)
    amount: FloatArray = TYPICAL_USD[category] * people.spend_level[customer] * spread * factor
    return amount


def _active_hour_starts(
    world: World, rng: np.random.Generator, window: Window, customer: IntArray
) -> IntArray:
    """Start times at the customers' own active local hours, inside the window."""
    people = world.customers
    day_start = window.day_end_ms - DAY_MS
    local_hour = rng.normal(people.active_center_h[customer], people.active_spread_h[customer]) % 24
    offset = world.regions.offset_ms[people.home_region[customer]]
    utc_ms = ((local_hour * HOUR_MS).astype(np.int64) - offset) % DAY_MS
    starts: IntArray = np.clip(day_start + utc_ms, window.start_ms, window.end_ms - 1)
    return starts


def _devices(world: World, rng: np.random.Generator, customer: IntArray) -> ObjectArray:
    attacker = attacker_devices(world, rng, customer.size)
    own = world.customers.primary_device(customer)
    devices: ObjectArray = np.where(rng.random(customer.size) < OWN_DEVICE_SHARE, own, attacker)
    return devices


def habit_mimic(
    world: World, rng: np.random.Generator, window: Window, n: int, legit: Draft
) -> Draft:
    """Stolen credentials spent like the owner spends: 2-6 purchases over a few hours."""
    customer = rng.integers(world.customers.size, size=n)
    sizes = rng.integers(2, 7, size=n)
    rows = incident_rows(sizes)
    time_ms = burst(rng, window, _active_hour_starts(world, rng, window, customer), sizes, HOUR_MS)
    victim = customer[rows]
    usual = np.cumsum(world.customers.category_weights[victim], axis=1)
    category = categorical(usual, rng.random(rows.size))
    channel = categorical(CHANNEL_CUM[category], rng.random(rows.size))
    return make_draft(
        HABIT_MIMIC,
        time_ms,
        victim,
        world.customers.home_region[victim],
        category,
        channel,
        _devices(world, rng, customer)[rows],
        _usual_amount(world, rng, victim, category, MIMIC_MARKUP),
    )


def merchant_breach(
    world: World, rng: np.random.Generator, window: Window, n: int, legit: Draft
) -> Draft:
    """A merchant breached today charges local cards, at ordinary amounts, for days to come.

    Charges happen at local daytime hours on each of the following 7-21 days, from the
    customer's own device and at about their usual ticket for the merchant's category: nothing
    in a single row stands out, the merchant's fraud labels (once they arrive) do.
    """
    active = np.array([c.popularity > 0 for c in CATEGORIES])[world.merchants.category]
    p = world.merchants.weight * active
    merchant = rng.choice(world.merchants.ids.size, size=n, p=p / p.sum())
    days = rng.integers(*BREACH_DAYS, size=n)
    sizes = days * rng.integers(*BREACH_CHARGES_PER_DAY, size=n)
    rows = incident_rows(sizes)
    day_index = 1 + (rng.random(rows.size) * days[rows]).astype(np.int64)
    region = world.merchants.region[merchant][rows]
    local_hour = rng.uniform(9.0, 21.0, size=rows.size)
    utc_ms = ((local_hour * HOUR_MS).astype(np.int64) - world.regions.offset_ms[region]) % DAY_MS
    time_ms = window.day_end_ms - DAY_MS + day_index * DAY_MS + utc_ms
    customer = local_customers(world, rng, region)
    category = world.merchants.category[merchant][rows]
    return make_draft(
        MERCHANT_BREACH,
        time_ms,
        customer,
        region,
        category,
        categorical(CHANNEL_CUM[category], rng.random(rows.size)),
        world.customers.primary_device(customer),
        _usual_amount(world, rng, customer, category, 1.5),
        merchant=merchant[rows].astype(np.int64),
    )


def quiet_card_testing(
    world: World, rng: np.random.Generator, window: Window, n: int, legit: Draft
) -> Draft:
    """A stolen card number checked with 1-4 small online payments over hours, near home."""
    customer = rng.integers(world.customers.size, size=n)
    sizes = rng.integers(1, 5, size=n)
    rows = incident_rows(sizes)
    time_ms = burst(rng, window, window.starts(rng, n, 8 * HOUR_MS), sizes, 2 * HOUR_MS)
    weights = {"digital_goods": 0.5, "entertainment": 0.3, "restaurant": 0.2}
    return make_draft(
        QUIET_CARD_TESTING,
        time_ms,
        customer[rows],
        world.customers.home_region[customer][rows],
        choose(rng, weights, rows.size),
        ONLINE,
        attacker_devices(world, rng, n)[rows],
        rng.uniform(0.5, 4.0, size=rows.size),
    )
