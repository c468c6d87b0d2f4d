"""Kafka security end to end: a worker and confluent-kafka clients authenticate with SCRAM.

A private broker (deploy/kafka/broker.sh on free ports, in its own folder; the team's broker on
9092 is never touched) gets the opt-in SASL listener (KAFKA_SASL_PORT). Its PLAINTEXT listener
is only for the admin steps: the user is created there with Kafka's own config tool
(deploy/bin/kafka-configs), with a password generated here and never written to the repo. The
worker and the test's clients are given the SASL listener only, configured the way an operator
would: FRAUDSTREAM_KAFKA__* variables, read by stream_app.settings.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from pydantic import SecretStr

from stream_app.schemas import Verdict
from stream_app.settings import KafkaSettings, TopicNames
from tests.conftest import WorkerProcess, settings_env
from tests.integration.test_worker_e2e import simulated_transactions
from tests.kafka_helpers import create_topics, unique_topics, wait_until
from tests.processes import free_port

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
BROKER_SH = REPO_ROOT / "deploy" / "kafka" / "broker.sh"
KAFKA_CONFIGS = REPO_ROOT / "deploy" / "bin" / "kafka-configs"
SCRIPT_TIMEOUT_S = 150  # broker.sh waits up to 60 s for readiness itself; this stops a hung one
MECHANISM = "SCRAM-SHA-512"
TRANSACTIONS = 200

StartWorker = Callable[[KafkaSettings], WorkerProcess]


@dataclass(frozen=True)
class SaslBroker:
    """A broker with a PLAINTEXT listener (admin only) and a SASL_PLAINTEXT one (clients)."""

    env: dict[str, str]
    plaintext: str
    sasl: str

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=SCRIPT_TIMEOUT_S,
            check=False,
        )


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SaslBroker]:
    kafka_port, controller_port, sasl_port = free_port(), free_port(), free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("FRAUDSTREAM_")}
    env.update(
        KAFKA_LOCAL=str(tmp_path_factory.mktemp("kafka-sasl")),
        KAFKA_LIBS=os.environ.get("KAFKA_LIBS", str(REPO_ROOT / ".local" / "kafka" / "libs")),
        KAFKA_PORT=str(kafka_port),
        CONTROLLER_PORT=str(controller_port),
        KAFKA_SASL_PORT=str(sasl_port),
    )
    broker = SaslBroker(env, f"127.0.0.1:{kafka_port}", f"127.0.0.1:{sasl_port}")
    started = broker.run(str(BROKER_SH), "start")
    assert started.returncode == 0, started.stderr
    yield broker
    broker.run(str(BROKER_SH), "stop")


@pytest.fixture(scope="module")
def scram_user(sasl_broker: SaslBroker) -> tuple[str, SecretStr]:
    """A user created with Kafka's own tool; the password exists only in this test run."""
    username, password = f"scorer-{uuid.uuid4().hex[:6]}", secrets.token_urlsafe(24)
    created = sasl_broker.run(
        *(str(KAFKA_CONFIGS), "--bootstrap-server", sasl_broker.plaintext, "--alter"),
        *("--entity-type", "users", "--entity-name", username),
        *("--add-config", f"{MECHANISM}=[password={password}]"),
    )
    assert created.returncode == 0, created.stderr
    return username, SecretStr(password)


@pytest.fixture
def sasl_topics(sasl_broker: SaslBroker, request: pytest.FixtureRequest) -> TopicNames:
    names = unique_topics(request.node.name[:24])
    create_topics(sasl_broker.plaintext, names)
    return names


def sasl_settings(
    broker: SaslBroker, topics: TopicNames, username: str, password: SecretStr
) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=broker.sasl,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism=MECHANISM,
        sasl_username=username,
        sasl_password=password,
        topics=topics,
    )


