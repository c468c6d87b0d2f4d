"""The training consumer: each ``retrain-requests`` message retrains once, one at a time.

A request goes through, in order:

1. **The ledger.** ``training/requests/<request_id>.json`` in the object store holds the outcome
   of every handled request. Found: nothing to do (the same request twice trains once).
2. **The registry.** A FINISHED MLflow run whose parameter ``retrain_request_id`` is this id
   means a previous attempt trained and gated, then died before writing the ledger: its
   outcome is rebuilt from the registry instead of training again.
3. **Readiness.** Drift means the world changed at ``window_start``; a model retrained before
   the changed world's fraud has been reported learns nothing new. So the request waits until
   ``min_fraud_labels`` fraud labels, known now, exist in the lake for transactions at or after
   ``window_start`` (event time). Until then it stays uncommitted and is checked again after
   ``retry_seconds``, doubling up to ``retry_max_seconds``; requests behind it wait their turn.
   A lake that cannot be split yet (too short, a split with one class) counts as not ready too.
4. **Training** on the lake as of now, gated against the champion on the same test split
   (``training.registry.publish``, the path ``fraudstream-train train`` runs).
5. **Announcing.** If the champion alias moved, a ``ModelUpdate`` for
   ``models:/<name>/<version>`` goes to ``model-updates`` and is flushed.
6. **Recording** the outcome in the ledger, then committing the offset.

Why the ledger lives in the object store rather than only in MLflow: it also records requests
handled without training (duplicates, recoveries) and is one GET per request; the run parameter
covers the crash window between publishing and recording. Infrastructure errors (store, MLflow,
broker) propagate: the process exits without committing and a restart replays the request,
which steps 1 and 2 make cheap.

Training runs on a worker thread while the main thread keeps polling: a retrain can outlast
``max.poll.interval.ms``, and requests arriving meanwhile are queued behind it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote

import pandas as pd
from confluent_kafka import Consumer, KafkaException, Producer
from pydantic import BaseModel, ConfigDict, ValidationError

from stream_app.kafka import DeliveryError, DeliveryTracker, consumer_config, producer_config
from stream_app.model import ModelBundle
from stream_app.model_store import registry_uri
from stream_app.schemas import ModelUpdate, RetrainRequest
from stream_app.settings import Settings
from stream_app.store import ObjectNotFoundError, ObjectStore, open_store
from training.dataset import TARGET, SplitPlan, Splits, dataset_splits, known_labels, load_lake
from training.evaluate import CostModel
from training.registry import PromotionPolicy, PublishResult, aliases, client_for, publish
from training.train import TrainConfig, train_model

logger = logging.getLogger(__name__)

REQUEST_PARAM = "retrain_request_id"
LEDGER_PREFIX = "training/requests"
POLL_SECONDS = 0.5


# ---------------------------------------------------------------------------------------------
# The retraining job; ``fraudstream-train train`` runs the same function once, by hand.


@dataclass(frozen=True)
class TrainingJob:
    """Everything that decides how a model is trained and gated, from flags or settings."""

    experiment: str
    model_name: str
    plan: SplitPlan
    config: TrainConfig
    policy: PromotionPolicy
    costs: CostModel = field(default_factory=CostModel)

    @classmethod
    def from_settings(cls, settings: Settings) -> TrainingJob:
        training = settings.training
        return cls(
            experiment=settings.mlflow.experiment,
            model_name=settings.mlflow.model_name,
            plan=SplitPlan(
                validation_days=training.validation_days,
                test_days=training.test_days,
                gap_days=training.gap_days,
            ),
            config=TrainConfig(
                seed=training.seed,
                nthread=training.nthread,
                num_boost_round=training.num_boost_round,
            ),
            policy=PromotionPolicy(
                margin=training.promotion_margin, champion_alias=settings.mlflow.champion_alias
            ),
        )


@dataclass(frozen=True)
class TrainedRun:
    bundle: ModelBundle
    result: PublishResult


def _quiet(step: str) -> None:
    logger.info("step=%s", step)


def train_and_publish(
    client: Any,
    job: TrainingJob,
    splits: Splits,
    as_of: pd.Timestamp,
    extra_params: dict[str, Any] | None = None,
    step: Callable[[str], None] = _quiet,
) -> TrainedRun:
    """Train on ``splits``, log and register the run, and gate it against the champion."""
    step("training")
    bundle = train_model(splits, config=job.config, costs=job.costs, name=job.model_name)
    step("logging the run, registering the version, gating it against the champion")
    params = {
        **job.config.as_params(),
        "as_of": as_of.isoformat(),
        "margin": job.policy.margin,
        **(extra_params or {}),
    }
    result = publish(
        client,
        experiment=job.experiment,
        name=job.model_name,
        bundle=bundle,
        splits=splits,
        params=params,
        policy=job.policy,
        seed=job.config.seed,
    )
    return TrainedRun(bundle, result)


# ---------------------------------------------------------------------------------------------
# Readiness and the ledger (pure, or behind a small interface)


def matured_fraud_labels(
    transactions: pd.DataFrame, labels: pd.DataFrame, since: pd.Timestamp, as_of: pd.Timestamp
) -> int:
    """Fraud labels known at ``as_of`` of transactions stamped in ``[since, as_of]``."""
    stamps = pd.to_datetime(transactions["timestamp"], utc=True)
    recent = transactions.loc[(stamps >= since) & (stamps <= as_of), "transaction_id"]
    known = known_labels(labels, as_of)
    return int((known[TARGET] & known["transaction_id"].isin(recent)).sum())


class RequestOutcome(BaseModel):
    """What handling a request produced; the ledger's record, readable JSON."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    request_id: str
    handled_at: datetime
    run_id: str
    model_name: str
    model_version: str
    promoted: bool
    candidate_score: float | None = None
    champion_version: str | None = None
    champion_score: float | None = None
    fraud_labels: int | None = None
    model_update_sent: bool = False
    recovered: bool = False


