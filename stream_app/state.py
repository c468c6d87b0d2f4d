"""Per-entity feature state as the worker holds it, and what survives a restart.

Customers: the ``transactions`` topic is keyed by customer_id, so each customer's state lives
on the worker that owns the customer's partition. It is kept in a Faust table's store (any
mutable mapping works here) and every change is written to the table's changelog topic, to
the same partition as the transaction that caused it. On restart or rebalance Faust replays
the changelog into the store. Values are a compact binary snapshot (the table's values are raw
bytes, see :func:`encode_customer`) kept as bytes until the customer's first transaction: a
million recovered customers must fit in the worker's memory, and JSON-decoded dicts took four
times the room (docs/benchmarks.md, "Where the time goes"). Keys are JSON strings, as Faust
encodes them.

Each changelog value also records the offset of the last transaction folded into the state.
Under at-least-once delivery a batch can be processed twice after a crash (scored, published,
but its offsets not yet committed); a transaction at or below that offset is then scored
again but not counted into the state twice.

Duplicates: a message whose transaction_id the customer already had (a producer retry, a
client sending again) must not be scored and counted twice. Each customer remembers hashes of
its last :data:`RECENT_TRANSACTION_IDS` transaction ids in its state, so the memory is bounded
and the check survives restarts with the changelog. A replay after a crash is told apart by
its offset (``already_observed``): it is scored again, while a new message with a remembered
id is a duplicate. The limit: a copy arriving after more than that many newer transactions of
the same customer is not recognised.

Merchants: a merchant's transactions are spread over every customer partition, so merchant
state is kept in memory per worker and fed by readers of whole topics, outside the group: the
labels reader (``transaction-labels``) and the merchant-volume reader (every partition of
``transactions``); see docs/worker.md's state section.
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from stream_app import features

log = logging.getLogger(__name__)

NO_OFFSET = -1
# Retries and resends follow their original within a few messages of the customer; eight
# 8-byte tags keep that covered for about 130 bytes per customer (bench/bench_features.py).
RECENT_TRANSACTION_IDS = 8


@dataclass(frozen=True, slots=True)
class ChangelogRecord:
    """One customer's new state, for the changelog partition of its source partition."""

    partition: int
    key: bytes
    value: bytes


_OFFSET = struct.Struct("<q")


def encode_customer(state: features.CustomerState, offset: int) -> bytes:
    """The changelog value: the state's binary snapshot, then the offset of the last
    transaction folded in. The snapshot's first byte is its format version, never ``{``, which
    is how :func:`decode_customer` tells it from the JSON form."""
    return state.to_bytes() + _OFFSET.pack(offset)


_NEEDS_ESCAPE = frozenset('"\\')


def encode_key(customer_id: str) -> bytes:
    """Changelog keys are JSON strings, as Faust's table recovery decodes them.

    Ids of printable ASCII without ``"`` or ``\\`` (the usual ones) are their own JSON string
    content, so they are quoted directly: ``json.dumps`` escapes nothing else in that range,
    and a call per changed customer per batch was measurable. Anything else goes through it.
    """
    plain = customer_id.isascii() and customer_id.isprintable()
    if plain and _NEEDS_ESCAPE.isdisjoint(customer_id):
        return b'"' + customer_id.encode() + b'"'
    return json.dumps(customer_id).encode()


def decode_customer(payload: bytes | dict[str, Any]) -> tuple[features.CustomerState, int]:
    """A changelog value back into state and offset; also the JSON form written by releases
    before the binary one (raw JSON bytes, or the dict a JSON-valued table decoded them to)."""
    if isinstance(payload, bytes) and payload.startswith(b"{"):
        payload = json.loads(payload)
    if isinstance(payload, dict):
        return features.CustomerState.from_dict(payload["state"]), int(payload["offset"])
    if len(payload) < _OFFSET.size:
        raise ValueError(f"customer state of {len(payload)} bytes is truncated")
    (offset,) = _OFFSET.unpack_from(payload, len(payload) - _OFFSET.size)
    return features.CustomerState.from_bytes(payload[: -_OFFSET.size]), offset


