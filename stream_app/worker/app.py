"""The Faust application: the thin shell around the pure batch scorer.

Only the worker's entry point imports this module: building a ``faust.App`` has side effects
(it registers agents, topics and web views), so nothing else should.

The agent only loops, batches, calls, publishes and acknowledges. Concurrency stays 1:
faust-streaming issue 606 loses messages with agent concurrency above one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Sequence
from typing import Any, NamedTuple, NoReturn

import faust
from faust.types import TP, EventT
from prometheus_client import Gauge

from stream_app.kafka import faust_credentials
from stream_app.scoring import thresholds_for
from stream_app.settings import Settings
from stream_app.state import ChangelogRecord
from stream_app.validation import RawRecord
from stream_app.worker import bulk_recovery
from stream_app.worker.batching import ready_batches
from stream_app.worker.http_api import add_views
from stream_app.worker.kafka_transport import NoGapTransport
from stream_app.worker.parts import WorkerParts
from stream_app.worker.publisher import BatchDelivery, VerdictPublisher
from stream_app.worker.watchdog import ProgressWatchdog, install_watchdog

log = logging.getLogger(__name__)

FLUSH_TIMEOUT_SECONDS = 60.0
DELIVERY_POLL_SECONDS = 0.002
# Transactions published but not yet acknowledged, counted in full batches: one batch's worth
# being confirmed while the next is scored. Small batches (a moderate rate) pipeline many.
MAX_BATCHES_IN_FLIGHT = 2
READERS_DRAIN_SECONDS = 1.0
# EX_SOFTWARE: the worker stops without acknowledging a batch, for its supervisor to restart it.
EXIT_UNACKNOWLEDGED = 70


CUSTOMER_TABLE = "customer-state"


def create_app(settings: Settings, parts: WorkerParts) -> faust.App:
    app = _new_app(settings)
    customers = app.Table(
        CUSTOMER_TABLE,
        key_type=str,
        value_type=bytes,  # raw: stream_app.state's binary snapshots, decoded on first use
        partitions=settings.kafka.partitions,
        # Faust's memory store, but the changelog is read in bulk on assignment (seconds for a
        # million customers instead of minutes through Faust's per-message recovery).
        store=bulk_recovery.STORE_URL,
        options={bulk_recovery.KAFKA_OPTION: settings.kafka},
        help="Per-customer feature state, written by stream_app.state.",
    )
    # Faust recovers the changelog into this store; the scorer reads and updates it in place,
    # and the publisher writes the changelog together with each batch's verdicts.
    parts.scorer.state.customers = customers.data
    parts.publisher.changelog_topic = customers.changelog_topic.get_topic_name()
    _add_scoring_agent(app, settings, parts)
    _add_readers(app, settings, parts)
    watchdog = ProgressWatchdog(settings.worker.stall_seconds)
    install_watchdog(
        app,
        settings.kafka.topics.transactions,
        watchdog,
        exit_on_stall=settings.worker.stall_action == "exit",
        stalls=parts.scorer.metrics.partition_stalls,
        lag=parts.scorer.metrics.consumer_lag,
    )
    add_views(app, parts, settings, watchdog, CUSTOMER_TABLE)
    return app


def _new_app(settings: Settings) -> faust.App:
    worker, kafka = settings.worker, settings.kafka
    # Faust creates only the last folder of its datadir: a new container has no .local yet.
    worker.data_dir.mkdir(parents=True, exist_ok=True)
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
        broker_session_timeout=worker.session_timeout_seconds,
        broker_heartbeat_interval=worker.session_timeout_seconds / 5,
        table_standby_replicas=worker.standby_replicas,
    )
    # Before anything creates the default one: no stream record lost around a seek-back.
    app.transport = NoGapTransport(app.conf.broker_consumer, app)
    return app


def _add_scoring_agent(app: faust.App, settings: Settings, parts: WorkerParts) -> None:
    worker = settings.worker
    transactions = app.topic(
        settings.kafka.topics.transactions, key_serializer="raw", value_serializer="raw"
    )

    @app.agent(transactions, concurrency=1)
    async def score_transactions(stream: faust.StreamT[bytes]) -> None:
        # Whole events (partition, offset, raw bytes), unacknowledged: the in-flight batches
        # acknowledge a batch once its outputs are confirmed, while this loop already takes
        # and scores the next one. A batch closes as soon as nothing more is queued.
        batches = ready_batches(stream, worker.batch_size)
        in_flight = InFlightBatches(
            app, stream, parts.publisher, transactions.get_topic_name(), worker.batch_size
        )
        async with in_flight.running():
            async for events in batches:
                await in_flight.wait_for_room(len(events))
                try:
                    delivery, state_changes = _score_and_publish(parts, settings, events)
                except Exception as exc:  # a bug, not bad input (that is dead-lettered)
                    _exit_without_acknowledging("scoring a batch failed", exc)
                in_flight.add(ScoredBatch(events, delivery, state_changes))
                _record_lag(app, events, parts.scorer.metrics.consumer_lag)


def _score_and_publish(
    parts: WorkerParts, settings: Settings, events: Sequence[EventT[Any]]
) -> tuple[BatchDelivery, list[ChangelogRecord]]:
    """Score a batch and hand its outputs to the producer; its state changes wait for
    the outputs' confirmation (:class:`InFlightBatches`)."""
    _swap_if_ready(parts, settings)
    parts.scorer.apply_labels(parts.labels.drain())
    if parts.rules is not None:
        parts.rules.apply(parts.scorer)
    result = parts.scorer.score_batch(_raw_records(events))
    if parts.rules is not None:
        parts.rules.count_shadow_hits(result.verdicts)
    return parts.publisher.enqueue_outputs(result), result.state_changes


