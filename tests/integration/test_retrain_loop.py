"""The closed loop on real servers: topics -> lake writer -> lake; retrain request -> training
consumer -> MLflow version, champion gate -> model update; the same request again -> nothing new.

A weak first champion (one stump) makes the outcome certain: the retrained model must beat it.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from confluent_kafka import Producer

from producers.simulator import (
    FraudRates,
    LabelPolicy,
    Simulator,
    SimulatorConfig,
    generate_history,
    iter_events,
)
from producers.sinks import KafkaSink, LakeSink
from stream_app.schemas import Label, ModelUpdate, RetrainRequest, Transaction
from stream_app.settings import (
    KafkaSettings,
    MlflowSettings,
    Settings,
    StoreSettings,
    TopicNames,
    TrainingSettings,
)
from stream_app.store import LocalStore
from tests.integration.mlflow_server import MlflowServer, running_mlflow_server
from tests.kafka_helpers import consume_all, wait_until
from training.dataset import dataset_splits, load_lake
from training.lake_writer.loop import build_lake_writer
from training.registry import aliases, client_for
from training.retrain.consumer import RetrainConsumer, build_retrain_consumer
from training.retrain.job import TrainingJob, train_and_publish
from training.retrain.ledger import StoreLedger
from training.retrain.registry_runs import REQUEST_PARAM
from training.train import TrainConfig

DAYS = 14
KAFKA_DAYS = 3  # the last days go through the topics and the lake writer; the rest straight in


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    with running_mlflow_server(tmp_path_factory.mktemp("mlflow")) as server:
        yield server


def loop_settings(bootstrap: str, topics: TopicNames, tracking_uri: str, store: Path) -> Settings:
    suffix = uuid.uuid4().hex[:8]
    return Settings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap, topics=topics),
        mlflow=MlflowSettings(
            tracking_uri=tracking_uri, experiment=f"loop-{suffix}", model_name=f"loop-{suffix}"
        ),
        store=StoreSettings(uri=str(store)),
        training=TrainingSettings(
            app_id=f"trainer-{suffix}",
            lake_writer_app_id=f"lake-writer-{suffix}",
            history_days=DAYS,
            validation_days=2,
            test_days=2,
            gap_days=1,
            num_boost_round=40,
            min_fraud_labels=20,
            lake_flush_rows=2000,
            lake_flush_seconds=1.0,
        ),
    )


def simulator_config() -> SimulatorConfig:
    """Two weeks ending at today's midnight, fraud x3 and labels within two days: enough
    labelled fraud in every split of a small history."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return SimulatorConfig(
        seed=11,
        n_customers=2000,
        start=today - timedelta(days=DAYS),
        fraud_rates=FraudRates().scaled(3.0),
        labels=LabelPolicy(delay_min=timedelta(hours=1), delay_max=timedelta(days=2)),
    )


def event_time(event: Transaction | Label) -> datetime:
    return event.timestamp if isinstance(event, Transaction) else event.labeled_at


def write_history(config: SimulatorConfig, store: LocalStore, kafka: KafkaSettings) -> int:
    """Old days straight into the lake, the last days onto the topics; returns messages sent."""
    for batch in Simulator(config).iter_days(DAYS - KAFKA_DAYS):
        LakeSink(store, part="simulated").write_day(batch)
    cut = config.start + timedelta(days=DAYS - KAFKA_DAYS)
    with KafkaSink(kafka) as sink:
        for event in iter_events(config, days=DAYS):
            if event_time(event) >= cut:
                sink.send(event)
    return sink.transactions_sent + sink.labels_sent


def produce(kafka: KafkaSettings, topic: str, value: bytes) -> None:
    producer = Producer(kafka.confluent_config())
    producer.produce(topic, value, b"key")
    assert producer.flush(30) == 0


class Background:
    """Runs a service loop in a thread; keeps its exception for the test to raise."""

    def __init__(self, run: Callable[[threading.Event], Any]) -> None:
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._target, args=(run,), daemon=True)
        self.thread.start()

    def _target(self, run: Callable[[threading.Event], Any]) -> None:
        try:
            run(self.stop)
        except BaseException as error:  # handed to the test thread by `check`
            self.error = error

    def check(self) -> None:
        if self.error is not None:
            raise AssertionError("service loop failed") from self.error

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(timeout=60)
        self.check()
        assert not self.thread.is_alive()


def alive_and(service: Background, condition: Callable[[], bool]) -> Callable[[], bool]:
    def check() -> bool:
        service.check()
        return condition()

    return check


def archive_through_the_lake_writer(settings: Settings, store: LocalStore, expected: int) -> None:
    produce(settings.kafka, settings.kafka.topics.transactions, b"not a transaction")
    loop = build_lake_writer(settings.kafka, settings.training, store)
    service = Background(loop.run)
    wait_until(alive_and(service, lambda: loop.writer.stats.rows >= expected), 90, "archive")
    service.finish()
    assert (loop.writer.stats.rows, loop.writer.stats.invalid) == (expected, 1)


