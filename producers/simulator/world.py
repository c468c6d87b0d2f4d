"""The simulated world, fixed for a whole run: regions, customers, merchants and their catalogue.

Everything is columnar (numpy arrays, one element per customer or merchant) so that a whole
simulated day can be drafted with a handful of vectorised operations (:mod:`.legit`,
:mod:`.fraud`). This module holds what does not change while a run goes on; the traffic drafted
on top of it lives in the modules that use it. Amounts are kept in US dollars here and converted
to the local currency of the region where a transaction happens, so a customer's spending level
means the same in Mumbai and in Berlin.
"""

from __future__ import annotations

from dataclasses import dataclass
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
# Off by default too: the realistic preset's quiet scenarios (producers.simulator.subtle_fraud).
HABIT_MIMIC = "habit_mimic"
MERCHANT_BREACH = "merchant_breach"
QUIET_CARD_TESTING = "quiet_card_testing"

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
TYPICAL_USD = np.array([category.typical_usd for category in CATEGORIES])
CHANNEL_CUM = np.cumsum([category.channels for category in CATEGORIES], axis=1)

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
    fraud_device_reuse: float = 0.5  # share of attacks from a pooled device, not a new one


def build_world(
    rng: np.random.Generator,
    n_customers: int,
    n_merchants: int,
    transactions_per_day: float,
    fraud_devices: int = FRAUD_DEVICE_POOL,
    fraud_device_reuse: float = 0.5,
) -> World:
    return World(
        regions=_regions(),
        customers=_customers(rng, n_customers, transactions_per_day),
        merchants=_merchants(rng, n_merchants),
        fraud_devices=random_ids(rng, fraud_devices, "dev-"),
        fraud_device_reuse=fraud_device_reuse,
    )


def group_offsets(counts: IntArray) -> IntArray:
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
        device_start=group_offsets(device_count),
        device_count=device_count,
        device_ids=random_ids(rng, int(device_count.sum()), "dev-"),
        by_region=np.argsort(home, kind="stable").astype(np.int64),
        region_start=group_offsets(region_count),
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
        group_start=group_offsets(counts),
        group_end=np.cumsum(counts).astype(np.int64),
    )