class Ledger(Protocol):
    def get(self, request_id: str) -> RequestOutcome | None: ...

    def record(self, outcome: RequestOutcome) -> None: ...


class StoreLedger:
    """One object per handled request under ``training/requests/``.

    Ids are percent-encoded, dots included: no id can name another folder, and none starts
    with a dot (a local store hides those names, as its own temporary files).
    """

    def __init__(self, store: ObjectStore, prefix: str = LEDGER_PREFIX) -> None:
        self.store = store
        self.prefix = prefix

    def key(self, request_id: str) -> str:
        encoded = quote(request_id, safe="").replace(".", "%2E")
        return f"{self.prefix}/{encoded}.json"

    def get(self, request_id: str) -> RequestOutcome | None:
        try:
            return RequestOutcome.model_validate_json(self.store.get_bytes(self.key(request_id)))
        except ObjectNotFoundError:
            return None

    def record(self, outcome: RequestOutcome) -> None:
        self.store.put_bytes(
            self.key(outcome.request_id), outcome.model_dump_json(indent=2).encode()
        )


# ---------------------------------------------------------------------------------------------
# Handling one request


@dataclass(frozen=True)
class Handled:
    outcome: RequestOutcome
    duplicate: bool = False


@dataclass(frozen=True)
class NotReady:
    reason: str


class DatasetNotReady(Exception):
    """The lake cannot give a retrain what it needs yet; later it may."""


Lake = Callable[[pd.Timestamp], tuple[pd.DataFrame, pd.DataFrame]]
Trainer = Callable[[RetrainRequest, pd.DataFrame, pd.DataFrame, pd.Timestamp], PublishResult]
PreviousRun = Callable[[str], PublishResult | None]
Announcer = Callable[[ModelUpdate], None]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


def model_update(result: PublishResult, name: str, alias: str, now: datetime) -> ModelUpdate:
    return ModelUpdate(
        model_name=name,
        model_version=result.version,
        alias=alias,
        model_uri=registry_uri(name, result.version),
        promoted_at=now,
        run_id=result.run_id or None,
    )


