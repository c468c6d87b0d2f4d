"""The simulated world and what happens in it: legitimate spending and the fraud scenarios.

Everything is columnar (numpy arrays, one element per transaction) so a whole simulated day is
generated with a handful of vectorised operations instead of one Python object per event. A
scenario function takes the world, the day's random generator, a time window and a number of
incidents, and returns a :class:`Draft`: transactions before merchant lookup, currency
conversion and ID assignment, which the simulator does once for every row of the day.

Amounts are drafted in US dollars and converted to the local currency of the region where the
transaction happens, so a customer's spending level means the same in Mumbai and in Berlin.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from stream_app.geo import COUNTRY_CURRENCY, CURRENCY_PER_USD, REGIONS, haversine_km

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
ObjectArray = npt.NDArray[np.object_]

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS

LEGIT = "legit"
CARD_TESTING = "card_testing"
ACCOUNT_TAKEOVER = "account_takeover"
COMPROMISED_MERCHANT = "compromised_merchant"
STOLEN_CARD_SPREE = "stolen_card_spree"
IMPOSSIBLE_TRAVEL = "impossible_travel"
HIGH_VALUE = "high_value"
# Off by default: the "new fraud pattern" a drift schedule switches on. It uses the customer's own
# device and home region, so a model trained before it appears has little to catch it with.
CRYPTO_CASHOUT = "crypto_cashout"

CHANNELS = ("card_present", "contactless", "online", "atm")
CARD_PRESENT, CONTACTLESS, ONLINE, ATM = range(len(CHANNELS))


class Category(NamedTuple):
    """A merchant category: typical ticket in USD, share of spending, and channel mix."""

    name: str
    typical_usd: float
    popularity: float
    channels: tuple[float, float, float, float]  # card_present, contactless, online, atm


CATEGORIES: tuple[Category, ...] = (
    Category("grocery", 38.0, 0.20, (0.45, 0.45, 0.10, 0.0)),
    Category("restaurant", 28.0, 0.15, (0.45, 0.40, 0.15, 0.0)),
    Category("fuel", 45.0, 0.08, (0.60, 0.35, 0.05, 0.0)),
    Category("pharmacy", 22.0, 0.06, (0.45, 0.45, 0.10, 0.0)),
    Category("apparel", 65.0, 0.08, (0.35, 0.25, 0.40, 0.0)),
    Category("electronics", 240.0, 0.04, (0.35, 0.10, 0.55, 0.0)),
    Category("travel", 380.0, 0.03, (0.10, 0.0, 0.90, 0.0)),
    Category("entertainment", 32.0, 0.07, (0.25, 0.25, 0.50, 0.0)),
    Category("utilities", 80.0, 0.05, (0.0, 0.0, 1.0, 0.0)),
    Category("digital_goods", 12.0, 0.10, (0.0, 0.0, 1.0, 0.0)),
    Category("home_garden", 90.0, 0.04, (0.50, 0.20, 0.30, 0.0)),
    Category("cash_withdrawal", 110.0, 0.05, (0.0, 0.0, 0.0, 1.0)),
    Category("jewelry", 420.0, 0.01, (0.70, 0.05, 0.25, 0.0)),
    # Nobody spends here until a drift event gives the category a share (popularity 0).
    Category("crypto_exchange", 180.0, 0.0, (0.0, 0.0, 1.0, 0.0)),
    Category("ev_charging", 18.0, 0.0, (0.30, 0.70, 0.0, 0.0)),
)
CATEGORY_INDEX = {category.name: index for index, category in enumerate(CATEGORIES)}
_TYPICAL_USD = np.array([category.typical_usd for category in CATEGORIES])
_CHANNEL_CUM = np.cumsum([category.channels for category in CATEGORIES], axis=1)

COUNTRY_WEIGHTS = {
    "IN": 0.40,
    "US": 0.25,
    "GB": 0.10,
    "DE": 0.10,
    "BR": 0.10,
    "SG": 0.03,
    "AE": 0.02,
}
IMPOSSIBLE_DISTANCE_KM = 3000.0
FRAUD_DEVICE_POOL = 200


def random_ids(rng: np.random.Generator, n: int, prefix: str = "") -> ObjectArray:
    """``n`` IDs of ``prefix`` plus 16 hex digits, built with array operations (no Python loop)."""
    head = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    digits = np.frombuffer(rng.bytes(8 * n).hex().encode("ascii"), dtype=np.uint8)
    buffer = np.empty((n, head.size + 16), dtype=np.uint8)
    buffer[:, : head.size] = head
    buffer[:, head.size :] = digits.reshape(n, 16)
    width = head.size + 16
    return buffer.view(f"S{width}").ravel().astype(f"U{width}").astype(object)


@dataclass(frozen=True)
class Regions:
    """Region tables indexed like ``REGIONS``, whose regions are grouped by country."""

    codes: ObjectArray
    currency: ObjectArray
    usd_rate: FloatArray  # local currency units per USD
    offset_ms: IntArray
    country_start: IntArray  # per region: first region of its country
    country_count: IntArray
    far: IntArray  # (regions, regions): regions of other countries far away, padded with -1
    far_count: IntArray

    @property
    def size(self) -> int:
        return int(self.codes.size)


@dataclass(frozen=True)
class Customers:
    """Each customer's home, habits and devices; index i is customer ``ids[i]``."""

    ids: ObjectArray
    home_region: IntArray
    daily_rate: FloatArray
    spend_level: FloatArray  # multiplier on a category's typical ticket
    spend_sigma: FloatArray  # log-scale spread of the customer's amounts
    active_center_h: FloatArray  # local hour the customer is most active
    active_spread_h: FloatArray
    category_weights: FloatArray  # (customers, categories), rows sum to 1
    device_start: IntArray
    device_count: IntArray
    device_ids: ObjectArray  # a customer's devices are contiguous; the first is the primary
    by_region: IntArray  # customer indices sorted by home region
    region_start: IntArray  # per region: first position in by_region
    region_count: IntArray

    @property
    def size(self) -> int:
        return int(self.ids.size)

    def primary_device(self, customers: IntArray) -> ObjectArray:
        return self.device_ids[self.device_start[customers]]


