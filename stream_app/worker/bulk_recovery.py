"""The customer table's store: Faust's in-memory store, filled from the changelog in bulk.

Faust recovers a table by handing every changelog message through its whole consumer path
(fetch loop, conductor, channel decode, an event object, a queue, then its recovery loop with
two debug log lines and a few event-loop turns each). That costs about 160 microseconds per
message on this machine, so a worker starting with a million customers was not ready for
165 s; the table's values (raw bytes) were never the cost (docs/benchmarks.md, "Recovery").

This store reads its newly assigned changelog partitions itself before Faust's recovery
starts: one librdkafka consumer (outside any group, never committing), every message of those
partitions up to their end, applied to the store with the same rules as Faust's
``apply_changelog_batch`` (the last value of a key wins, a ``None`` value deletes it, each key
remembers its partition). It then reports how far it read through ``persisted_offset``, the
store interface Faust asks before recovering (RocksDB stores answer it from disk); Faust's
recovery starts from there and applies whatever was written after, through its own path.
After each recovery it answers ``None`` again, exactly like Faust's memory store, so later
rebalances keep Faust's own bookkeeping of partitions it still holds.

If the bulk read fails (broker unreachable, no progress), nothing of it is kept and Faust
recovers those partitions itself, as before: slower, never wrong. How Faust uses
``persisted_offset`` and what its memory store does with a batch is pinned by a guard test
(tests/unit/test_bulk_recovery.py).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from faust import stores
from faust.stores import memory
from faust.types import TP

from stream_app.kafka import consumer_config
from stream_app.settings import KafkaSettings

log = logging.getLogger(__name__)

STORE_SCHEME = "fraudstream-bulk"
# A host part, so the URL is truthy (Faust falls back to its default store for an empty one).
STORE_URL = f"{STORE_SCHEME}://changelog"
KAFKA_OPTION = "kafka"  # the table's ``options`` key holding the KafkaSettings to read with

BATCH_MESSAGES = 10_000  # messages per consume() call: one Python round trip per batch
POLL_SECONDS = 0.5
# The bulk read gives up (and leaves the partitions to Faust) after this long without a message.
STALL_SECONDS = 30.0
# Bigger fetches than librdkafka's defaults (1 MiB per partition per request): measured in
# docs/benchmarks.md, "Recovery".
READER_CONFIG: dict[str, Any] = {
    "enable.partition.eof": True,
    "max.partition.fetch.bytes": 8 * 2**20,
    "fetch.max.bytes": 64 * 2**20,
    "queued.max.messages.kbytes": 64 * 2**10,
}

# The keys stream_app.state.encode_key writes: a JSON string of printable ASCII without
# escapes, which decodes to its inner characters. Anything else goes through Faust's decoder.
_PLAIN_JSON_STRING = re.compile(rb'"[\x20\x21\x23-\x5b\x5d-\x7e]*"')


class ChangelogMessage(Protocol):
    """What the bulk read uses of a confluent-kafka message."""

    def error(self) -> KafkaError | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...


@dataclass
class ChangelogImage:
    """What a changelog's partitions hold: the table's entries, built away from the store."""

    decode_key: Callable[[bytes | None], Any]
    decode_value: Callable[[bytes | None], Any]
    data: dict[Any, Any] = field(default_factory=dict)
    key_partition: dict[Any, int] = field(default_factory=dict)
    deleted: set[Any] = field(default_factory=set)  # keys a tombstone removed (and none re-set)
    read_through: dict[int, int] = field(default_factory=dict)  # partition -> last offset read
    messages: int = 0
    undecodable: int = 0

    def apply(self, messages: Iterable[ChangelogMessage]) -> set[int]:
        """Fold messages in (partition order kept); returns the partitions found at their end."""
        at_end: set[int] = set()
        data, key_partition, deleted = self.data, self.key_partition, self.deleted
        decode_key, decode_value = self.decode_key, self.decode_value
        for message in messages:
            error = message.error()
            partition = message.partition()
            if partition is None:  # a client-level error (a broker unreachable, say)
                _raise_if_fatal(error)
                continue
            offset = message.offset()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    _raise_if_fatal(error)
                    continue
                at_end.add(partition)
                if offset:  # the end offset: everything below it has been read
                    self.read_through[partition] = offset - 1
                continue
            try:
                key = decode_key(message.key())
                value = decode_value(message.value())
            except Exception as exc:  # as Faust's recovery does: the message is skipped
                log.error("changelog message undecodable, skipped: %r", exc)
                self.undecodable += 1
                continue
            if value is None:
                data.pop(key, None)
                key_partition.pop(key, None)
                deleted.add(key)
            else:
                data[key] = value
                key_partition[key] = partition
                deleted.discard(key)
            if offset is not None:
                self.read_through[partition] = offset
            self.messages += 1
        return at_end

    def into(self, data: MutableMapping[Any, Any], key_partition: MutableMapping[Any, int]) -> None:
        """Apply the image to a store that may already hold entries (of other partitions)."""
        for key in self.deleted:
            data.pop(key, None)
            key_partition.pop(key, None)
        data.update(self.data)
        key_partition.update(self.key_partition)


def read_changelog(
    config: Mapping[str, Any],
    topic: str,
    partitions: Iterable[int],
    image: ChangelogImage,
    stop: threading.Event,
    stall_seconds: float = STALL_SECONDS,
) -> ChangelogImage:
    """Read the partitions from their beginning to their current end into ``image``."""
    remaining = set(partitions)
    consumer = Consumer({**config, **READER_CONFIG})
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(remaining)])
        last_progress = time.monotonic()
        while remaining:
            if stop.is_set():
                raise RuntimeError("worker stopping")
            batch = consumer.consume(BATCH_MESSAGES, POLL_SECONDS)
            if batch:
                last_progress = time.monotonic()
                remaining -= image.apply(batch)
            elif time.monotonic() - last_progress > stall_seconds:
                raise RuntimeError(f"no changelog message for {stall_seconds:g} s")
    finally:
        consumer.close()
    return image


def _raise_if_fatal(error: KafkaError | None) -> None:
    """Transient errors are librdkafka's to retry (the stall limit bounds them); fatal ones stop."""
    if error is not None and error.fatal():
        raise RuntimeError(f"changelog read failed: {error}")
    log.warning("changelog read: %s", error)


