"""Faust's aiokafka transport with no silent gaps around a seek-back (issue 17).

Two things Faust 0.15.3 and aiokafka get wrong for this worker, each fixed here with a guard
test on the pinned code it relies on (tests/unit/test_kafka_transport.py):

* aiokafka's ``seek_to_committed`` leaves partitions that have no committed offset where the
  fetcher had got to, so on a fresh consumer group what was fetched and dropped before the
  first commit was never read again: :meth:`NoGapConsumer.seek_to_committed` rewinds them.
* Faust's recovery seeks back and then resumes flow control, which empties the stream queues;
  records fetched in between were thrown away unscored and never read again:
  :meth:`NoGapConsumer.perform_seek` holds them back and reads them again after the resume.

It also tells the progress watchdog how far the worker really got
(:meth:`NoGapConsumer.processed_offset`).

Faust's own fetch loop (``Consumer._drain_messages``) runs unchanged: the hold filters what
:meth:`NoGapConsumer.getmany` yields to it. An earlier version copied that loop to hand each
message over inline instead of through Faust's ``wait_first``; by the time the hold was added,
a bare agent drained as fast with Faust's loop as with the copy (bench/faust_bare.py, best of
three alternating runs each: 16,498 vs 16,577 msg/s), so the copy went (issue 18).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import cast

from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP, Message

# Longest a seek-back holds a stream's records back waiting for Faust to resume flow control;
# the recovery resumes it within milliseconds of the seek-back when it does at all.
HOLD_LIMIT_SECONDS = 5.0


class NoGapConsumer(aiokafka_driver.Consumer):
    """Faust's aiokafka consumer, with no stream record dropped around a seek-back."""

    _holding = False  # from a seek-back until Faust resumes flow control: see perform_seek
    _seek_done_at: float | None = None  # when the seek-back of the current hold returned
    _held_back = False  # records were held back: seek back once more before delivering
    _watching_flow_control = False

    async def perform_seek(self) -> None:
        """Faust's seek-back, with stream records held back until Faust resumes flow control.

        Faust's recovery seeks back (this method) and then resumes flow control, and resuming
        empties every stream's queue (mode's ``FlowControlEvent.resume`` clears the queues,
        which Faust's channels create with ``clear_on_resume``). Records the fetcher delivered
        in between (it runs on during the seek's broker round trips) were thrown away unscored:
        fetched after the seek, nothing read them again, and Faust's next delivery of that
        partition looked like a jump in offsets, which it records as a gap and commits past
        (issue 17: counts of the records fetched, delivered and scored per partition showed
        it). So nothing of a stream is delivered from here until flow control is resumed, and
        what was held back is read again by one more seek-back once it is.

        Faust's recovery can also return between the two without resuming (a new rebalance
        starting): a hold then ends ``HOLD_LIMIT_SECONDS`` after the seek-back by itself, else
        the stream would wait for ever (seen once, the progress watchdog restarted it).
        """
        self._watch_flow_control()
        self._holding, self._seek_done_at = True, None
        await super().perform_seek()
        self._seek_done_at = time.monotonic()

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, Message]]:
        """Faust's fetch, minus the stream records that arrive while a seek-back holds them.

        Faust's fetch loop hands each message to the streams before it asks for the next, so
        the hold is checked at the moment each one would be delivered."""
        if await self._read_held_records_again():
            return  # nothing fetched: the next round fetches from where that seek-back went
        # Faust's getmany is an async generator (typed as an iterator): closed when we stop early.
        fetched = cast(AsyncGenerator[tuple[TP, Message], None], super().getmany(timeout))
        async with contextlib.aclosing(fetched):
            async for tp, message in fetched:
                if self._holding and self._hold_expired():
                    self._holding = False
                if self._holding and self.app.topics.acks_enabled_for(message.topic):
                    self._held_back = True  # a stream's record, while its queue is to be cleared
                    continue
                if self._held_back and not self._holding:  # released: read the held ones again
                    self._held_back = False
                    await super().perform_seek()
                    return  # the rest of this fetch is from before that seek: it comes again
                yield tp, message

    def _watch_flow_control(self) -> None:
        """Release held records when Faust resumes flow control (after it cleared the queues)."""
        if self._watching_flow_control:
            return
        self._watching_flow_control = True
        flow_control = self.app.flow_control
        resume = flow_control.resume

        def resume_then_release() -> None:
            resume()
            self._holding = False

        # On this app's own FlowControlEvent instance; pinned by a guard test.
        setattr(flow_control, "resume", resume_then_release)  # noqa: B010

    async def _read_held_records_again(self) -> bool:
        """Once the hold is over, seek back to read what it held: at the first round after it,
        with or without new records (the held ones may have been the partition's last)."""
        if self._holding and self._hold_expired():
            self._holding = False
        if not self._held_back or self._holding:
            return False
        self._held_back = False
        await super().perform_seek()
        return True

    def _hold_expired(self) -> bool:
        done_at = self._seek_done_at
        return done_at is not None and time.monotonic() - done_at > HOLD_LIMIT_SECONDS

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Seek every assigned partition to its committed offset, and those that have none (or
        0) to their beginning, where this app's ``consumer_auto_offset_reset="earliest"``
        starts them.

        Faust seeks back to the committed offsets to throw away what it fetched but did not
        deliver (a rebalance, a recovery, a fetch that returned while the flow was stopped),
        and then reads on from there. aiokafka's ``seek_to_committed`` only moves partitions
        with a committed offset above 0: on a fresh consumer group, before the first commit
        of a partition, the seek-back left that partition where the fetcher had got to, and
        what was fetched and dropped was never read again (issue 17). Reading it again from
        the start only repeats uncommitted transactions, within the duplicate bound.
        """
        committed = await super().seek_to_committed()
        self._committed_at_seek = {tp: offset for tp, offset in committed.items() if offset}
        uncommitted = [tp for tp, offset in committed.items() if not offset]
        if uncommitted:
            await self._thread.seek_to_beginning(*uncommitted)
        return committed

    def processed_offset(self, tp: TP) -> int | None:
        """The next offset of ``tp`` that still has to be processed, as far as this worker
        knows: the offset it last committed (Faust's monitor records every commit) or, before
        its first commit, the committed offset it found at the last seek-back. None if the
        partition has no commit at all.

        Unlike the fetch position, this does not move for records that were fetched and then
        never scored (issue 17): the progress watchdog watches both."""
        known = (
            self.app.monitor.tp_committed_offsets.get(tp),
            getattr(self, "_committed_at_seek", {}).get(tp),
        )
        offsets = [offset for offset in known if offset]
        return max(offsets) if offsets else None


class NoGapTransport(aiokafka_driver.Transport):
    """The ``kafka://`` transport with :class:`NoGapConsumer`."""

    Consumer = NoGapConsumer