@dataclass(frozen=True)
class Merchants:
    """Merchants with a region, a category and a popularity, grouped for weighted lookup."""

    ids: ObjectArray
    region: IntArray
    category: IntArray
    weight: FloatArray
    by_group: IntArray  # merchant indices sorted by group = region * n_categories + category
    group_cumweight: FloatArray  # cumulative weight along by_group
    group_start: IntArray
    group_end: IntArray

    def pick(self, regions: IntArray, categories: IntArray, u: FloatArray) -> IntArray:
        """A merchant of each row's region and category, more popular merchants more often."""
        group = regions * len(CATEGORIES) + categories
        start, end = self.group_start[group], self.group_end[group]
        cum = self.group_cumweight
        low = np.where(start > 0, cum[np.maximum(start - 1, 0)], 0.0)
        target = low + u * (cum[end - 1] - low)
        position = np.clip(np.searchsorted(cum, target, side="right"), start, end - 1)
        picked: IntArray = self.by_group[position]
        return picked


@dataclass(frozen=True)
class World:
    """Everything fixed for a whole run: regions, customers, merchants, fraudsters' devices."""

    regions: Regions
    customers: Customers
    merchants: Merchants
    fraud_devices: ObjectArray  # devices fraudsters reuse across victims


def build_world(
    rng: np.random.Generator, n_customers: int, n_merchants: int, transactions_per_day: float
) -> World:
    return World(
        regions=_regions(),
        customers=_customers(rng, n_customers, transactions_per_day),
        merchants=_merchants(rng, n_merchants),
        fraud_devices=random_ids(rng, FRAUD_DEVICE_POOL, "dev-"),
    )


def _offsets(counts: IntArray) -> IntArray:
    """Start position of each group in a flat array holding groups of the given sizes."""
    return (np.cumsum(counts) - counts).astype(np.int64)


def _regions() -> Regions:
    codes = list(REGIONS)
    countries = [REGIONS[code].country for code in codes]
    currencies = [COUNTRY_CURRENCY[country] for country in countries]
    far = [[j for j, other in enumerate(codes) if _far_apart(code, other)] for code in codes]
    far_table = np.full((len(codes), len(codes)), -1, dtype=np.int64)
    for i, row in enumerate(far):
        far_table[i, : len(row)] = row
    return Regions(
        codes=np.array(codes, dtype=object),
        currency=np.array(currencies, dtype=object),
        usd_rate=np.array([CURRENCY_PER_USD[c] for c in currencies]),
        offset_ms=np.array(
            [round(REGIONS[code].utc_offset_hours * HOUR_MS) for code in codes], dtype=np.int64
        ),
        country_start=np.array([countries.index(c) for c in countries], dtype=np.int64),
        country_count=np.array([countries.count(c) for c in countries], dtype=np.int64),
        far=far_table,
        far_count=np.array([len(row) for row in far], dtype=np.int64),
    )