class BulkRecoveryStore(memory.Store[Any, Any]):
    """Faust's memory store, whose newly assigned changelog partitions are read in bulk."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self._read_through: dict[TP, int] = {}
        self._stopping = threading.Event()

    def persisted_offset(self, tp: TP) -> int | None:
        """The last changelog offset already in the store (None: Faust reads from the start)."""
        return self._read_through.get(tp)

    async def on_rebalance(
        self,
        assigned: set[TP],
        revoked: set[TP],
        newly_assigned: set[TP],
        generation_id: int = 0,
    ) -> None:
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)
        for tp in revoked:
            self._read_through.pop(tp, None)
        topic = self.table.changelog_topic.get_topic_name()
        wanted = {tp.partition for tp in newly_assigned if tp.topic == topic}
        wanted -= {tp.partition for tp in self._read_through}
        if wanted:
            await self._read_in_bulk(topic, wanted)

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        # From now on Faust's own offsets for these partitions are ahead of ours.
        for tp in {*active_tps, *standby_tps}:
            self._read_through.pop(tp, None)
        await super().on_recovery_completed(active_tps, standby_tps)

    async def on_stop(self) -> None:
        self._stopping.set()
        await super().on_stop()

    async def _read_in_bulk(self, topic: str, partitions: set[int]) -> None:
        kafka: KafkaSettings = (self.options or {})[KAFKA_OPTION]
        config = consumer_config(kafka, f"{self.app.conf.id}-bulk-recovery")
        image = ChangelogImage(self._key_decoder(), self._value_decoder())
        started = time.monotonic()
        read = functools.partial(read_changelog, config, topic, partitions, image, self._stopping)
        try:
            # In a thread: the event loop keeps serving heartbeats and the web server meanwhile.
            await asyncio.get_running_loop().run_in_executor(None, read)
        except Exception as exc:  # Faust recovers these partitions itself, as it always did
            log.warning("bulk changelog read failed, Faust recovers instead: %s", exc)
            return
        image.into(self.data, self._key_partition)
        for partition, offset in image.read_through.items():
            self._read_through[TP(topic, partition)] = offset
        log.info(
            "changelog read in bulk topic=%s partitions=%s messages=%d keys=%d seconds=%.1f",
            topic,
            sorted(partitions),
            image.messages,
            len(image.data),
            time.monotonic() - started,
        )

    def _key_decoder(self) -> Callable[[bytes | None], Any]:
        """Faust's own key decoding, with a shortcut for the plain JSON strings we write."""
        faust_decode: Callable[[bytes | None], Any] = self._decode_key
        if self.key_type is not str or self.key_serializer != "json":
            return faust_decode
        plain = _PLAIN_JSON_STRING.fullmatch

        def decode(raw: bytes | None) -> Any:
            if raw is not None and plain(raw):
                return raw[1:-1].decode("ascii")
            return faust_decode(raw)

        return decode

    def _value_decoder(self) -> Callable[[bytes | None], Any]:
        """Raw bytes values are the message's bytes as they are (Faust's raw codec)."""
        if self.value_type is bytes and self.value_serializer == "raw":
            return _unchanged
        decode: Callable[[bytes | None], Any] = self._decode_value
        return decode


def _unchanged(value: bytes | None) -> bytes | None:
    return value


# ``app.Table(store=STORE_URL)`` finds the class through Faust's store registry by URL scheme.
stores.STORES.aliases[STORE_SCHEME] = "stream_app.worker.bulk_recovery:BulkRecoveryStore"
