"""Units, encodings and the prepared event shared by every feature family, online and offline.

Exact agreement between the training (offline) and serving (online) paths rests on three choices
made here once:

* Time is an integer count of microseconds since the Unix epoch (UTC). Window bounds are integer
  comparisons, so an event exactly on a boundary falls on the same side in both paths.
* Amounts are aggregated as integer US-dollar cents. Integer sums do not depend on the order of
  addition, so a vectorised cumulative sum and a per-customer loop give the same number; floats
  appear only in the final division, done with the same operations in both paths.
* Sums of squared cents use two's-complement int64 arithmetic (numpy wraps silently; the online
  path wraps explicitly with :func:`wrap_int64`), so even absurd histories agree exactly.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import NamedTuple
from zlib import crc32

from stream_app import geo
from stream_app.schemas import Transaction

US_PER_SECOND = 1_000_000
US_PER_HOUR = 3_600 * US_PER_SECOND
US_PER_DAY = 24 * US_PER_HOUR
HOURS_PER_US = 1.0 / 3_600_000_000.0

# Value of a feature that is undefined for this row (no history, unknown region, no labels).
# Every such feature is non-negative when defined, so -1 cannot be mistaken for a real value;
# NaN is avoided because verdict payloads are JSON and must round-trip as numbers.
MISSING = -1.0

# Two transactions at the same instant would imply infinite speed; travel time is floored at one
# minute so "impossible travel" is a large finite number of km/h.
MIN_TRAVEL_HOURS = 1.0 / 60.0

UNKNOWN_MERCHANT = "unknown"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_INT64_OFFSET = 1 << 63
_UINT64_MASK = (1 << 64) - 1

# Stable integer codes for categoricals, index = code. Append only: codes already used by a
# trained model must never move. Anything not listed (after normalisation) maps to 0, "other".
# XGBoost receives the code as a number; trees split it into ranges, which is enough for a
# vocabulary this small and keeps the booster free of categorical-mode requirements.
MERCHANT_CATEGORIES: tuple[str, ...] = (
    "other",
    # The simulator's categories (producers/simulator/world.py), including the two that only appear
    # with drift, so that drift shows up as a new code rather than as a growing "other".
    "grocery",
    "restaurant",
    "fuel",
    "pharmacy",
    "apparel",
    "electronics",
    "travel",
    "entertainment",
    "utilities",
    "digital_goods",
    "home_garden",
    "cash_withdrawal",
    "jewelry",
    "crypto_exchange",
    "ev_charging",
    # Common in other feeds.
    "online_retail",
    "gaming",
    "money_transfer",
    "gift_cards",
)
TRANSACTION_TYPES: tuple[str, ...] = (
    "other",
    # The simulator's channels.
    "card_present",
    "contactless",
    "online",
    "atm",
    # Common in other feeds.
    "purchase",
    "card_not_present",
    "atm_withdrawal",
    "transfer",
    "upi",
    "netbanking",
    "wallet",
    "bill_payment",
    "refund",
)
_CATEGORY_INDEX = {name: code for code, name in enumerate(MERCHANT_CATEGORIES)}
_TYPE_INDEX = {name: code for code, name in enumerate(TRANSACTION_TYPES)}

# Tags for the first-seen sets: a 30-bit CRC of the value with the kind in the low two bits, so
# one compact array holds devices, merchants and regions without cross-kind collisions.
DEVICE_KIND, MERCHANT_KIND, REGION_KIND = 1, 2, 3
_KIND_MASK = 3
_TAG_MASK = 0xFFFFFFFF & ~_KIND_MASK


class Event(NamedTuple):
    """A transaction reduced to what the features use, computed once per transaction."""

    t_us: int
    cents: int
    amount: float
    amount_usd: float
    merchant: str
    region: str
    device_tag: int
    merchant_tag: int
    region_tag: int
    category_code: int
    type_code: int
    utc_offset_us: int


def to_micros(moment: datetime) -> int:
    """Exact microseconds since the epoch (``datetime.timestamp`` goes through a float)."""
    return (moment - _EPOCH) // _ONE_US


def wrap_int64(value: int) -> int:
    """``value`` reduced to int64 the way numpy's wrapping arithmetic does."""
    return ((value + _INT64_OFFSET) & _UINT64_MASK) - _INT64_OFFSET


def usd_cents(amount_usd: float) -> int:
    """Round half to even, exactly like ``np.rint`` on the same float."""
    return round(amount_usd * 100.0)


def tag(kind: int, value: str) -> int:
    """Stable across processes (unlike ``hash``), so states written by one worker stay valid."""
    return crc32(value.encode()) & _TAG_MASK | kind


def tag_kind(tagged: int) -> int:
    return tagged & _KIND_MASK


def merchant_key(merchant_id: str | None) -> str:
    """Transactions without a merchant share one merchant entity, as in the worker's tables."""
    return merchant_id or UNKNOWN_MERCHANT


def _normalise(value: str) -> str:
    return value.strip().lower().replace("-", "_").replace(" ", "_")


@lru_cache(maxsize=4096)
def category_code(value: str) -> int:
    return _code(_CATEGORY_INDEX, value)


@lru_cache(maxsize=4096)
def type_code(value: str) -> int:
    return _code(_TYPE_INDEX, value)


def _code(index: Mapping[str, int], value: str) -> int:
    return index.get(_normalise(value), 0)


@lru_cache(maxsize=4096)
def usd_rate(currency: str | None, region: str) -> float:
    """Units of the amount's currency per US dollar.

    The transaction's currency when known, else the region's country currency, else 1.0 (the
    amount is taken as dollars). Velocity sums mix a travelling customer's currencies, so they
    are kept in one unit.
    """
    rate = geo.CURRENCY_PER_USD.get(currency) if currency else None
    if rate is None:
        region_info = geo.REGIONS.get(region)
        country_currency = geo.COUNTRY_CURRENCY.get(region_info.country) if region_info else None
        rate = geo.CURRENCY_PER_USD.get(country_currency) if country_currency else None
    return 1.0 if rate is None else rate


@lru_cache(maxsize=4096)
def utc_offset_us(region: str) -> int:
    """The region's standard UTC offset (geo ignores daylight saving); 0 for unknown regions."""
    region_info = geo.REGIONS.get(region)
    return 0 if region_info is None else round(region_info.utc_offset_hours * US_PER_HOUR)


def prepare_event(txn: Transaction) -> Event:
    """Everything both state updates and features need, derived from the wire model once.

    Tags are :func:`tag` written out: this runs once per transaction on the hot path.
    """
    merchant = merchant_key(txn.merchant_id)
    region = sys.intern(txn.geo_location)
    amount_usd = txn.amount / usd_rate(txn.currency, region)
    # Positional: twice as fast as keywords for a NamedTuple this wide.
    return Event(
        to_micros(txn.timestamp),  # t_us
        usd_cents(amount_usd),  # cents
        txn.amount,  # amount
        amount_usd,  # amount_usd
        merchant,  # merchant
        region,  # region
        crc32(txn.device_id.encode()) & _TAG_MASK | DEVICE_KIND,  # device_tag
        crc32(merchant.encode()) & _TAG_MASK | MERCHANT_KIND,  # merchant_tag
        crc32(region.encode()) & _TAG_MASK | REGION_KIND,  # region_tag
        category_code(txn.merchant_category),  # category_code
        type_code(txn.transaction_type),  # type_code
        utc_offset_us(region),  # utc_offset_us
    )