class ScoredBatch(NamedTuple):
    """A batch taken and scored, on its way to being acknowledged."""

    events: Sequence[EventT[Any]]  # to acknowledge, last
    outputs: BatchDelivery  # the broker's answers for its verdicts, alerts, dead letters
    state_changes: list[ChangelogRecord]  # for the changelog, once the outputs are confirmed


class InFlightBatches:
    """Scored batches whose outputs are on their way to the broker.

    A batch's events are acknowledged only once the broker has confirmed every output of that
    batch and then every state change of it (written only after the outputs are confirmed, so a
    crash never leaves a durable state holding a transaction whose verdict was lost), and
    batches are acknowledged in the order they were taken. Two tasks do it, in order: one waits
    for a batch's outputs and then hands its state changes to the producer, the other waits for
    those and acknowledges; so one batch's state round trip overlaps the next batch's outputs
    (one task doing both in turn was what held small batches back at a moderate rate). At most
    ``MAX_BATCHES_IN_FLIGHT`` full batches' worth of transactions are taken and not yet
    acknowledged: a slow broker slows intake down instead of piling up, and a crash replays at
    most that many beyond the acknowledged but uncommitted offsets.
    """

    def __init__(
        self,
        app: faust.App,
        stream: faust.StreamT[bytes],
        publisher: VerdictPublisher,
        topic: str,
        batch_size: int,
    ) -> None:
        self.app, self.stream, self.publisher = app, stream, publisher
        self.topics: set[str | TP] = {topic}  # whose offsets the batches acknowledge
        self.room = TransactionRoom(MAX_BATCHES_IN_FLIGHT * batch_size)
        self.waiting: asyncio.Queue[ScoredBatch] = asyncio.Queue()
        self.outputs_confirmed: asyncio.Queue[tuple[ScoredBatch, BatchDelivery]] = asyncio.Queue()
        self.commit_every: int = app.conf.broker_commit_every
        self.acked_since_commit = 0

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        stages = [
            asyncio.create_task(self._write_state_once_outputs_confirmed()),
            asyncio.create_task(self._acknowledge_once_state_confirmed()),
        ]
        try:
            yield
        finally:
            # Batches still waiting stay unacknowledged: a restart scores them again. (A normal
            # stop waits for every event to be acknowledged before it gets here.)
            for stage in stages:
                stage.cancel()

    async def wait_for_room(self, transactions: int) -> None:
        """Before scoring a batch: until it fits in what may be in flight."""
        await self.room.take(transactions)

    def add(self, batch: ScoredBatch) -> None:
        self.waiting.put_nowait(batch)

    async def _write_state_once_outputs_confirmed(self) -> None:
        while True:
            batch = await self.waiting.get()
            try:
                await self._confirmed(batch.outputs)
                # Only now: the durable state never runs ahead of the verdicts.
                state = self.publisher.enqueue_state(batch.state_changes)
            except Exception as exc:  # unconfirmed: never write the state, never ack
                _exit_without_acknowledging("outputs not acknowledged", exc)
            self.outputs_confirmed.put_nowait((batch, state))

    async def _acknowledge_once_state_confirmed(self) -> None:
        while True:
            batch, state = await self.outputs_confirmed.get()
            try:
                await self._confirmed(state)
                for event in batch.events:
                    await self.stream.ack(event)
            except Exception as exc:  # unconfirmed, or acknowledging broke: never ack blindly
                _exit_without_acknowledging("outputs not acknowledged", exc)
            await self.room.give_back(len(batch.events))
            await self._commit_every_so_often(len(batch.events))

    async def _commit_every_so_often(self, acknowledged: int) -> None:
        """Commit after every ``broker_commit_every`` acknowledgements, as that setting says.

        Faust itself checks that count only when its fetcher hands over a message, and with a
        backlog the fetcher sits blocked on a full stream buffer, leaving commits to the timer:
        a crash then replayed whatever was scored in that interval. Committing here keeps the
        replay bounded by the setting whatever the fetcher does.
        """
        self.acked_since_commit += acknowledged
        if self.acked_since_commit < self.commit_every:
            return
        self.acked_since_commit = 0
        try:
            if not await self.app.commit(self.topics):  # another commit was under way: now ours
                await self.app.commit(self.topics)
        except Exception as exc:  # e.g. mid-rebalance; nothing is lost, Faust's timer retries
            log.warning("commit after acknowledgements failed: %r", exc)

    async def _confirmed(self, delivery: BatchDelivery) -> None:
        """Wait for the broker's answers to this batch, serving them on the event loop's thread
        every few milliseconds (librdkafka offers no awaitable for them)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        while not delivery.done and loop.time() - started < FLUSH_TIMEOUT_SECONDS:
            self.publisher.serve_deliveries()
            if not delivery.done:
                await asyncio.sleep(DELIVERY_POLL_SECONDS)
        self.publisher.check_delivered(delivery, loop.time() - started)


class TransactionRoom:
    """At most ``limit`` transactions taken and not yet acknowledged. A batch that does not fit
    waits for earlier ones to be acknowledged; a batch alone always fits."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._changed = asyncio.Condition()

    async def take(self, transactions: int) -> None:
        async with self._changed:
            await self._changed.wait_for(
                lambda: self.used == 0 or self.used + transactions <= self.limit
            )
            self.used += transactions

    async def give_back(self, transactions: int) -> None:
        async with self._changed:
            self.used -= transactions
            self._changed.notify_all()


