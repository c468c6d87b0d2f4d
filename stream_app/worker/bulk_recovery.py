"""The customer table's store: Faust's in-memory store, filled from the changelog in bulk.

Faust recovers a table by handing every changelog message through its whole consumer path
(fetch loop, conductor, channel decode, an event object, a queue, then its recovery loop with
two debug log lines and a few event-loop turns each). That cost about 160 microseconds per
message on this machine, so a worker starting with a million customers was not ready for
165 s; the table's values (raw bytes) were never the cost (docs/benchmarks.md, "Recovery").

This store reads its newly assigned changelog partitions itself
(:mod:`stream_app.worker.changelog_read`), in a thread, and tells Faust how far through
``persisted_offset``, the store interface Faust asks before it recovers (RocksDB stores answer
it from disk). In order:

1. On a rebalance (inside Kafka's rebalance callback, which must stay short: the consumer
   sends no heartbeats until it returns) the store only asks the broker for the partitions'
   end offsets and starts the read in the background. It answers ``persisted_offset`` with
   the last offset below those ends, so Faust's own recovery only reads what is written after.
2. Faust applies those later messages, if any, through ``apply_changelog_batch``; the store
   notes their keys.
3. Faust awaits the store's ``on_recovery_completed`` before it resumes the streams: the store
   waits there for its read (retrying it until it succeeds, as Faust's recovery waits for a
   broker) and adds the image, except for keys Faust already applied newer messages for.

After each recovery it answers ``None`` again for its active partitions, exactly like Faust's
memory store, so later rebalances keep Faust's own bookkeeping of the partitions the worker still
holds. If the end offsets cannot be fetched, nothing is promised and Faust recovers those
partitions itself, as before.

Standby partitions (``table_standby_replicas``): Faust's memory store drops the keys of every
partition that is not active when a recovery completes, standbys included, and answers ``None``
when a standby partition becomes active, so Faust read a taken-over partition again from its
first offset (its standby copy was of no use, and the scale-in takeover once waited in that
read forever, docs/faults.md "Standby replicas"). This store keeps its standby partitions' keys
and remembers the last changelog offset it applied for each, and answers that offset when such
a partition becomes active: Faust's recovery then only reads what the standby had not yet
applied, as it does for a persistent (RocksDB) store. A copy that missed an offset is not
offered (:mod:`stream_app.worker.standby_copy`).

How Faust uses ``persisted_offset`` and what its memory store does with a batch is pinned by a
guard test (tests/unit/test_bulk_recovery_guard.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from faust import stores
from faust.stores import memory
from faust.types import TP, EventT

from stream_app.kafka import consumer_config
from stream_app.settings import KafkaSettings
from stream_app.worker import changelog_read
from stream_app.worker.changelog_read import ChangelogImage, plain_key_decoder
from stream_app.worker.standby_copy import StandbyOffsets

log = logging.getLogger(__name__)

STORE_SCHEME = "fraudstream-bulk"
# A host part, so the URL is truthy (Faust falls back to its default store for an empty one).
STORE_URL = f"{STORE_SCHEME}://changelog"
KAFKA_OPTION = "kafka"  # the table's ``options`` key holding the KafkaSettings to read with
# Within Kafka's rebalance callback: well below the smallest session timeout we allow (6 s).
END_OFFSETS_TIMEOUT_SECONDS = 4.0
RETRY_SECONDS = 1.0


@dataclass
class PendingRead:
    """A bulk read under way: its partitions, what it promised Faust, and what Faust applied."""

    topic: str
    image: ChangelogImage
    done: asyncio.Future[ChangelogImage]
    stop: threading.Event
    touched: set[Any] = field(default_factory=set)  # keys Faust applied newer messages for


class BulkRecoveryStore(memory.Store[Any, Any]):
    """Faust's memory store, whose newly assigned changelog partitions are read in bulk."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self._promised: dict[TP, int] = {}  # the last offset each pending read covers
        self._standbys = StandbyOffsets()  # how far the copy of each standby partition goes
        # The keys each partition's reads brought, as lists: Faust's memory store keeps a
        # key -> partition dict for the same purpose, about 40 MiB per million keys against 8.
        self._read_keys: dict[int, list[Any]] = {}
        self._pending: list[PendingRead] = []
        self._finishing = asyncio.Lock()
        self._stopping = threading.Event()

    def persisted_offset(self, tp: TP) -> int | None:
        """The last changelog offset the store holds, or will before recovery completes."""
        promised = self._promised.get(tp)
        return promised if promised is not None else self._standbys.offset(tp)

    async def on_rebalance(
        self,
        assigned: set[TP],
        revoked: set[TP],
        newly_assigned: set[TP],
        generation_id: int = 0,
    ) -> None:
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)
        for tp in revoked:
            self._promised.pop(tp, None)
        self._standbys.forget(revoked)
        topic = self.table.changelog_topic.get_topic_name()
        self._log_standbys_taken_over()
        wanted = {tp.partition for tp in newly_assigned if tp.topic == topic}
        wanted -= {tp.partition for tp in self._promised}
        if wanted:
            await self._start_read(topic, wanted)
        # Before Faust's recovery asks persisted_offset (TableManager.on_rebalance's order).
        standbys = {tp for tp in self.app.assignor.assigned_standbys() if tp.topic == topic}
        self._standbys.start(standbys, self._promised)

    def apply_changelog_batch(
        self,
        batch: Iterable[EventT[Any]],
        to_key: Callable[[Any], Any],
        to_value: Callable[[Any], Any],
    ) -> None:
        """Faust's recovery (or standby reading) applying changelog messages: keys after a
        pending read's ends are noted, offsets of standby partitions remembered, then applied."""
        batch = list(batch)
        for read in self._pending:  # usually none: the walk is only for reads still pending
            for event in batch:
                message = event.message
                if message.topic == read.topic and message.partition in read.image.ends:
                    read.touched.add(to_key(event.key))
        super().apply_changelog_batch(batch, to_key, to_value)
        if self._standbys.tracking():
            for event in batch:
                message = event.message
                self._standbys.applied(TP(message.topic, message.partition), message.offset)

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        # One at a time: Faust runs this as a task of its own, which a new rebalance does not
        # cancel, so the next recovery's call can come while this one still waits for a read.
        async with self._finishing:
            while self._pending:
                await self._finish(self._pending[0])
                self._pending.pop(0)
        self._standbys.forget(active_tps)  # written by the table itself from now on
        # From now on Faust's own offsets for these partitions are ahead of ours.
        for tp in {*active_tps, *standby_tps}:
            self._promised.pop(tp, None)
        held = {*active_tps, *standby_tps}
        self._drop_keys_of_partitions_not_held({partition for _, partition in held})
        # Faust's memory store keeps the keys of the partitions it is given as active: the
        # standby partitions' keys are kept too, so a takeover needs no full read.
        await super().on_recovery_completed(held, standby_tps)

    def _log_standbys_taken_over(self) -> None:
        """The standby partitions this rebalance makes active, and from where Faust reads."""
        actives = set(self.app.assignor.assigned_actives())
        for tp, offset in sorted(self._standbys.copies().items()):
            if tp in actives:
                log.info("%s taken over from the standby copy at offset %d", tp, offset)
        for tp in sorted(self._standbys.holed() & actives):
            log.warning("%s taken over: its standby copy had a hole, Faust reads it all", tp)

    async def on_stop(self) -> None:
        self._stopping.set()
        for read in self._pending:
            read.stop.set()
        await super().on_stop()

    async def _start_read(self, topic: str, partitions: set[int]) -> None:
        loop = asyncio.get_running_loop()
        ends: asyncio.Future[dict[int, int]] = loop.create_future()

        def on_ends(found: dict[int, int]) -> None:  # called in the reading thread
            loop.call_soon_threadsafe(_resolve, ends, found)

        image = ChangelogImage(self._key_decoder(), self._value_decoder())
        stop = threading.Event()
        done = self._run_read(topic, sorted(partitions), image, stop, on_ends)
        either: set[asyncio.Future[Any]] = {ends, done}
        await asyncio.wait(
            either, timeout=END_OFFSETS_TIMEOUT_SECONDS, return_when=asyncio.FIRST_COMPLETED
        )
        if not ends.done():  # no broker answer in time: Faust recovers these itself
            stop.set()
            done.add_done_callback(lambda finished: finished.exception())  # retrieved: no noise
            log.warning("changelog end offsets not read in time, Faust recovers instead")
            return
        self._pending.append(PendingRead(topic, image, done, stop))
        for partition, end in ends.result().items():
            if end > 0:
                self._promised[TP(topic, partition)] = end - 1

    def _run_read(
        self,
        topic: str,
        partitions: list[int],
        image: ChangelogImage,
        stop: threading.Event,
        on_ends: Callable[[dict[int, int]], None] = lambda ends: None,
    ) -> asyncio.Future[ChangelogImage]:
        """The read, in a thread: the event loop keeps serving heartbeats and the web meanwhile."""
        config = self._reader_config()
        read = functools.partial(
            changelog_read.read_changelog, config, topic, partitions, image, stop, on_ends
        )
        return asyncio.get_running_loop().run_in_executor(None, read)

    async def _finish(self, read: PendingRead) -> None:
        """Wait for the read (again and again until it succeeds), then add it to the store."""
        image = None
        while image is None:
            try:
                image = await read.done
            except Exception as exc:
                if self._stopping.is_set():
                    raise
                log.error("bulk changelog read failed, reading again: %s", exc)
                await asyncio.sleep(RETRY_SECONDS)
                old = read.image  # the same ends: Faust was promised those
                read.image = ChangelogImage(old.decode_key, old.decode_value, old.ends)
                read.done = self._run_read(read.topic, sorted(old.ends), read.image, read.stop)
        keys, rss_before = len(image.data), rss_mib()
        self._add(image, read.touched)
        release_free_memory()
        log.info(
            "changelog read in bulk topic=%s partitions=%s messages=%d keys=%d seconds=%.1f "
            "rss_mib=%.0f->%.0f",
            read.topic,
            sorted(image.ends),
            image.messages,
            keys,
            image.seconds,
            rss_before,
            rss_mib(),
        )

    def _add(self, image: ChangelogImage, touched: set[Any]) -> None:
        """Add the image under what the store holds; keys Faust applied since stay Faust's."""
        by_partition: dict[int, list[Any]] = {}
        if not self.data and not touched:
            # The usual case, a worker starting: the image's table becomes the store's, rather
            # than being copied (a second million-entry table would stay in the RSS).
            self.data = image.data
            for key, partition in image.key_partition.items():
                by_partition.setdefault(partition, []).append(key)
        else:
            data, faust_partitions = self.data, self._key_partition
            for key in image.deleted - touched:
                data.pop(key, None)
                faust_partitions.pop(key, None)
            for key, value in image.data.items():
                if key not in touched:
                    data[key] = value
                    faust_partitions.pop(key, None)  # its partition is the read's from now on
                    by_partition.setdefault(image.key_partition[key], []).append(key)
        for partition, keys in by_partition.items():
            self._read_keys.setdefault(partition, []).extend(keys)
        image.data, image.key_partition = {}, {}

    def _drop_keys_of_partitions_not_held(self, active: set[int]) -> None:
        """What Faust's memory store does with the keys it recovered, for the keys read here:
        those of partitions no longer active leave the store (unless Faust applied them since,
        then they are in its own key -> partition table and its own clean-up decides)."""
        for partition in [p for p in self._read_keys if p not in active]:
            for key in self._read_keys.pop(partition):
                if key not in self._key_partition:
                    self.data.pop(key, None)

    def _reader_config(self) -> dict[str, Any]:
        kafka: KafkaSettings = (self.options or {})[KAFKA_OPTION]
        return consumer_config(kafka, f"{self.app.conf.id}-bulk-recovery")

    def _key_decoder(self) -> Callable[[bytes | None], Any]:
        """Faust's own key decoding, with a shortcut for the plain JSON strings we write."""
        faust_decode: Callable[[bytes | None], Any] = self._decode_key
        if self.key_type is not str or self.key_serializer != "json":
            return faust_decode
        return plain_key_decoder(faust_decode)

    def _value_decoder(self) -> Callable[[bytes | None], Any]:
        """Raw bytes values are the message's bytes as they are (Faust's raw codec)."""
        if self.value_type is bytes and self.value_serializer == "raw":
            return _unchanged
        decode: Callable[[bytes | None], Any] = self._decode_value
        return decode


def release_free_memory() -> None:
    """Hand memory freed after the read (librdkafka's fetch buffers, the tables' growth) back
    to the OS: glibc keeps freed memory of other threads' arenas otherwise, and the worker's
    RSS is a goal (docs/benchmarks.md, "Recovery"). Nothing happens on other C libraries."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def rss_mib() -> float:
    """This process's resident memory (Linux; NaN elsewhere), for the log."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return float("nan")


def _resolve(future: asyncio.Future[dict[int, int]], ends: dict[int, int]) -> None:
    if not future.done():
        future.set_result(ends)


def _unchanged(value: bytes | None) -> bytes | None:
    return value


# ``app.Table(store=STORE_URL)`` finds the class through Faust's store registry by URL scheme.
stores.STORES.aliases[STORE_SCHEME] = "stream_app.worker.bulk_recovery:BulkRecoveryStore"