def _far_apart(a: str, b: str) -> bool:
    distance = haversine_km(a, b)
    other_country = REGIONS[a].country != REGIONS[b].country
    return other_country and distance is not None and distance > IMPOSSIBLE_DISTANCE_KM


def _home_regions(rng: np.random.Generator, n: int) -> IntArray:
    """Countries by their weight, then an equal chance for each of the country's regions."""
    countries = [region.country for region in REGIONS.values()]
    weights = np.array([COUNTRY_WEIGHTS[c] / countries.count(c) for c in countries])
    return rng.choice(len(countries), size=n, p=weights / weights.sum()).astype(np.int64)


def _customers(rng: np.random.Generator, n: int, transactions_per_day: float) -> Customers:
    home = _home_regions(rng, n)
    activity_sigma = 0.8  # lognormal spread of how often people pay; the mean stays as configured
    device_count = rng.choice([1, 2, 3], size=n, p=[0.5, 0.35, 0.15]).astype(np.int64)
    popularity = np.array([category.popularity for category in CATEGORIES])
    # Gamma noise with a small shape concentrates each customer on a few usual categories.
    affinity = rng.gamma(0.6, size=(n, len(CATEGORIES))) * popularity
    affinity[affinity.sum(axis=1) == 0] = popularity
    region_count = np.bincount(home, minlength=len(REGIONS)).astype(np.int64)
    return Customers(
        ids=np.array([f"C{index:07d}" for index in range(n)], dtype=object),
        home_region=home,
        daily_rate=transactions_per_day
        * rng.lognormal(-(activity_sigma**2) / 2, activity_sigma, size=n),
        spend_level=rng.lognormal(0.0, 0.5, size=n),
        spend_sigma=rng.uniform(0.3, 0.8, size=n),
        active_center_h=np.clip(rng.normal(14.0, 3.0, size=n), 8.0, 21.0),
        active_spread_h=rng.uniform(2.0, 4.5, size=n),
        category_weights=affinity / affinity.sum(axis=1, keepdims=True),
        device_start=_offsets(device_count),
        device_count=device_count,
        device_ids=random_ids(rng, int(device_count.sum()), "dev-"),
        by_region=np.argsort(home, kind="stable").astype(np.int64),
        region_start=_offsets(region_count),
        region_count=region_count,
    )


def _merchants(rng: np.random.Generator, n: int) -> Merchants:
    """One merchant for every (region, category), the rest where people spend the most."""
    n_regions, n_categories = len(REGIONS), len(CATEGORIES)
    groups = n_regions * n_categories
    popularity = np.array([max(category.popularity, 0.02) for category in CATEGORIES])
    region_weight = np.bincount(_home_regions(rng, 4096), minlength=n_regions) + 1.0
    group_weight = np.outer(region_weight, popularity).ravel()
    extra = rng.choice(groups, size=n - groups, p=group_weight / group_weight.sum())
    group = np.concatenate((np.arange(groups), extra)).astype(np.int64)
    order = np.argsort(group, kind="stable").astype(np.int64)
    weight = rng.lognormal(0.0, 1.0, size=n)  # a few busy merchants, many quiet ones
    counts = np.bincount(group, minlength=groups).astype(np.int64)
    return Merchants(
        ids=np.array([f"M{index:06d}" for index in range(n)], dtype=object),
        region=group // n_categories,
        category=group % n_categories,
        weight=weight,
        by_group=order,
        group_cumweight=np.cumsum(weight[order]),
        group_start=_offsets(counts),
        group_end=np.cumsum(counts).astype(np.int64),
    )


