"""The drift monitor's loop: fraud-scores -> windows -> checks -> reports, metrics, requests.

Its own process and consumer group, so a check (seconds, on a 50,000-row window) never delays
scoring. At-least-once: a window's offsets are committed only after its check, its reports and
any retrain request (published and acknowledged, drift flag written) are done; a crash before
that reads the window again, and a request raised again carries the same id.

Throughput: parsing and windowing run at about 70,000 verdicts/s on one core; a check costs
about 1.5 s whatever the window size (Evidently's per-column report), so the monitor keeps up
with about ``window_size / 1.5 s``: 3,000 verdicts/s at 5,000-row windows, 20,000/s at 50,000.
Faster streams need bigger windows; until then the monitor lags (Kafka holds the backlog).

Error policy: a message that is not a verdict with features is counted, logged and committed
with its window (it cannot become usable by reading it again); a broker, store or registry
failure raises, and the process restarts.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from pydantic import ValidationError

from drift.checks import CheckConfig, DriftResult, check_window
from drift.metrics import DriftMetrics
from drift.reference import Reference, ReferenceSource
from drift.trigger import RetrainTrigger, write_flag, write_streak
from drift.windows import Row, Window, Windower
from stream_app.kafka import DeliveryError
from stream_app.schemas import RetrainRequest, Verdict
from stream_app.store import ObjectStore

log = logging.getLogger(__name__)

CONSUME_BATCH = 1000
FLUSH_TIMEOUT_SECONDS = 30.0


def parse_row(payload: bytes | None, columns: Sequence[str], partition: int, offset: int) -> Row:
    """A verdict as a window row: ``columns`` are feature names, then ``score``.

    Raises ValueError (pydantic's ValidationError is one) for anything else.
    """
    verdict = Verdict.model_validate_json(payload or b"")
    if verdict.features is None:
        raise ValueError("verdict carries no features")
    features = verdict.features
    missing = [name for name in columns[:-1] if name not in features]
    if missing:
        raise ValueError(f"verdict lacks features {missing[:3]}")
    return Row(
        event_time=verdict.event_time.timestamp(),
        values=(*(features[name] for name in columns[:-1]), verdict.score),
        decision=verdict.decision,
        model_version=verdict.model_version,
        partition=partition,
        offset=offset,
    )


@dataclass
class MonitorParts:
    """Everything the loop uses, built at the entry point (or by a test, with fakes)."""

    consumer: Consumer
    producer: Producer
    store: ObjectStore
    references: ReferenceSource
    config: CheckConfig
    windower: Windower
    trigger: RetrainTrigger
    metrics: DriftMetrics
    scores_topic: str
    requests_topic: str


class DriftMonitor:
    def __init__(self, parts: MonitorParts) -> None:
        self.parts = parts
        self._delivery_errors: list[str] = []

    def run(self, stop: threading.Event, poll_seconds: float = 0.5) -> None:
        """Until ``stop`` is set (signals set it); the caller closes the clients."""
        while not stop.is_set():
            self.poll(poll_seconds)

    def poll(self, timeout: float) -> list[DriftResult]:
        """Consume one batch; check every window it closes."""
        messages = self.parts.consumer.consume(num_messages=CONSUME_BATCH, timeout=timeout)
        results: list[DriftResult] = []
        for message in messages:
            results.extend(self.process(window) for window in self._windows_for(message))
        return results

    def on_revoke(self, _consumer: Any, partitions: list[TopicPartition]) -> None:
        """Rebalance: the open window's rows will be read again by the partitions' new owner."""
        log.info("partitions revoked count=%d: open window dropped", len(partitions))
        self.parts.windower.discard()

    def _windows_for(self, message: Message) -> list[Window]:
        error = message.error()
        if error is not None:
            if error.fatal():
                raise KafkaException(error)
            log.warning("consumer error: %s", error)
            return []
        windower = self.parts.windower
        partition, offset = message.partition() or 0, _offset(message)
        try:
            row = parse_row(message.value(), windower.columns, partition, offset)
        except (ValidationError, ValueError) as reason:
            self.parts.metrics.invalid_messages.inc()
            log.warning("unusable verdict partition=%d offset=%d: %s", partition, offset, reason)
            windower.skip(partition, offset)
            return []
        return windower.add(row)

    def process(self, window: Window) -> DriftResult:
        """Check, report, maybe request a retrain, record, then commit the window's offsets."""
        parts = self.parts
        reference = self._reference_for(window)
        started = time.perf_counter()
        result = check_window(
            window.frame,
            reference.frame,
            window.span,
            parts.config,
            parts.store,
            reference.review_threshold,
        )
        request = parts.trigger.observe(result)
        if request is not None:
            self._publish(request)
        parts.metrics.record(result, time.perf_counter() - started, parts.trigger.streak)
        # Before the commit: a restart then re-checks this window, and the trigger knows it.
        write_streak(parts.store, parts.trigger.state())
        self._commit(window)
        _log_result(result, window, request)
        return result

    def _reference_for(self, window: Window) -> Reference:
        """The scoring model's reference; a different one restarts the drift streak."""
        reference = self.parts.references.for_version(window.model_version)
        trigger = self.parts.trigger
        if trigger.reference not in (None, reference.source):
            log.info("reference changed to %s: drift streak reset", reference.source)
            trigger.reset()
        trigger.reference = reference.source
        return reference

    def _publish(self, request: RetrainRequest) -> None:
        parts = self.parts
        parts.producer.produce(
            parts.requests_topic,
            value=request.to_bytes(),
            key=request.request_id.encode(),
            on_delivery=self._on_delivery,
        )
        remaining = parts.producer.flush(FLUSH_TIMEOUT_SECONDS)
        errors, self._delivery_errors = self._delivery_errors, []
        if remaining or errors:
            raise DeliveryError(f"retrain request {request.request_id} not acknowledged: {errors}")
        write_flag(parts.store, request)
        parts.metrics.retrain_requests.inc()

    def _on_delivery(self, error: KafkaError | None, _message: Any) -> None:
        if error is not None:
            self._delivery_errors.append(str(error))

    def _commit(self, window: Window) -> None:
        topic = self.parts.scores_topic
        offsets = [TopicPartition(topic, p, o) for p, o in sorted(window.commit_offsets.items())]
        if offsets:
            self.parts.consumer.commit(offsets=offsets, asynchronous=False)


def _offset(message: Message) -> int:
    """A consumed message always has one; -1 (never committed) only to satisfy the types."""
    offset = message.offset()
    return -1 if offset is None else offset


def _log_result(result: DriftResult, window: Window, request: RetrainRequest | None) -> None:
    log.info(
        "window end=%s rows=%d closed_by=%s drift_share=%.3f drifted=%s prediction_psi=%.4f "
        "report=%s request=%s",
        result.span.end.isoformat(),
        result.rows,
        window.closed_by,
        result.drift_share,
        result.drifted,
        result.prediction.score,
        result.report_uri,
        None if request is None else request.request_id,
    )
