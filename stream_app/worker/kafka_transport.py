"""Faust's aiokafka transport with a cheaper hand-over of each fetched message to the streams.

Faust's fetch loop (``Consumer._drain_messages``) hands every message to the conductor through
``Service.wait_first(callback(message), suspend_flow.wait())``: four asyncio tasks, an
``asyncio.wait`` and three cancellations per message, so that a rebalance can interrupt a hand-over
that is stuck waiting (a full stream buffer, paused flow). On this project's hot path that was
the largest single cost of the Faust shell (about a sixth of the worker's CPU time, measured with
py-spy; see docs/benchmarks.md, "Where the time goes").

Almost every hand-over completes without waiting: the conductor decodes the message and puts it
on a queue that has room. So this loop first runs the hand-over inline, up to its first wait;
only if it does have to wait does it hand the rest to Faust's own interruptible ``wait_first``,
exactly as before. Everything else in the loop is Faust 0.15's code, unchanged.

The consumer also rewinds partitions that have no committed offset when Faust seeks back to
the committed offsets (:meth:`InlineHandOverConsumer.seek_to_committed`), and holds a stream's
records back from a seek-back until Faust has resumed flow control, which empties the stream
queues (:meth:`InlineHandOverConsumer.perform_seek`): issue 17's unscored records.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Coroutine, Generator, Mapping
from typing import Any, cast

from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP, Message
from mode import Service, ServiceT

# Longest a seek-back holds a stream's records back waiting for Faust to resume flow control;
# the recovery resumes it within milliseconds of the seek-back when it does at all.
HOLD_LIMIT_SECONDS = 5.0
YIELD_EVERY = 100  # messages handed over between two turns given to the rest of the event loop


class _ResumeAfterFirstWait(Awaitable[Any]):
    """The rest of a coroutine that was run by hand up to its first ``yield``.

    Awaiting it first yields what the coroutine yielded (the future it waits for), so the task
    running it waits for that same future, then drives the coroutine on as ``await`` would.
    """

    def __init__(self, coroutine: Coroutine[Any, Any, Any], first_yield: Any) -> None:
        self.coroutine, self.first_yield = coroutine, first_yield

    def __await__(self) -> Generator[Any, Any, Any]:
        pending = self.first_yield
        while True:
            try:
                sent = yield pending
            except GeneratorExit:  # closed unfinished: close the coroutine too, as await would
                self.coroutine.close()
                raise
            except BaseException as exc:  # cancellation included: the coroutine must see it
                try:
                    pending = self.coroutine.throw(exc)
                except StopIteration as finished:
                    return finished.value
            else:
                try:
                    pending = self.coroutine.send(sent)
                except StopIteration as finished:
                    return finished.value


def run_until_first_wait(coroutine: Coroutine[Any, Any, Any]) -> _ResumeAfterFirstWait | None:
    """Run ``coroutine`` inline; None if it finished, else what is left of it to await."""
    try:
        first_yield = coroutine.send(None)
    except StopIteration:
        return None
    return _ResumeAfterFirstWait(coroutine, first_yield)


class InlineHandOverConsumer(aiokafka_driver.Consumer):
    """Faust's aiokafka consumer, handing fetched messages to the streams inline when it can.

    ``_drain_messages`` is Faust 0.15.3's, split in three for reading; the one change is the
    call to :meth:`_hand_over` where Faust awaits ``wait_first``.
    """

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

    async def _drain_messages(self, fetcher: ServiceT) -> None:  # pragma: no cover
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(CONSUMER_FETCHING)
                fetched = self.getmany(timeout=1.0)
                # Sleeping because sometimes getmany is called in a loop
                # never releasing to the event loop
                await self.sleep(0)
                if not self.should_stop:
                    await self._deliver_fetched(fetched)
                    self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                # we're already stopping so ignore
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                # we're already stopping so ignore
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    async def _deliver_fetched(self, fetched: AsyncIterator[tuple[TP, Message]]) -> None:
        if await self._read_held_records_again():
            return  # not fetched: the next round fetches from where that seek-back went
        since_yield = 0
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
            since_yield += 1
            if since_yield > YIELD_EVERY:
                await asyncio.sleep(0)
                since_yield = 0
            await self._deliver(tp, message)

    async def _deliver(self, tp: TP, message: Message) -> None:
        offset = message.offset
        r_offset = self._read_offset[tp]
        if r_offset is None or offset >= r_offset:
            gap = offset - (r_offset or 0)
            # We have a gap in income messages
            if gap > 1 and r_offset and self.app.topics.acks_enabled_for(message.topic):
                await self._add_gap(tp, r_offset + 1, offset)
            if self._commit_every is not None and self._n_acked >= self._commit_every:
                self._n_acked = 0
                await self.commit()
            await self._hand_over(self.callback(message), self.suspend_flow.is_set())
            self._read_offset[tp] = offset
        else:
            self.log.dev("DROPPED MESSAGE ROFF %r: k=%r v=%r", offset, message.key, message.value)

    async def _hand_over(self, delivery: Awaitable[Any], flow_suspended: bool) -> None:
        """Inline hand-over: Faust's interruptible wait only for a delivery that has to wait."""
        if flow_suspended or not isinstance(delivery, Coroutine):  # e.g. during a rebalance
            await self.wait_first(delivery, self.suspend_flow.wait())
            return
        rest = run_until_first_wait(delivery)
        if rest is not None:
            await self.wait_first(rest, self.suspend_flow.wait())


class InlineHandOverTransport(aiokafka_driver.Transport):
    """The ``kafka://`` transport with :class:`InlineHandOverConsumer`."""

    Consumer = InlineHandOverConsumer