@dataclass
class RetrainHandler:
    """Steps 1-6 of the module docstring for one request; every dependency is injected."""

    ledger: Ledger
    previous_run: PreviousRun
    lake: Lake
    trainer: Trainer
    announce: Announcer
    model_name: str
    champion_alias: str
    min_fraud_labels: int
    clock: Callable[[], datetime] = _utc_now

    def handle(self, request: RetrainRequest) -> Handled | NotReady:
        done = self.ledger.get(request.request_id)
        if done is not None:
            logger.info("retrain request=%s already handled: skipped", request.request_id)
            return Handled(done, duplicate=True)
        previous = self.previous_run(request.request_id)
        if previous is not None:
            logger.info("retrain request=%s found run_id=%s", request.request_id, previous.run_id)
            return self._finish(request, previous, fraud_labels=None, recovered=True)
        try:
            return self._train_when_ready(request, pd.Timestamp(self.clock()))
        except DatasetNotReady as reason:
            return NotReady(str(reason))

    def _train_when_ready(self, request: RetrainRequest, as_of: pd.Timestamp) -> Handled:
        try:
            transactions, labels = self.lake(as_of)
        except ValueError as error:  # no partitions in the window yet
            raise DatasetNotReady(str(error)) from error
        since = pd.Timestamp(request.window_start)
        frauds = matured_fraud_labels(transactions, labels, since, as_of)
        if frauds < self.min_fraud_labels:
            raise DatasetNotReady(
                f"{frauds} fraud labels for transactions since {since.isoformat()}, "
                f"{self.min_fraud_labels} needed"
            )
        result = self.trainer(request, transactions, labels, as_of)
        return self._finish(request, result, fraud_labels=frauds, recovered=False)

    def _finish(
        self,
        request: RetrainRequest,
        result: PublishResult,
        fraud_labels: int | None,
        recovered: bool,
    ) -> Handled:
        if result.promoted:
            self.announce(model_update(result, self.model_name, self.champion_alias, self.clock()))
        outcome = RequestOutcome(
            request_id=request.request_id,
            handled_at=self.clock(),
            run_id=result.run_id,
            model_name=self.model_name,
            model_version=result.version,
            promoted=result.promoted,
            candidate_score=_finite(result.candidate_score),
            champion_version=result.champion_version,
            champion_score=_finite(result.champion_score),
            fraud_labels=fraud_labels,
            model_update_sent=result.promoted,
            recovered=recovered,
        )
        self.ledger.record(outcome)
        logger.info(
            "retrain request=%s version=%s promoted=%s recovered=%s",
            request.request_id,
            result.version,
            result.promoted,
            recovered,
        )
        return Handled(outcome)


# ---------------------------------------------------------------------------------------------
# MLflow: training with the request id on the run, and finding a run from before a crash


class RegistryTrainer:
    """Dataset, train, publish; the request's id and window are logged as run parameters."""

    def __init__(self, client: Any, job: TrainingJob) -> None:
        self.client = client
        self.job = job

    def __call__(
        self,
        request: RetrainRequest,
        transactions: pd.DataFrame,
        labels: pd.DataFrame,
        as_of: pd.Timestamp,
    ) -> PublishResult:
        try:
            splits = dataset_splits(transactions, labels, as_of, self.job.plan)
        except ValueError as error:
            raise DatasetNotReady(str(error)) from error
        params = {
            REQUEST_PARAM: request.request_id,
            "retrain_window_start": request.window_start.isoformat(),
            "retrain_window_end": request.window_end.isoformat(),
        }
        return train_and_publish(self.client, self.job, splits, as_of, params).result


def _filter_literal(text: str) -> str | None:
    """MLflow filter strings have no escapes: quote with a character the text does not hold."""
    for mark in ("'", '"'):
        if mark not in text:
            return f"{mark}{text}{mark}"
    return None


def finished_run_id(client: Any, experiment: str, request_id: str) -> str | None:
    found = client.get_experiment_by_name(experiment)
    literal = _filter_literal(request_id)
    if found is None or literal is None:
        return None
    runs = client.search_runs(
        [found.experiment_id],
        filter_string=f"params.{REQUEST_PARAM} = {literal} and attributes.status = 'FINISHED'",
        max_results=1,
    )
    return str(runs[0].info.run_id) if runs else None


def _tag_number(tags: dict[str, str], key: str) -> float | None:
    value = tags.get(key)
    return float(value) if value else None


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value


def registered_result(client: Any, name: str, alias: str, run_id: str) -> PublishResult | None:
    """The gate's result for a run's version, as the registry has it; ``promoted`` means the
    version holds the alias now (so announcing it again is right, and harmless)."""
    versions = [v for v in client.search_model_versions(f"run_id = '{run_id}'") if v.name == name]
    if not versions:
        return None
    version, tags = str(versions[0].version), dict(versions[0].tags)
    return PublishResult(
        run_id=run_id,
        version=version,
        promoted=aliases(client, name).get(alias) == version,
        candidate_score=_or_nan(_tag_number(tags, "holdout_average_precision")),
        champion_version=tags.get("champion_version_at_gate") or None,
        champion_score=_tag_number(tags, "champion_holdout_average_precision"),
    )


def previous_run_finder(client: Any, job: TrainingJob) -> PreviousRun:
    def find(request_id: str) -> PublishResult | None:
        run_id = finished_run_id(client, job.experiment, request_id)
        if run_id is None:
            return None
        return registered_result(client, job.model_name, job.policy.champion_alias, run_id)

    return find


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


# ---------------------------------------------------------------------------------------------
# The Kafka shell: queue, one training at a time, commit in order, retry with backoff


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


# ---------------------------------------------------------------------------------------------
# Wiring, for the entry point


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