def register_weak_champion(settings: Settings, store: LocalStore, client: Any) -> str:
    job = TrainingJob.from_settings(settings)
    weak = replace(job, config=TrainConfig(num_boost_round=1, max_depth=1))
    as_of = pd.Timestamp(datetime.now(UTC))
    transactions, labels = load_lake(store, as_of, DAYS)
    run = train_and_publish(
        client, weak, dataset_splits(transactions, labels, as_of, weak.plan), as_of
    )
    assert run.result.promoted
    return run.result.version


def model_updates(settings: Settings, count: int) -> list[ModelUpdate]:
    messages = consume_all(
        settings.kafka.bootstrap_servers,
        settings.kafka.topics.model_updates,
        until=lambda found: len(found) >= count,
        timeout=30,
    )
    return [ModelUpdate.model_validate_json(message.value() or b"") for message in messages]


def test_a_retrain_request_trains_promotes_and_announces_once(
    kafka_bootstrap: str, topics: TopicNames, mlflow_server: MlflowServer, tmp_path: Path
) -> None:
    settings = loop_settings(kafka_bootstrap, topics, mlflow_server.tracking_uri, tmp_path / "lake")
    store, config = LocalStore(tmp_path / "lake"), simulator_config()
    archive_through_the_lake_writer(settings, store, write_history(config, store, settings.kafka))
    lake_transactions, _ = load_lake(store, pd.Timestamp(datetime.now(UTC)), DAYS)
    simulated, _ = generate_history(config, DAYS)
    assert sorted(lake_transactions["transaction_id"]) == sorted(simulated["transaction_id"])

    client = client_for(mlflow_server.tracking_uri)
    assert register_weak_champion(settings, store, client) == "1"

    with ThreadPoolExecutor(max_workers=1) as executor:
        consumer = build_retrain_consumer(settings, executor)
        service = Background(consumer.run)
        loop = Loop(settings, StoreLedger(store), client, consumer, service)
        request = loop.send_new_request()
        loop.check_trained_promoted_and_announced(request)
        loop.check_a_repeat_is_skipped(request)
        loop.check_a_lost_ledger_entry_is_rebuilt_without_training(request)
        service.finish()


@dataclass
class Loop:
    """The running training consumer and what the test observes it through."""

    settings: Settings
    ledger: StoreLedger
    client: Any
    consumer: RetrainConsumer
    service: Background

    @property
    def name(self) -> str:
        return self.settings.mlflow.model_name

    def send(self, request: RetrainRequest) -> None:
        topic = self.settings.kafka.topics.retrain_requests
        produce(self.settings.kafka, topic, request.to_bytes())

    def send_new_request(self) -> RetrainRequest:
        now = datetime.now(UTC)
        request = RetrainRequest(
            request_id=f"drift-{uuid.uuid4().hex[:8]}",
            requested_at=now,
            window_start=now - timedelta(days=7),
            window_end=now - timedelta(days=1),
        )
        self.send(request)
        return request

    def wait_handled(self, count: int, timeout: float) -> None:
        handled = alive_and(self.service, lambda: self.consumer.stats.handled == count)
        wait_until(handled, timeout, f"{count} requests handled")

    def versions(self) -> int:
        return len(self.client.search_model_versions(f"name = '{self.name}'"))

    def check_trained_promoted_and_announced(self, request: RetrainRequest) -> None:
        self.wait_handled(1, 120)
        outcome = self.ledger.get(request.request_id)
        assert outcome is not None
        assert (outcome.model_version, outcome.promoted, outcome.recovered) == ("2", True, False)
        assert outcome.fraud_labels is not None
        assert outcome.fraud_labels >= self.settings.training.min_fraud_labels
        assert aliases(self.client, self.name)["champion"] == "2"
        params = self.client.get_run(outcome.run_id).data.params
        assert params[REQUEST_PARAM] == request.request_id
        (update,) = model_updates(self.settings, 1)
        assert (update.model_version, update.model_uri, update.run_id) == (
            "2",
            f"models:/{self.name}/2",
            outcome.run_id,
        )

    def check_a_repeat_is_skipped(self, request: RetrainRequest) -> None:
        self.send(request)
        self.wait_handled(2, 60)
        assert self.consumer.stats.duplicates == 1
        assert self.versions() == 2
        assert len(model_updates(self.settings, 1)) == 1

    def check_a_lost_ledger_entry_is_rebuilt_without_training(
        self, request: RetrainRequest
    ) -> None:
        """As after a crash between publishing and recording: the run is there, the entry not."""
        store = self.ledger.store
        assert isinstance(store, LocalStore)
        (store.root / self.ledger.key(request.request_id)).unlink()
        self.send(request)
        self.wait_handled(3, 60)
        recovered = self.ledger.get(request.request_id)
        assert recovered is not None
        assert (recovered.model_version, recovered.recovered) == ("2", True)
        assert self.versions() == 2
        # Still the champion, so it is announced again: harmless for workers serving it.
        assert [u.model_version for u in model_updates(self.settings, 2)] == ["2", "2"]
