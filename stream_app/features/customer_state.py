"""One customer's online state and its changelog encodings (the binary snapshot and JSON).

Apart from :mod:`stream_app.features.customer`, which says what the features mean and computes
them from this state, because the storage format is a contract of its own: a snapshot written by
one version of the worker is recovered by the next (``_STATE_VERSION``, ``_BINARY_VERSION``).
"""

from __future__ import annotations

import struct
import sys
from array import array
from dataclasses import dataclass, field
from typing import Any

from stream_app.features import core

# Version 2 (JSON) / 3 (binary): each device tag in ``seen`` is followed by the customer's
# first use of the device (see :func:`encode_first_use`). The versions before them had bare
# tags and still decode, their devices' first use unknown (UNKNOWN_FIRST_USE).
_STATE_VERSION = 2
_STATE_VERSIONS_WITHOUT_FIRST_USE = frozenset({1})
# The binary snapshot (the changelog's format): a header, the last region as length-prefixed
# UTF-8, then each array as a count and its little-endian items. About as large as the state in
# memory, a third of the JSON snapshot, and decoded without building a Python int per value.
_BINARY_VERSION = 3
_BINARY_VERSIONS_WITHOUT_FIRST_USE = frozenset({2})
_HEADER = struct.Struct("<BBqB")  # version, flags, last_us, region length
_COUNT = struct.Struct("<I")
_HAS_LAST_US, _HAS_REGION = 1, 2
_LITTLE_ENDIAN = sys.byteorder == "little"


# A first-use time is microseconds since the epoch, offset by 2**59 (any datetime fits), in two
# 30-bit halves, each shifted left by two: the low two bits are a tag's kind, and kind 0 is no
# tag's, so ``tag in seen`` and the per-kind counts never mistake a time for a tag, and the set
# keeps one flat uint32 array (8 more bytes per remembered device).
_KIND_BITS = 2
_KIND_MASK = (1 << _KIND_BITS) - 1
_HALF_BITS = 30
_HALF_MASK = (1 << _HALF_BITS) - 1
_FIRST_USE_OFFSET = 1 << 59
_UNKNOWN_WORD = _HALF_MASK << _KIND_BITS
UNKNOWN_FIRST_USE = (_UNKNOWN_WORD, _UNKNOWN_WORD)
_UNKNOWN_BIASED = (1 << 2 * _HALF_BITS) - 1


def encode_first_use(t_us: int) -> tuple[int, int]:
    """The two ``seen`` words after a device tag: the customer's first use of the device."""
    biased = t_us + _FIRST_USE_OFFSET
    if not 0 <= biased < _UNKNOWN_BIASED:
        raise ValueError(f"first-use time {t_us} us is out of range")
    return (biased >> _HALF_BITS) << _KIND_BITS, (biased & _HALF_MASK) << _KIND_BITS


def decode_first_use(high: int, low: int) -> int | None:
    """Inverse of :func:`encode_first_use`; None for :data:`UNKNOWN_FIRST_USE`."""
    biased = (high >> _KIND_BITS) << _HALF_BITS | low >> _KIND_BITS
    return None if biased == _UNKNOWN_BIASED else biased - _FIRST_USE_OFFSET


def _with_unknown_first_use(tags: array[int]) -> array[int]:
    """An older format's bare tags with an unknown first use after each device tag."""
    seen = _tag_array()
    for tagged in tags:
        seen.append(tagged)
        if tagged & _KIND_MASK == core.DEVICE_KIND:
            seen.extend(UNKNOWN_FIRST_USE)
    return seen


def _has_valid_first_use(seen: array[int]) -> bool:
    """Every device tag followed by exactly two time words, and no time word elsewhere: what a
    lookup of ``seen[index + 1]`` and ``seen[index + 2]`` after a device tag relies on."""
    index, length = 0, len(seen)
    while index < length:
        kind = seen[index] & _KIND_MASK
        if kind == 0:
            return False
        if kind == core.DEVICE_KIND:
            if index + 2 >= length or seen[index + 1] & _KIND_MASK or seen[index + 2] & _KIND_MASK:
                return False
            index += 2
        index += 1
    return True


def int_array(values: Any = ()) -> array[int]:
    return array("q", values)


def _tag_array(values: Any = ()) -> array[int]:
    return array("I", values)


def _transaction_tag_array(values: Any = ()) -> array[int]:
    return array("q", values)


def _little_endian(values: array[int]) -> array[int]:
    """The array in little-endian order (a copy on big-endian machines; itself elsewhere)."""
    if _LITTLE_ENDIAN:
        return values
    swapped = array(values.typecode, values)
    swapped.byteswap()
    return swapped