@dataclass(frozen=True)
class Draft:
    """Transactions as columns, before merchant lookup, currency conversion and IDs."""

    time_ms: IntArray
    customer: IntArray
    region: IntArray
    category: IntArray
    channel: IntArray
    device: ObjectArray
    amount_usd: FloatArray
    merchant: IntArray  # -1: pick one of the row's region and category
    scenario: ObjectArray

    def __len__(self) -> int:
        return int(self.time_ms.size)

    def take(self, index: IntArray) -> Draft:
        return Draft(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @staticmethod
    def concat(drafts: Sequence[Draft]) -> Draft:
        return Draft(
            **{f.name: np.concatenate([getattr(d, f.name) for d in drafts]) for f in fields(Draft)}
        )


def _draft(
    scenario: str,
    time_ms: IntArray,
    customer: IntArray,
    region: IntArray,
    category: IntArray,
    channel: IntArray | int,
    device: ObjectArray,
    amount_usd: FloatArray,
    merchant: IntArray | None = None,
) -> Draft:
    n = time_ms.size
    return Draft(
        time_ms=time_ms.astype(np.int64),
        customer=customer.astype(np.int64),
        region=region.astype(np.int64),
        category=category.astype(np.int64),
        channel=np.broadcast_to(np.asarray(channel, dtype=np.int64), (n,)).copy(),
        device=device,
        amount_usd=amount_usd.astype(np.float64),
        merchant=np.full(n, -1, dtype=np.int64) if merchant is None else merchant,
        scenario=np.full(n, scenario, dtype=object),
    )


# --- legitimate traffic -------------------------------------------------------------------------


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
    category = _categorical(category_cum[regime, customer], rng.random(n))
    channel = _categorical(_CHANNEL_CUM[category], rng.random(n))
    # Squaring skews the pick towards the customer's first (primary) device.
    device_pick = (rng.random(n) ** 2 * people.device_count[customer]).astype(np.int64)
    device = people.device_ids[people.device_start[customer] + device_pick]
    spread = np.exp(rng.normal(size=n) * people.spend_sigma[customer])
    amount = _TYPICAL_USD[category] * people.spend_level[customer] * spread
    amount *= amount_multiplier[regime, category]
    return _draft(
        LEGIT, schedule.time_ms, customer, schedule.region, category, channel, device, amount
    )


def _categorical(cumulative: FloatArray, u: FloatArray) -> IntArray:
    """Row-wise draw from per-row cumulative probabilities (last column ~1)."""
    index: IntArray = (cumulative < u[:, None]).sum(axis=1, dtype=np.int64)
    last = np.int64(cumulative.shape[1] - 1)
    clipped: IntArray = np.minimum(index, last)
    return clipped


# --- fraud scenarios ------------------------------------------------------------------------------


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


def _rows(sizes: IntArray) -> IntArray:
    """Incident index for each transaction of a set of incidents with the given sizes."""
    return np.repeat(np.arange(sizes.size, dtype=np.int64), sizes)


def _burst(
    rng: np.random.Generator, window: Window, starts: IntArray, sizes: IntArray, mean_gap_ms: float
) -> IntArray:
    """Times of each incident's transactions: its start, then exponential gaps."""
    gaps = rng.exponential(mean_gap_ms, size=int(sizes.sum()))
    first = _offsets(sizes)
    gaps[first[sizes > 0]] = 0.0
    running = np.cumsum(gaps)
    offsets = running - np.repeat(running[first], sizes)
    return window.clip(np.repeat(starts, sizes) + offsets.astype(np.int64))


def _choose(rng: np.random.Generator, weights: dict[str, float], n: int) -> IntArray:
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
    amount: FloatArray = _TYPICAL_USD[category] * world.customers.spend_level[customer] * factor
    return amount


def _attacker_devices(world: World, rng: np.random.Generator, n: int) -> ObjectArray:
    """Half the time a device from the fraudsters' shared pool, otherwise a brand-new one."""
    pooled = world.fraud_devices[rng.integers(world.fraud_devices.size, size=n)]
    fresh = random_ids(rng, n, "dev-")
    reuse = rng.random(n) < 0.5
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
    rows = _rows(sizes)
    time_ms = _burst(rng, window, window.starts(rng, n, 45 * MINUTE_MS), sizes, 90_000)
    weights = {"digital_goods": 0.6, "entertainment": 0.25, "apparel": 0.15}
    return _draft(
        CARD_TESTING,
        time_ms,
        customer[rows],
        rng.integers(world.regions.size, size=n)[rows],
        _choose(rng, weights, rows.size),
        ONLINE,
        _attacker_devices(world, rng, n)[rows],
        rng.uniform(0.5, 5.0, size=rows.size),
    )


def account_takeover(
    world: World, rng: np.random.Generator, window: Window, n: int, legit: Draft
) -> Draft:
    """A new device in a new place: one or two small probes, then several large purchases."""
    customer = rng.integers(world.customers.size, size=n)
    probes = rng.integers(1, 3, size=n)
    sizes = probes + rng.integers(2, 7, size=n)
    rows = _rows(sizes)
    time_ms = _burst(rng, window, window.starts(rng, n, 6 * HOUR_MS), sizes, 40 * MINUTE_MS)
    position = np.arange(rows.size) - np.repeat(_offsets(sizes), sizes)
    probe = position < probes[rows]
    big = _choose(rng, {"electronics": 0.45, "jewelry": 0.25, "travel": 0.3}, rows.size)
    category = np.where(probe, CATEGORY_INDEX["digital_goods"], big)
    cash_out = _typical_amount(world, rng, customer[rows], category, 2.0, 6.0)
    amount = np.where(probe, rng.uniform(5.0, 30.0, size=rows.size), cash_out)
    region = _elsewhere(world, rng, world.customers.home_region[customer])[rows]
    device = _attacker_devices(world, rng, n)[rows]
    return _draft(
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
    rows = _rows(sizes)
    duration = rng.integers(2 * HOUR_MS, 12 * HOUR_MS, size=n)
    start = window.starts(rng, n, 2 * HOUR_MS)
    time_ms = window.clip(start[rows] + (rng.random(rows.size) * duration[rows]).astype(np.int64))
    region = world.merchants.region[merchant][rows]
    customer = _local_customers(world, rng, region)
    category = world.merchants.category[merchant][rows]
    amount = _typical_amount(world, rng, customer, category, 1.5, 4.0)
    terminal = random_ids(rng, n, "dev-")[rows]
    return _draft(
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


def _local_customers(world: World, rng: np.random.Generator, region: IntArray) -> IntArray:
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
    rows = _rows(sizes)
    time_ms = _burst(rng, window, window.starts(rng, n, 4 * HOUR_MS), sizes, 20 * MINUTE_MS)
    weights = {
        "electronics": 0.3,
        "apparel": 0.25,
        "jewelry": 0.15,
        "fuel": 0.1,
        "cash_withdrawal": 0.2,
    }
    category = _choose(rng, weights, rows.size)
    in_person = np.where(rng.random(rows.size) < 0.5, CARD_PRESENT, CONTACTLESS)
    channel = np.where(category == CATEGORY_INDEX["cash_withdrawal"], ATM, in_person)
    amount = _typical_amount(world, rng, customer[rows], category, 1.5, 4.0)
    return _draft(
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
    rows = _rows(sizes)
    start = legit.time_ms[anchor] + rng.integers(10 * MINUTE_MS, 2 * HOUR_MS, size=n)
    time_ms = _burst(rng, window, start, sizes, 20 * MINUTE_MS)
    popularity = {c.name: c.popularity for c in CATEGORIES if c.popularity > 0}
    category = _choose(rng, popularity, rows.size)
    amount = _typical_amount(world, rng, customer[rows], category, 1.0, 3.0)
    channel = np.where(rng.random(rows.size) < 0.6, CARD_PRESENT, ONLINE)
    device = random_ids(rng, n, "dev-")[rows]
    return _draft(
        IMPOSSIBLE_TRAVEL, time_ms, customer[rows], far[rows], category, channel, device, amount
    )


def high_value(
    world: World, rng: np.random.Generator, window: Window, n: int, legit: Draft
) -> Draft:
    """One purchase many times the customer's usual ticket, from their own device at home."""
    customer = rng.integers(world.customers.size, size=n)
    time_ms = window.starts(rng, n, 0)
    category = _choose(rng, {"electronics": 0.4, "jewelry": 0.3, "travel": 0.3}, n)
    amount = _typical_amount(world, rng, customer, category, 6.0, 25.0)
    channel = np.where(rng.random(n) < 0.6, ONLINE, CARD_PRESENT)
    return _draft(
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
    rows = _rows(sizes)
    time_ms = _burst(rng, window, window.starts(rng, n, 3 * HOUR_MS), sizes, 30 * MINUTE_MS)
    category = np.full(rows.size, CATEGORY_INDEX["crypto_exchange"], dtype=np.int64)
    return _draft(
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
    return _draft(scenario, none, none, none, none, ONLINE, np.empty(0, dtype=object), np.empty(0))


SCENARIOS: dict[str, Scenario] = {
    CARD_TESTING: card_testing,
    ACCOUNT_TAKEOVER: account_takeover,
    COMPROMISED_MERCHANT: compromised_merchant,
    STOLEN_CARD_SPREE: stolen_card_spree,
    IMPOSSIBLE_TRAVEL: impossible_travel,
    HIGH_VALUE: high_value,
    CRYPTO_CASHOUT: crypto_cashout,
}
FRAUD_SCENARIOS: tuple[str, ...] = tuple(SCENARIOS)
