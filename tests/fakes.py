"""Stand-ins for confluent-kafka clients in unit tests: consumed messages and a producer.

They implement only what the project's loops call, with confluent's signatures, and record what
was done to them so a test can assert the exact commits and sends. Integration tests use the real
broker instead (no fakes there).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class FakeMessage:
    """A consumed message as confluent-kafka hands it over (never an error message)."""

    topic_name: str
    partition_id: int
    offset_value: int
    payload: bytes

    def topic(self) -> str:
        return self.topic_name

    def partition(self) -> int:
        return self.partition_id

    def offset(self) -> int:
        return self.offset_value

    def value(self) -> bytes:
        return self.payload

    def error(self) -> None:
        return None


@dataclass
class FakeProducer:
    """Keeps what was produced; ``flush`` acknowledges it all, or nothing when told not to."""

    acknowledge: bool = True
    produced: list[tuple[str, bytes, bytes]] = field(default_factory=list)
    pending: list[Any] = field(default_factory=list)

    def produce(self, topic: str, value: bytes, key: bytes, on_delivery: Any) -> None:
        self.produced.append((topic, value, key))
        self.pending.append(on_delivery)

    def flush(self, timeout: float) -> int:
        if not self.acknowledge:
            return len(self.pending)
        for callback in self.pending:
            callback(None, None)
        self.pending = []
        return 0
