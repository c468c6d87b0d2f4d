"""A :class:`Draft`: a day's transactions as columns, before merchant lookup, conversion and IDs.

Legitimate traffic (:mod:`.legit`) and every fraud scenario (:mod:`.fraud`) return drafts; the
day generator (:mod:`.days`) concatenates them and does the per-row work once for all of them.
The type lives apart so that neither kind of traffic has to import the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from producers.simulator.world import FloatArray, IntArray, ObjectArray


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


def make_draft(
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
