"""Watches every partition of ``transactions`` while the soak runs: the group's committed offset
against the high watermark, once a second, from outside the workers.

A partition *stalls* while it has records to read (committed < high watermark) and its committed
offset does not move. The longest stall is what the soak reports and bounds: a worker's own
watchdog exits after ``stall_seconds`` of that, and its restart takes a while to commit again, so
no stall may last longer than ``stall_seconds + restart allowance`` (see soak.py). A sample the
broker does not answer (it is down on purpose) restarts the clocks, as the worker's watchdog does:
an outage is reported as its own row, not as a stall.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaException, TopicPartition

from tests.integration.fault_helpers import QUIET_CLIENT_LOG_LEVEL


@dataclass
class Stall:
    partition: int
    seconds: float
    committed: int
    high: int


@dataclass
class PartitionMonitor:
    bootstrap: str
    group: str
    topic: str
    partitions: int = 3
    interval: float = 1.0
    longest: Stall = field(default_factory=lambda: Stall(-1, 0.0, -1, -1))
    unanswered_samples: int = 0
    samples: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="partition-monitor", daemon=True)
        self._since: dict[int, tuple[int, float]] = {}  # partition -> (committed, since when)

    def start(self) -> PartitionMonitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        # A group id only to read the group's commits: this consumer never subscribes or joins.
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": self.group,
                "enable.auto.commit": False,
                "log_level": QUIET_CLIENT_LOG_LEVEL,
            }
        )
        try:
            while not self._stop.wait(self.interval):
                self._sample(consumer)
        finally:
            consumer.close()

    def _sample(self, consumer: Consumer) -> None:
        try:
            tps = [TopicPartition(self.topic, p) for p in range(self.partitions)]
            committed = consumer.committed(tps, timeout=5)
            highs = [consumer.get_watermark_offsets(tp, timeout=5)[1] for tp in tps]
        except KafkaException:
            self.unanswered_samples += 1
            self._since.clear()  # an outage is not a stall
            return
        now = time.monotonic()
        self.samples += 1
        for tp, high in zip(committed, highs, strict=True):
            self._observe(tp.partition, max(tp.offset, 0), high, now)

    def _observe(self, partition: int, committed: int, high: int, now: float) -> None:
        previous = self._since.get(partition)
        if committed >= high or previous is None or previous[0] != committed:
            self._since[partition] = (committed, now)
            return
        seconds = now - previous[1]
        if seconds > self.longest.seconds:
            self.longest = Stall(partition, round(seconds, 1), committed, high)
