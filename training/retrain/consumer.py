"""The Kafka shell: requests queued in order, one training at a time, commits in order, backoff.

Training runs on a worker thread while the main thread keeps polling: a retrain can outlast
``max.poll.interval.ms``, and requests arriving meanwhile are queued behind it. The wiring of
the real store, registry, producer and consumer from the settings is at the end.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer
from pydantic import ValidationError

from stream_app.kafka import DeliveryError, DeliveryTracker, consumer_config, producer_config
from stream_app.schemas import ModelUpdate, RetrainRequest
from stream_app.settings import Settings
from stream_app.store import ObjectStore, open_store
from training.dataset import load_lake
from training.registry import client_for
from training.retrain.handler import Announcer, Handled, NotReady, RetrainHandler
from training.retrain.job import TrainingJob
from training.retrain.ledger import StoreLedger
from training.retrain.registry_runs import RegistryTrainer, previous_run_finder

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.5


class ModelUpdatePublisher:
    """Sends one ModelUpdate and waits for the broker's acknowledgement, or raises."""

    def __init__(self, producer: Any, topic: str, timeout_seconds: float = 30.0) -> None:
        self.producer = producer
        self.topic = topic
        self.timeout_seconds = timeout_seconds

    def __call__(self, update: ModelUpdate) -> None:
        tracker = DeliveryTracker()
        key = update.model_name.encode()
        self.producer.produce(self.topic, update.to_bytes(), key, on_delivery=tracker.on_delivery)
        remaining = self.producer.flush(self.timeout_seconds)
        if remaining or tracker.failures:
            raise DeliveryError(f"model update not acknowledged: {tracker.failures or remaining}")
        logger.info("model update sent version=%s uri=%s", update.model_version, update.model_uri)


