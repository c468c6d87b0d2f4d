"""How far the customer store's copy of each standby partition goes, and whether it has a hole.

A worker with standby replicas applies the changelog of the partitions it is standby for (Faust's
recovery service reads them and hands them to the store in batches). When one of them becomes
active, the store tells Faust the last offset its copy holds, and Faust reads only what comes
after (stream_app/worker/bulk_recovery.py). That is only right if the copy holds every offset up
to there. Faust can lose standby messages: mode's ``FlowControlEvent.resume`` empties the
changelog queue, and Faust's recovery resumes flow control again once a recovery completes, after
it has resumed the standby partitions, while its consumer has already counted what was queued as
read. So the offsets applied are checked to follow each other: after a gap the copy is not
offered (Faust reads that partition again from its first offset, as it always did without this),
and at the next rebalance Faust is asked to read the standby partition from its start again,
which fills the hole.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from faust.types import TP

log = logging.getLogger(__name__)

NOTHING_APPLIED = -1  # Faust's own "before the first offset": read from the start


class StandbyOffsets:
    """The last changelog offset applied to each standby partition's copy, while it has no hole."""

    def __init__(self) -> None:
        self._last: dict[TP, int] = {}
        self._holed: set[TP] = set()  # copies that missed an offset: not offered until refilled

    def offset(self, tp: TP) -> int | None:
        """Where Faust can start reading ``tp`` on top of the copy; None if there is no copy."""
        return self._last.get(tp)

    def copies(self) -> dict[TP, int]:
        return dict(self._last)

    def tracking(self) -> bool:
        return bool(self._last)

    def holed(self) -> set[TP]:
        return set(self._holed)

    def start(self, standbys: Iterable[TP], promised: Mapping[TP, int]) -> None:
        """A rebalance: what the copies of this assignment's standby partitions start from.

        A partition read in bulk starts at the read's last offset (``promised``); one already
        held keeps its offset; any other (new without a read, active before, or holed) starts
        from nothing, and Faust is told so, so it reads the partition from its first offset."""
        for tp in standbys:
            last = self._last.get(tp, NOTHING_APPLIED)
            bulk = promised.get(tp)
            if bulk is not None and bulk > last and tp not in self._holed:
                self._last[tp] = bulk
            elif tp in self._holed or tp not in self._last:
                self._holed.discard(tp)
                self._last[tp] = NOTHING_APPLIED

    def applied(self, tp: TP, offset: int) -> None:
        """Faust applied ``offset`` of ``tp`` to the store (a no-op for partitions not tracked)."""
        last = self._last.get(tp)
        if last is None or offset <= last:
            return  # not a standby copy, or applied again after a seek back
        if offset == last + 1:
            self._last[tp] = offset
            return
        # A hole (or a compacted stretch Faust read from the start): the copy is not offered.
        del self._last[tp]
        self._holed.add(tp)
        log.warning(
            "standby copy of %s missed offsets %d to %d: not offered for a takeover",
            tp,
            last + 1,
            offset - 1,
        )

    def forget(self, tps: Iterable[TP]) -> None:
        """Partitions revoked, or active now (the table writes those itself)."""
        for tp in tps:
            self._last.pop(tp, None)
            self._holed.discard(tp)
