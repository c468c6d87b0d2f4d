"""The Faust application: the thin shell around the pure batch scorer.

Only the worker's entry point imports this module: building a ``faust.App`` has side effects
(it registers agents, topics and web views), so nothing else should.

The agent only loops, batches, calls, publishes and acknowledges. Concurrency stays 1:
faust-streaming issue 606 loses messages with agent concurrency above one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import faust
from faust.types import EventT
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from stream_app.processor import BatchScorer
from stream_app.publisher import PublishError, VerdictPublisher
from stream_app.settings import KafkaSettings, Settings
from stream_app.validation import RawRecord, Rejection, parse_transaction

log = logging.getLogger(__name__)

FLUSH_TIMEOUT_SECONDS = 60.0
EXIT_PUBLISH_FAILED = 70


def create_app(settings: Settings, scorer: BatchScorer, publisher: VerdictPublisher) -> faust.App:
    worker, kafka = settings.worker, settings.kafka
    app = faust.App(
        worker.app_id,
        broker=[f"kafka://{server}" for server in kafka.bootstrap_servers.split(",")],
        datadir=str(worker.data_dir),
        web_host=worker.web_host,
        web_bind=worker.web_host,
        web_port=worker.web_port,
        topic_partitions=kafka.partitions,
        topic_replication_factor=kafka.replication_factor,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        stream_buffer_maxsize=max(4096, worker.batch_size * 4),
        broker_credentials=faust_credentials(kafka),
    )
    transactions = app.topic(
        kafka.topics.transactions, key_serializer="raw", value_serializer="raw"
    )

    @app.agent(transactions, concurrency=1)
    async def score_transactions(stream: faust.StreamT[bytes]) -> None:
        loop = asyncio.get_running_loop()
        # take_events yields whole events (partition, offset, raw bytes) and acknowledges them
        # only when the loop body has finished: after the batch's outputs are confirmed.
        batches = stream.take_events(  # type: ignore[attr-defined]  # on Stream, not StreamT
            worker.batch_size, within=worker.batch_within_seconds
        )
        async for events in batches:
            result = scorer.score_batch(_raw_records(events))
            publisher.enqueue(result)
            try:
                await loop.run_in_executor(None, publisher.flush, FLUSH_TIMEOUT_SECONDS)
            except PublishError as exc:
                _exit_without_acknowledging(exc)

    _add_views(app, scorer)
    return app


def faust_credentials(kafka: KafkaSettings) -> faust.auth.Credentials | None:
    """The same security settings the confluent-kafka clients get, in Faust's (aiokafka's) form."""
    ssl_context = None
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        ssl_context = ssl.create_default_context(
            cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None
        )
        if kafka.ssl_certfile:
            keyfile = str(kafka.ssl_keyfile) if kafka.ssl_keyfile else None
            ssl_context.load_cert_chain(str(kafka.ssl_certfile), keyfile)
    if kafka.security_protocol.startswith("SASL"):
        password = kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
        return faust.SASLCredentials(
            username=kafka.sasl_username,
            password=password,
            mechanism=kafka.sasl_mechanism or "PLAIN",
            ssl_context=ssl_context,
        )
    return faust.SSLCredentials(ssl_context) if ssl_context is not None else None


def _raw_records(events: Sequence[EventT[Any]]) -> list[RawRecord]:
    return [
        RawRecord(
            topic=event.message.topic,
            partition=event.message.partition,
            offset=event.message.offset,
            key=event.message.key,
            value=event.message.value,
            timestamp_ms=int(event.message.timestamp * 1000),
        )
        for event in events
    ]


def _exit_without_acknowledging(exc: PublishError) -> None:
    # Leaving through the normal error path would let Faust acknowledge (and later commit) the
    # batch whose verdicts the broker never confirmed. Exiting at once keeps those offsets
    # uncommitted, so the restarted worker scores the batch again: at least once, never lost.
    log.critical("outputs not acknowledged, exiting for a restart: %s", exc)
    logging.shutdown()
    os._exit(EXIT_PUBLISH_FAILED)


# /predict answers: a client error's status by rejection reason (the body names the fields).
REJECTION_STATUS = {"oversized": 413, "invalid_encoding": 400, "invalid_json": 400}
UNPROCESSABLE = 422


def _add_views(app: faust.App, scorer: BatchScorer) -> None:
    @app.page("/predict")
    class Predict(View):
        """The original request/response API, on the same features and model as the stream."""

        async def post(self, request: Request) -> Response:
            body = await request.read()  # aiohttp refuses bodies over 1 MiB with a 413 itself
            parsed = parse_transaction(body, datetime.now(UTC))
            if isinstance(parsed, Rejection):
                scorer.metrics.predict_requests.labels(parsed.reason).inc()
                status = REJECTION_STATUS.get(parsed.reason, UNPROCESSABLE)
                return self.json({"reason": parsed.reason, "error": parsed.error}, status=status)
            verdict = scorer.predict(parsed)
            scorer.metrics.predict_requests.labels(verdict.decision).inc()
            return self.json(verdict.model_dump(mode="json", exclude_none=True))

    @app.page("/metrics")
    async def metrics(self: View, request: Request) -> Response:
        body = generate_latest(scorer.metrics.registry)
        return self.bytes(body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/health")
    async def health(self: View, request: Request) -> Response:
        assigned = len(app.consumer.assignment()) if app.consumer is not None else 0
        ready = assigned > 0
        status = 200 if ready else 503
        return self.json(
            {
                "live": True,
                "ready": ready,
                "assigned_partitions": assigned,
                "model_name": scorer.model.metadata.name,
                "model_version": scorer.model.metadata.version,
            },
            status=status,
        )