@pytest.fixture
def start_worker(tmp_path: Path, trained_model_dir: Path) -> Iterator[StartWorker]:
    """Starts workers configured by environment, as operators run them; stops them after."""
    started: list[WorkerProcess] = []

    def start(kafka: KafkaSettings) -> WorkerProcess:
        port, index = free_port(), len(started)
        env = settings_env(
            kafka.bootstrap_servers,
            kafka.topics,
            app_id=f"test-sasl-{uuid.uuid4().hex[:8]}",
            web_port=str(port),
            data_dir=str(tmp_path / f"worker-{index}"),
            model_path=str(trained_model_dir),
            model_poll_seconds="0",
        )
        env.update(
            FRAUDSTREAM_KAFKA__SECURITY_PROTOCOL=kafka.security_protocol,
            FRAUDSTREAM_KAFKA__SASL_MECHANISM=str(kafka.sasl_mechanism),
            FRAUDSTREAM_KAFKA__SASL_USERNAME=str(kafka.sasl_username),
            FRAUDSTREAM_KAFKA__SASL_PASSWORD=kafka.sasl_password.get_secret_value()
            if kafka.sasl_password
            else "",
        )
        worker = WorkerProcess(env, port, tmp_path / f"worker-{index}.log")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def is_ready(worker: WorkerProcess) -> bool:
    try:
        with urllib.request.urlopen(f"{worker.url}/health", timeout=2) as response:  # noqa: S310
            return bool(json.load(response)["ready"])
    except urllib.error.HTTPError:  # 503: up, not ready yet
        return False
    except OSError:  # not listening yet
        return False


def read_verdicts(kafka: KafkaSettings, expected: int, timeout: float) -> list[Verdict]:
    """The scores topic from the beginning, read over SASL with the same settings."""
    consumer = Consumer(
        {
            **kafka.confluent_config(),
            "group.id": f"test-reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(kafka.topics.scores, p, 0) for p in range(3)])
    verdicts: list[Verdict] = []
    deadline = time.monotonic() + timeout
    try:
        while len(verdicts) < expected and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=500, timeout=0.5):
                if message.error() is None:
                    verdicts.append(Verdict.model_validate_json(message.value() or b""))
    finally:
        consumer.close()
    return verdicts


def test_worker_and_clients_authenticate_with_scram_on_the_sasl_listener(
    sasl_broker: SaslBroker,
    scram_user: tuple[str, SecretStr],
    sasl_topics: TopicNames,
    start_worker: StartWorker,
) -> None:
    kafka = sasl_settings(sasl_broker, sasl_topics, *scram_user)
    worker = start_worker(kafka)
    wait_until(
        lambda: is_ready(worker),
        timeout=120,
        what=f"SASL worker ready\n{worker.log_tail()}",
    )
    transactions = simulated_transactions(TRANSACTIONS, seed=41)
    producer = Producer(kafka.confluent_config())
    for txn in transactions:
        producer.produce(kafka.topics.transactions, txn.to_bytes(), txn.customer_id.encode())
    assert producer.flush(60) == 0, "the confluent producer delivered over SASL"

    # Verdicts exist only if the Faust (aiokafka) consumer read the input over SASL and the
    # worker's confluent producer published them over SASL.
    verdicts = read_verdicts(kafka, TRANSACTIONS, timeout=120)
    assert sorted(v.transaction_id for v in verdicts) == sorted(
        t.transaction_id for t in transactions
    )
    password = scram_user[1].get_secret_value()
    assert password not in worker.log_path.read_text(errors="replace"), "no secret in the log"


def test_a_wrong_password_is_refused(
    sasl_broker: SaslBroker,
    scram_user: tuple[str, SecretStr],
    sasl_topics: TopicNames,
    start_worker: StartWorker,
) -> None:
    username, _ = scram_user
    wrong = sasl_settings(sasl_broker, sasl_topics, username, SecretStr(secrets.token_urlsafe(24)))

    errors: list[KafkaError] = []
    producer = Producer({**wrong.confluent_config(), "error_cb": errors.append})
    producer.produce(wrong.topics.transactions, b"{}", b"k")

    def refused() -> bool:
        producer.poll(0.2)
        return any(error.code() == KafkaError._AUTHENTICATION for error in errors)

    wait_until(refused, timeout=60, what="an authentication error for the confluent client")
    producer.purge()

    worker = start_worker(wrong)
    wait_until(
        lambda: "Authentication failed" in worker.log_path.read_text(errors="replace"),
        timeout=120,
        what=f"the worker logging the refused login\n{worker.log_tail()}",
    )
    wait_until(
        lambda: worker.process.poll() is not None,
        timeout=120,
        what="the worker giving up after the refused login",
    )
    assert worker.process.returncode != 0
    assert "Worker ready" not in worker.log_path.read_text(errors="replace")
