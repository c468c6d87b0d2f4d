"""Reading a table's changelog partitions in bulk, up to fixed end offsets, into an image.

Used by :mod:`stream_app.worker.bulk_recovery`. One librdkafka consumer, outside any consumer
group and never committing, reads the partitions from their beginning; each message is folded
into a :class:`ChangelogImage` with the rules of Faust's memory store (``apply_changelog_batch``):
the last value of a key wins, a ``None`` value deletes the key, each key remembers its
partition. Python does a few dictionary operations per message; the rest is librdkafka's.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

log = logging.getLogger(__name__)

BATCH_MESSAGES = 10_000  # messages per consume() call: one Python round trip per batch
POLL_SECONDS = 0.5
WATERMARK_TIMEOUT_SECONDS = 3.0  # the store waits 4 s for them, within the rebalance
# A read gives up (to be tried again) after this long without a message.
STALL_SECONDS = 30.0
# librdkafka's fetch sizes as they are: 8 MiB per partition instead of 1 MiB made no difference
# (a million customers in 9 to 10 s either way, alternating runs; the read waits on the broker,
# ~2.5 s of CPU; docs/benchmarks.md, "Recovery").
READER_CONFIG: dict[str, Any] = {"enable.partition.eof": True}

# The keys stream_app.state.encode_key writes: a JSON string of printable ASCII without
# escapes, which decodes to its inner characters. Anything else goes through Faust's decoder.
_PLAIN_JSON_STRING = re.compile(rb'"[\x20\x21\x23-\x5b\x5d-\x7e]*"')


def plain_key_decoder(
    faust_decode: Callable[[bytes | None], Any],
) -> Callable[[bytes | None], Any]:
    """``faust_decode`` (JSON string keys), with a shortcut for the keys this project writes."""
    plain = _PLAIN_JSON_STRING.fullmatch

    def decode(raw: bytes | None) -> Any:
        if raw is not None and plain(raw):
            return raw[1:-1].decode("ascii")
        return faust_decode(raw)

    return decode


class ChangelogMessage(Protocol):
    """What the bulk read uses of a confluent-kafka message."""

    def error(self) -> KafkaError | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...


@dataclass
class ChangelogImage:
    """What a changelog's partitions hold below their end offsets, built away from the store.

    ``ends`` are the partitions' end offsets (high watermarks) when the read started: the image
    holds every message below them and none at or above them (those are Faust's to apply).
    """

    decode_key: Callable[[bytes | None], Any]
    decode_value: Callable[[bytes | None], Any]
    ends: dict[int, int] = field(default_factory=dict)
    data: dict[Any, Any] = field(default_factory=dict)
    key_partition: dict[Any, int] = field(default_factory=dict)
    deleted: set[Any] = field(default_factory=set)  # keys a tombstone removed (and none re-set)
    messages: int = 0
    undecodable: int = 0
    seconds: float = 0.0  # how long the read took, from its start to the last partition's end

    def apply(self, messages: Iterable[ChangelogMessage]) -> set[int]:
        """Fold messages in (partition order kept); returns the partitions read to their end."""
        finished: set[int] = set()
        data, key_partition, deleted, ends = self.data, self.key_partition, self.deleted, self.ends
        decode_key, decode_value = self.decode_key, self.decode_value
        for message in messages:
            error = message.error()
            partition = message.partition()
            if partition is None:  # a client-level error (a broker unreachable, say)
                _raise_if_fatal(error)
                continue
            offset = message.offset() or 0
            end = ends[partition]
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    _raise_if_fatal(error)
                elif offset >= end:  # the partition's end, at or past where we stop
                    finished.add(partition)
                continue
            if offset >= end:  # written after the read started: Faust's recovery applies it
                finished.add(partition)
                continue
            if offset == end - 1:
                finished.add(partition)
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
                if deleted:
                    deleted.discard(key)
            self.messages += 1
        return finished


def end_offsets(consumer: Consumer, topic: str, partitions: Iterable[int]) -> dict[int, int]:
    """Each partition's high watermark: the offset the next message written will get."""
    return {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), WATERMARK_TIMEOUT_SECONDS)[1]
        for p in partitions
    }


def read_changelog(
    config: Mapping[str, Any],
    topic: str,
    partitions: Iterable[int],
    image: ChangelogImage,
    stop: threading.Event,
    on_ends: Callable[[dict[int, int]], None] = lambda ends: None,
) -> ChangelogImage:
    """Read the partitions from their beginning up to ``image.ends`` into ``image``.

    Without ends (a first attempt) the partitions' current end offsets are fetched first and
    handed to ``on_ends`` before the read starts; a retry keeps the ends it was given.
    """
    started = time.monotonic()
    consumer = Consumer({**config, **READER_CONFIG})
    try:
        if not image.ends:
            image.ends = end_offsets(consumer, topic, partitions)
        on_ends(dict(image.ends))
        remaining = {p for p, end in image.ends.items() if end > 0}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(remaining)])
        last_progress = time.monotonic()
        while remaining:
            if stop.is_set():
                raise RuntimeError("worker stopping")
            batch = consumer.consume(BATCH_MESSAGES, POLL_SECONDS)
            if batch:
                last_progress = time.monotonic()
                remaining -= image.apply(batch)
            elif time.monotonic() - last_progress > STALL_SECONDS:
                raise RuntimeError(f"no changelog message for {STALL_SECONDS:g} s")
    finally:
        consumer.close()
    image.seconds = time.monotonic() - started
    return image


def _raise_if_fatal(error: KafkaError | None) -> None:
    """Transient errors are librdkafka's to retry (the stall limit bounds them); fatal ones stop."""
    if error is not None and error.fatal():
        raise RuntimeError(f"changelog read failed: {error}")
    log.warning("changelog read: %s", error)