def _swap_if_ready(parts: WorkerParts, settings: Settings) -> None:
    """Between batches only: a batch is scored by one model, never a mix."""
    bundle = parts.swapper.take_ready()
    if bundle is not None:
        worker = settings.worker
        thresholds = thresholds_for(bundle, worker.review_threshold, worker.block_threshold)
        parts.scorer.swap_model(bundle, thresholds)
        log.info("model swapped name=%s version=%s", bundle.metadata.name, bundle.metadata.version)


def _add_readers(app: faust.App, settings: Settings, parts: WorkerParts) -> None:
    @app.task  # type: ignore[untyped-decorator]  # faust's task decorator is unannotated
    async def start_readers() -> None:
        parts.labels.start()
        parts.model_updates.start()
        if parts.rules is not None:
            parts.rules.start()
        if parts.volume is not None:
            parts.volume.start()

    @app.timer(interval=READERS_DRAIN_SECONDS)  # type: ignore[untyped-decorator]  # as above
    async def drain_readers() -> None:
        # Also when traffic is quiet, so merchant risk and the model in service stay current.
        # Safe between batches by construction: a batch is scored synchronously, so this
        # can only run before a batch's scoring starts or after it has ended.
        parts.scorer.apply_labels(parts.labels.drain())
        parts.scorer.apply_volume()  # keeps the hand-over short when no batch comes
        if parts.rules is not None:
            parts.rules.apply(parts.scorer)
        for update in parts.model_updates.drain():
            parts.swapper.request(update)
        _swap_if_ready(parts, settings)

    if settings.worker.model_poll_seconds > 0:

        @app.timer(interval=settings.worker.model_poll_seconds)  # type: ignore[untyped-decorator]
        async def poll_model_registry() -> None:
            # The fallback for a missed model-updates message: follow the registry's alias.
            parts.swapper.poll_registry()


def _record_lag(app: faust.App, events: Sequence[EventT[Any]], gauge: Gauge) -> None:
    """Lag per partition after this batch: the partition's high watermark minus our position."""
    last_offsets = {event.message.tp: event.message.offset for event in events}
    for tp, offset in last_offsets.items():
        highwater = app.consumer.highwater(tp)
        if highwater is not None:
            gauge.labels(str(tp.partition)).set(max(highwater - offset - 1, 0))


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


def _exit_without_acknowledging(what: str, exc: Exception) -> NoReturn:
    # Leaving through Faust's error path would be worse either way: it would acknowledge (and
    # later commit) a batch whose verdicts the broker never confirmed; or, for a failure while
    # scoring, restart the agent past the batch, whose offsets then stay unacknowledged and hold
    # every later commit of their partitions back while the worker seems healthy. Exiting at
    # once keeps the offsets uncommitted, so the restarted worker scores the batch again.
    log.critical("%s, exiting for a restart: %r", what, exc, exc_info=exc)
    logging.shutdown()
    os._exit(EXIT_UNACKNOWLEDGED)