@dataclass
class Backoff:
    """Waits between checks of a request that is not ready: first, doubling, capped."""

    first: float
    maximum: float
    _upcoming: float | None = None

    def next(self) -> float:
        delay = min(self.first if self._upcoming is None else self._upcoming, self.maximum)
        self._upcoming = min(delay * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self._upcoming = None


@dataclass
class Queued:
    message: Any
    request: RetrainRequest | None  # None: invalid; committed when it reaches the head


@dataclass
class ConsumerStats:
    handled: int = 0
    duplicates: int = 0
    not_ready: int = 0
    invalid: int = 0


Handler = Callable[[RetrainRequest], Handled | NotReady]


class RetrainConsumer:
    """Requests in arrival order, one handled at a time, each offset committed once handled."""

    def __init__(
        self,
        consumer: Any,
        handler: Handler,
        topic: str,
        backoff: Backoff,
        executor: Executor,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.consumer = consumer
        self.handler = handler
        self.topic = topic
        self.backoff = backoff
        self.executor = executor
        self.clock = clock
        self.stats = ConsumerStats()
        self.queue: deque[Queued] = deque()
        self.running: Future[Handled | NotReady] | None = None
        self.retry_at: float | None = None

    @property
    def busy(self) -> bool:
        return bool(self.queue) or self.running is not None

    def run(self, stop: threading.Event, idle_exit_seconds: float | None = None) -> ConsumerStats:
        """Until ``stop`` (or idle that long); a training in flight is finished and committed."""
        self.consumer.subscribe([self.topic], on_revoke=self._on_revoke, on_lost=self._on_revoke)
        last_activity = self.clock()
        try:
            while not stop.is_set():
                if self.poll_once() or self.busy:
                    last_activity = self.clock()
                elif (
                    idle_exit_seconds is not None
                    and self.clock() - last_activity >= idle_exit_seconds
                ):
                    break
            if self.running is not None:
                wait([self.running])
                self._collect()
        finally:
            self.consumer.close()
        return self.stats

    def poll_once(self) -> int:
        messages = self.consumer.consume(num_messages=10, timeout=POLL_SECONDS)
        for message in messages:
            self._receive(message)
        self._collect()
        self._start_next()
        return len(messages)

    def _receive(self, message: Any) -> None:
        error = message.error()
        if error is not None:
            if error.fatal():
                raise KafkaException(error)
            logger.warning("kafka consumer error (retrying) error=%s", error)
            return
        self.queue.append(Queued(message, self._parse(message)))

    def _parse(self, message: Any) -> RetrainRequest | None:
        try:
            return RetrainRequest.model_validate_json(message.value() or b"")
        except ValidationError as error:
            self.stats.invalid += 1
            logger.warning(
                "invalid retrain request skipped partition=%s offset=%s error=%s",
                message.partition(),
                message.offset(),
                error.errors(include_url=False, include_input=False)[:1],
            )
            return None

    def _collect(self) -> None:
        """Take a finished handling's result: commit and move on, or schedule the next check."""
        if self.running is None or not self.running.done():
            return
        future, self.running = self.running, None
        result = future.result()  # an infrastructure failure raises here: no commit, restart
        if isinstance(result, NotReady):
            self.stats.not_ready += 1
            delay = self.backoff.next()
            self.retry_at = self.clock() + delay
            logger.warning("retrain not ready: %s; next check in %.0f s", result.reason, delay)
            return
        self.stats.handled += 1
        self.stats.duplicates += result.duplicate
        self._commit_head()

    def _start_next(self) -> None:
        while self.running is None and self.queue:
            head = self.queue[0]
            if head.request is None:
                self._commit_head()
                continue
            if self.retry_at is None or self.clock() >= self.retry_at:
                self.running = self.executor.submit(self.handler, head.request)
            return

    def _commit_head(self) -> None:
        entry = self.queue.popleft()
        self.retry_at = None
        self.backoff.reset()
        try:
            self.consumer.commit(message=entry.message, asynchronous=False)
        except KafkaException as error:
            # Lost the partition meanwhile: its next reader replays the request, and the
            # ledger turns that replay into a skip.
            logger.warning("commit failed offset=%s error=%s", entry.message.offset(), error)

    def _on_revoke(self, _consumer: Any, partitions: list[Any]) -> None:
        """Forget queued requests of partitions we no longer own; their next owner reads them.

        A request being handled stays: it finishes, and its commit fails harmlessly."""
        revoked = {(str(tp.topic), int(tp.partition)) for tp in partitions}
        old_head = self.queue[0] if self.queue else None
        head = [self.queue.popleft()] if self.running is not None and self.queue else []
        kept = [e for e in self.queue if (e.message.topic(), e.message.partition()) not in revoked]
        self.queue = deque(head + kept)
        if not self.queue or self.queue[0] is not old_head:
            self.retry_at = None
            self.backoff.reset()


def build_handler(
    settings: Settings, store: ObjectStore, client: Any, announce: Announcer
) -> RetrainHandler:
    job = TrainingJob.from_settings(settings)
    history_days = settings.training.history_days
    return RetrainHandler(
        ledger=StoreLedger(store),
        previous_run=previous_run_finder(client, job),
        lake=lambda as_of: load_lake(store, as_of, history_days),
        trainer=RegistryTrainer(client, job),
        announce=announce,
        model_name=job.model_name,
        champion_alias=job.policy.champion_alias,
        min_fraud_labels=settings.training.min_fraud_labels,
    )


def build_retrain_consumer(settings: Settings, executor: Executor) -> RetrainConsumer:
    """The consumer with its real store, registry and producer, all from ``settings``."""
    kafka, training = settings.kafka, settings.training
    producer = Producer(producer_config(kafka, f"{training.app_id}-updates"))
    handler = build_handler(
        settings,
        open_store(settings.store),
        client_for(settings.mlflow.tracking_uri),
        ModelUpdatePublisher(producer, kafka.topics.model_updates),
    )
    return RetrainConsumer(
        Consumer(consumer_config(kafka, training.app_id)),
        handler.handle,
        kafka.topics.retrain_requests,
        Backoff(training.retry_seconds, training.retry_max_seconds),
        executor,
    )


def run_retrain_consumer(
    settings: Settings, stop: threading.Event, idle_exit_seconds: float | None = None
) -> ConsumerStats:
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="retrain") as executor:
        return build_retrain_consumer(settings, executor).run(stop, idle_exit_seconds)