@dataclass(slots=True)
class CustomerState:
    """One customer's history: just under 1 KB for a customer paying about once a day
    (measured by ``bench/bench_features.py``), whatever the length of the history.

    ``recent``: ``[t_us, cents, ...]`` of the last 24 h of transactions (the exact windows).
    ``days``: ``[day << 32 | count, cents, squared_cents, ...]`` per UTC day with transactions,
    the last 30 days (the calendar windows). ``seen``: first-seen tags (see
    :mod:`stream_app.features.customer`), each device tag followed by the two words of its
    first use (:func:`encode_first_use`).
    ``transaction_tags``: hashes of the customer's last few transaction ids, oldest first; no
    feature reads them, the worker's duplicate check does (:mod:`stream_app.state`), and they
    live here so that they travel through the changelog with the rest of the customer.
    """

    last_us: int | None = None
    last_region: str | None = None
    recent: array[int] = field(default_factory=int_array)
    days: array[int] = field(default_factory=int_array)
    seen: array[int] = field(default_factory=_tag_array)
    transaction_tags: array[int] = field(default_factory=_transaction_tag_array)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible snapshot (for changelog-backed tables)."""
        return {
            "version": _STATE_VERSION,
            "last_us": self.last_us,
            "last_region": self.last_region,
            "recent": self.recent.tolist(),
            "days": self.days.tolist(),
            "seen": self.seen.tolist(),
            "transaction_tags": self.transaction_tags.tolist(),
        }

    def to_bytes(self) -> bytes:
        """The compact binary snapshot: what the worker writes to the changelog."""
        region = b"" if self.last_region is None else self.last_region.encode()
        flags = (_HAS_LAST_US if self.last_us is not None else 0) | (
            _HAS_REGION if self.last_region is not None else 0
        )
        parts = [_HEADER.pack(_BINARY_VERSION, flags, self.last_us or 0, len(region)), region]
        for values in (self.recent, self.days, self.seen, self.transaction_tags):
            parts.append(_COUNT.pack(len(values)))
            parts.append(_little_endian(values).tobytes())
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> CustomerState:
        """Inverse of :meth:`to_bytes`; ValueError for anything it did not write."""
        try:
            version, flags, last_us, region_length = _HEADER.unpack_from(data)
            if version != _BINARY_VERSION and version not in _BINARY_VERSIONS_WITHOUT_FIRST_USE:
                raise ValueError(f"unsupported state version {version!r}")
            position = _HEADER.size + region_length
            region = data[_HEADER.size : position].decode() if flags & _HAS_REGION else None
            arrays = []
            for make in (int_array, int_array, _tag_array, _transaction_tag_array):
                (count,) = _COUNT.unpack_from(data, position)
                values = make()
                end = position + _COUNT.size + count * values.itemsize
                if end > len(data):
                    raise ValueError("customer state is truncated")
                values.frombytes(data[position + _COUNT.size : end])
                arrays.append(_little_endian(values))
                position = end
        except struct.error as exc:  # too short for a header or a count
            raise ValueError(f"customer state is truncated: {exc}") from exc
        if position != len(data):
            raise ValueError("customer state has trailing bytes")
        recent, days, seen, transaction_tags = arrays
        if version in _BINARY_VERSIONS_WITHOUT_FIRST_USE:
            seen = _with_unknown_first_use(seen)
        if len(recent) % 2 or len(days) % 3 or not _has_valid_first_use(seen):
            raise ValueError("customer state arrays have the wrong length")
        return cls(
            last_us=last_us if flags & _HAS_LAST_US else None,
            last_region=None if region is None else sys.intern(region),
            recent=recent,
            days=days,
            seen=seen,
            transaction_tags=transaction_tags,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CustomerState:
        version = data.get("version")
        if version != _STATE_VERSION and version not in _STATE_VERSIONS_WITHOUT_FIRST_USE:
            raise ValueError(f"unsupported state version {version!r}")
        seen = _tag_array(data["seen"])
        if version in _STATE_VERSIONS_WITHOUT_FIRST_USE:
            seen = _with_unknown_first_use(seen)
        state = cls(
            last_us=data["last_us"],
            last_region=None if data["last_region"] is None else sys.intern(data["last_region"]),
            recent=int_array(data["recent"]),
            days=int_array(data["days"]),
            seen=seen,
            # absent from states written before duplicates were checked: nothing remembered
            transaction_tags=_transaction_tag_array(data.get("transaction_tags", ())),
        )
        if len(state.recent) % 2 or len(state.days) % 3 or not _has_valid_first_use(state.seen):
            raise ValueError("customer state arrays have the wrong length")
        return state