def transaction_tag(transaction_id: str) -> int:
    """A 63-bit hash of the id: stable across processes (``hash()`` is salted per process) and
    within a signed 64-bit integer, so any JSON library round-trips it exactly. Two ids of one
    customer share a tag with odds of about 1 in 10**18."""
    digest = hashlib.blake2b(transaction_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def has_transaction(customer: features.CustomerState, transaction_id: str) -> bool:
    return transaction_tag(transaction_id) in customer.transaction_tags


def remember_transaction(customer: features.CustomerState, transaction_id: str) -> None:
    """Add the id to the customer's recent ids, forgetting the oldest beyond the limit."""
    tags = customer.transaction_tags
    if len(tags) >= RECENT_TRANSACTION_IDS:
        del tags[: len(tags) - RECENT_TRANSACTION_IDS + 1]
    tags.append(transaction_tag(transaction_id))


@dataclass
class EntityState:
    """Customer and merchant state, with the customer changes not yet written to the changelog."""

    customers: MutableMapping[Any, Any] = field(default_factory=dict)
    merchants: dict[str, features.MerchantState] = field(default_factory=dict)
    offsets: dict[str, int] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)
    # Called once per changelog value that could not be decoded (the worker counts them).
    on_unreadable: Callable[[], None] = field(default=lambda: None)

    def customer(self, customer_id: str) -> features.CustomerState:
        """The customer's state, decoding a value recovered from the changelog on first use."""
        stored = self.customers.get(customer_id)
        if isinstance(stored, features.CustomerState):
            return stored
        if isinstance(stored, bytes | dict):
            state = self._recovered(customer_id, stored)
        else:
            state = features.CustomerState()
        self.customers[customer_id] = state
        return state

    def _recovered(
        self, customer_id: str, stored: bytes | dict[str, Any]
    ) -> features.CustomerState:
        try:
            state, offset = decode_customer(stored)
        except (ValueError, KeyError, TypeError) as exc:
            # A value this code cannot read (corrupted, or from an incompatible release) must
            # not stop the worker: the customer starts over with empty history, and says so.
            log.error("customer state unreadable, starting empty: customer=%s %s", customer_id, exc)
            self.on_unreadable()
            return features.CustomerState()
        self.offsets[customer_id] = offset
        return state

    def peek_customer(self, customer_id: str) -> features.CustomerState:
        """The customer's state without creating an entry (for read-only requests)."""
        if customer_id in self.customers:
            return self.customer(customer_id)
        return features.CustomerState()

    def merchant(self, merchant_id: str | None) -> features.MerchantState:
        key = features.merchant_key(merchant_id)
        state = self.merchants.get(key)
        if state is None:
            state = self.merchants[key] = features.MerchantState()
        return state

    def already_observed(self, customer_id: str, offset: int) -> bool:
        """True when this transaction's offset was folded into the state before a restart."""
        if customer_id not in self.offsets and customer_id in self.customers:
            self.customer(customer_id)  # a value recovered from the changelog brings its offset
        return offset <= self.offsets.get(customer_id, NO_OFFSET)

    def is_duplicate(self, customer_id: str, transaction_id: str) -> bool:
        """True when the customer's recent transactions include this id (read-only)."""
        if customer_id not in self.customers:
            return False
        return has_transaction(self.customer(customer_id), transaction_id)

    def record_change(self, customer_id: str, partition: int, offset: int) -> None:
        self.offsets[customer_id] = offset
        self.changed[customer_id] = partition

    def take_changes(self) -> list[ChangelogRecord]:
        """Encode each customer changed since the last call once, however often it changed."""
        records = [
            ChangelogRecord(
                partition,
                encode_key(customer_id),
                encode_customer(self.customer(customer_id), self.offsets[customer_id]),
            )
            for customer_id, partition in self.changed.items()
        ]
        self.changed.clear()
        return records
