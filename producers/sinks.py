"""Where generated events go: Kafka topics, the Parquet lake, or one labelled file for backtests.

The lake holds what production would hold: transactions without ground truth under
``lake/transactions/date=YYYY-MM-DD/`` and labels, partitioned by the day they were published
(``labeled_at``), under ``lake/labels/date=YYYY-MM-DD/``. The ``is_fraud``/``scenario`` columns
of the simulator's frame go only to the labelled file, which backtests score against directly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol

import pandas as pd

from producers.simulator import DayBatch
from stream_app.kafka import DeliveryError, producer_config
from stream_app.schemas import Label, Transaction
from stream_app.settings import KafkaSettings
from stream_app.store import (
    LAKE_LABELS,
    LAKE_TRANSACTIONS,
    TRANSACTION_COLUMNS,
    ObjectStore,
    lake_key,
    write_parquet,
)

logger = logging.getLogger(__name__)


class Producer(Protocol):
    """The part of confluent_kafka.Producer the sink uses (tests pass a fake)."""

    def produce(
        self, topic: str, *, value: bytes, key: bytes, on_delivery: Callable[[Any, Any], None]
    ) -> None: ...

    def poll(self, timeout: float) -> int: ...

    def flush(self, timeout: float) -> int: ...


class KafkaSink:
    """Transactions keyed by customer_id, labels keyed by transaction_id; values are wire JSON.

    A failed delivery is fatal: the next ``send`` raises, and so does ``flush`` (called on exit
    of the ``with`` block), so a run never ends quietly with messages missing.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        producer: Producer | None = None,
        delivery_timeout_s: float = 30.0,
    ) -> None:
        self.topics = kafka.topics
        self.delivery_timeout_s = delivery_timeout_s
        self._producer = producer or _confluent_producer(
            {
                **producer_config(
                    kafka, "fraudstream-generate", delivery_timeout_s=delivery_timeout_s
                ),
                "error_cb": self._on_client_error,
            }
        )
        self.transactions_sent = 0
        self.labels_sent = 0
        self.fraud_labels_sent = 0
        self.delivered = 0
        self.failed = 0
        self.first_error: str | None = None
        self.last_client_error: str | None = None

    def send(self, event: Transaction | Label) -> None:
        if self.failed:
            raise DeliveryError(self._failure_message())
        if isinstance(event, Transaction):
            self._produce(self.topics.transactions, event.customer_id, event.to_bytes())
            self.transactions_sent += 1
        else:
            self._produce(self.topics.labels, event.transaction_id, event.to_bytes())
            self.labels_sent += 1
            self.fraud_labels_sent += event.is_fraud

    def _produce(self, topic: str, key: str, value: bytes) -> None:
        while True:
            try:
                self._producer.produce(
                    topic, value=value, key=key.encode("utf-8"), on_delivery=self._on_delivery
                )
                break
            except BufferError:
                # The local queue is full: serve delivery reports until there is room.
                self._producer.poll(0.1)
        self._producer.poll(0)

    def _on_delivery(self, error: Any, message: Any) -> None:
        if error is None:
            self.delivered += 1
            return
        self.failed += 1
        if self.first_error is None:
            self.first_error = str(error)
            logger.error("delivery failed topic=%s error=%s", message.topic(), error)

    def _on_client_error(self, error: Any) -> None:
        """Client-level trouble (broker down, authentication); librdkafka keeps retrying."""
        level = logging.WARNING if self.last_client_error is None else logging.DEBUG
        logger.log(level, "kafka client error (retrying) error=%s", error)
        self.last_client_error = str(error)

    def _failure_message(self) -> str:
        message = f"{self.failed} message(s) not delivered: {self.first_error}"
        if self.last_client_error:
            message += f" (last client error: {self.last_client_error})"
        return message

    def flush(self) -> None:
        """Wait for every delivery report; raise DeliveryError unless all were delivered."""
        # A little longer than the message timeout, so that expired messages are reported failed.
        remaining = self._producer.flush(self.delivery_timeout_s + 5.0)
        if self.failed:
            raise DeliveryError(self._failure_message())
        if remaining:
            raise DeliveryError(f"{remaining} message(s) still unacknowledged")

    def __enter__(self) -> KafkaSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.flush()
            return
        # Already failing: deliver what we can, but let the original exception propagate.
        self._producer.flush(min(self.delivery_timeout_s, 5.0))


def _confluent_producer(config: dict[str, Any]) -> Producer:
    from confluent_kafka import Producer as ConfluentProducer  # import only when really used

    producer: Producer = ConfluentProducer(config)
    return producer


class LakeSink:
    """Writes simulated days into the lake, one Parquet object per table and date.

    ``part`` names the objects; rerunning with the same part name replaces them, so use one
    part name per run (the CLI uses the seed) to keep runs side by side.
    """

    def __init__(self, store: ObjectStore, part: str = "part-0") -> None:
        self.store = store
        self.part = part
        self.transactions_written = 0
        self.labels_written = 0

    def write_day(self, batch: DayBatch) -> None:
        date = batch.day_start.date().isoformat()
        transactions = batch.transactions.loc[:, list(TRANSACTION_COLUMNS)]
        write_parquet(self.store, lake_key(LAKE_TRANSACTIONS, date, self.part), transactions)
        self.transactions_written += len(transactions)
        if len(batch.released_labels):
            key = lake_key(LAKE_LABELS, date, self.part)
            write_parquet(self.store, key, batch.released_labels)
            self.labels_written += len(batch.released_labels)


def write_labelled_file(frame: pd.DataFrame, path: Path, kind: Literal["csv", "parquet"]) -> None:
    """One file with the transaction fields plus is_fraud and scenario, for backtests.

    CSV timestamps are ISO 8601 UTC with a ``Z`` suffix, as on the wire.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "csv":
        frame.to_csv(path, index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ")
    else:
        frame.to_parquet(path, index=False)
