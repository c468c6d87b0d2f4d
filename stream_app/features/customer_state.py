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

_STATE_VERSION = 1
# The binary snapshot (the changelog's format): a header, the last region as length-prefixed
# UTF-8, then each array as a count and its little-endian items. About as large as the state in
# memory, a third of the JSON snapshot, and decoded without building a Python int per value.
_BINARY_VERSION = 2
_HEADER = struct.Struct("<BBqB")  # version, flags, last_us, region length
_COUNT = struct.Struct("<I")
_HAS_LAST_US, _HAS_REGION = 1, 2
_LITTLE_ENDIAN = sys.byteorder == "little"


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
    the last 30 days (the calendar windows). ``seen``: first-seen tags, see the module docstring.
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
            if version != _BINARY_VERSION:
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
        if len(recent) % 2 or len(days) % 3:
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
        if data.get("version") != _STATE_VERSION:
            raise ValueError(f"unsupported state version {data.get('version')!r}")
        state = cls(
            last_us=data["last_us"],
            last_region=None if data["last_region"] is None else sys.intern(data["last_region"]),
            recent=int_array(data["recent"]),
            days=int_array(data["days"]),
            seen=_tag_array(data["seen"]),
            # absent from states written before duplicates were checked: nothing remembered
            transaction_tags=_transaction_tag_array(data.get("transaction_tags", ())),
        )
        if len(state.recent) % 2 or len(state.days) % 3:
            raise ValueError("customer state arrays have the wrong length")
        return state
