"""Kafka security end to end: a worker and confluent-kafka clients authenticate with SCRAM,
on a SASL_PLAINTEXT listener and on a SASL_SSL one (SCRAM inside TLS).

A private broker (deploy/kafka/broker.sh on free ports, in its own folder; the team's broker on
9092 is never touched) gets both opt-in listeners (KAFKA_SASL_PORT, KAFKA_SASL_SSL_PORT). Its
PLAINTEXT listener is only for the admin steps: the user is created there with Kafka's own config
tool (deploy/bin/kafka-configs). Every secret is made here and lives only in this test run: the
user's password, and for TLS a throwaway CA, the broker's certificate (SAN IP:127.0.0.1, the
address clients connect to) and its PKCS12 keystore. The worker and the test's clients are given
the SASL listeners only, configured the way an operator would: FRAUDSTREAM_KAFKA__* variables,
read by stream_app.settings.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import faust
import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from pydantic import SecretStr

from stream_app.kafka import faust_credentials
from stream_app.schemas import Verdict
from stream_app.settings import KafkaSettings, TopicNames
from tests.factories import simulated_transactions
from tests.kafka_helpers import create_topics, unique_topics, wait_until
from tests.processes import free_port
from tests.workers import WorkerProcess, settings_env

REPO_ROOT = Path(__file__).resolve().parents[2]
BROKER_SH = REPO_ROOT / "deploy" / "kafka" / "broker.sh"
KAFKA_CONFIGS = REPO_ROOT / "deploy" / "bin" / "kafka-configs"
SCRIPT_TIMEOUT_S = 150  # broker.sh waits up to 60 s for readiness itself; this stops a hung one
MECHANISM = "SCRAM-SHA-512"
TRANSACTIONS = 200

StartWorker = Callable[[KafkaSettings], WorkerProcess]


# --- a throwaway certificate authority --------------------------------------------------------


def openssl(*args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, env=env, timeout=60)


def make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA valid for a day: (certificate, private key), both PEM."""
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    openssl(
        *("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"),
        *("-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", f"/CN={name}"),
        *("-addext", "basicConstraints=critical,CA:TRUE"),
        *("-addext", "keyUsage=critical,keyCertSign,cRLSign"),
    )
    return cert, key


def issue_certificate(
    folder: Path, ca: tuple[Path, Path], name: str, extensions: str
) -> tuple[Path, Path]:
    """A new key and a one-day certificate for it signed by ``ca``: (certificate, key), PEM."""
    key, request, cert = folder / f"{name}.key", folder / f"{name}.csr", folder / f"{name}.pem"
    extensions_file = folder / f"{name}.ext"
    extensions_file.write_text(extensions)
    openssl(
        *("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"),
        *("-keyout", str(key), "-out", str(request), "-subj", f"/CN={name}"),
    )
    ca_cert, ca_key = ca
    openssl(
        *("x509", "-req", "-in", str(request), "-CA", str(ca_cert), "-CAkey", str(ca_key)),
        *("-CAcreateserial", "-days", "1", "-extfile", str(extensions_file), "-out", str(cert)),
    )
    return cert, key


def make_broker_keystore(folder: Path, ca: tuple[Path, Path], password: str) -> Path:
    """The broker's key and a certificate for 127.0.0.1 signed by ``ca``, in a PKCS12 file.

    The SAN holds the IP address only: clients connect to 127.0.0.1 (the advertised listener),
    and a client that connects by another name must fail hostname verification.
    """
    cert, key = issue_certificate(
        folder,
        ca,
        "broker",
        "subjectAltName=IP:127.0.0.1\n"
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n",
    )
    keystore = folder / "broker.p12"
    # The password goes through the environment: a command line is visible to every user.
    openssl(
        *("pkcs12", "-export", "-in", str(cert), "-inkey", str(key), "-certfile", str(ca[0])),
        *("-name", "broker", "-out", str(keystore), "-passout", "env:KEYSTORE_PASSWORD"),
        env={**os.environ, "KEYSTORE_PASSWORD": password},
    )
    return keystore


@dataclass(frozen=True)
class Pki:
    ca: Path
    """The CA that signed the broker's certificate: what clients must trust."""
    other_ca: Path
    """A CA that signed nothing of ours: trusting it alone must not get a client in."""
    keystore: Path
    keystore_password: str
    client_cert: Path
    """A client certificate signed by ``ca``, for mutual TLS; its key is ``client_key``."""
    client_key: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    password = secrets.token_urlsafe(24)
    ca = make_ca(folder, "fraudstream-test-ca")
    other_ca, _ = make_ca(folder, "some-other-ca")
    keystore = make_broker_keystore(folder, ca, password)
    client_cert, client_key = issue_certificate(
        folder, ca, "scorer-client", "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n"
    )
    return Pki(ca[0], other_ca, keystore, password, client_cert, client_key)


# --- the private broker and its user ----------------------------------------------------------


@dataclass(frozen=True)
class SaslBroker:
    """A broker with a PLAINTEXT listener (admin only) and SASL_PLAINTEXT and SASL_SSL ones."""

    env: dict[str, str]
    plaintext: str
    listeners: dict[str, str]
    """Client address by security protocol."""

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=SCRIPT_TIMEOUT_S,
            check=False,
        )


def start_private_broker(
    state: Path, pki: Pki, with_sasl_plaintext: bool = True, client_ca: Path | None = None
) -> SaslBroker:
    """broker.sh on free ports with the SASL_SSL listener, and SASL_PLAINTEXT unless told not."""
    kafka_port, controller_port, sasl_ssl_port = free_port(), free_port(), free_port()
    listeners = {"SASL_SSL": f"127.0.0.1:{sasl_ssl_port}"}
    env = {key: value for key, value in os.environ.items() if not key.startswith("FRAUDSTREAM_")}
    env.update(
        KAFKA_LOCAL=str(state),
        KAFKA_LIBS=os.environ.get("KAFKA_LIBS", str(REPO_ROOT / ".local" / "kafka" / "libs")),
        KAFKA_PORT=str(kafka_port),
        CONTROLLER_PORT=str(controller_port),
        KAFKA_SASL_SSL_PORT=str(sasl_ssl_port),
        KAFKA_SSL_KEYSTORE=str(pki.keystore),
        KAFKA_SSL_KEYSTORE_PASSWORD=pki.keystore_password,
    )
    if with_sasl_plaintext:
        sasl_port = free_port()
        env["KAFKA_SASL_PORT"] = str(sasl_port)
        listeners["SASL_PLAINTEXT"] = f"127.0.0.1:{sasl_port}"
    if client_ca is not None:
        env["KAFKA_SSL_CLIENT_CA"] = str(client_ca)
    broker = SaslBroker(env, f"127.0.0.1:{kafka_port}", listeners)
    started = broker.run(str(BROKER_SH), "start")
    assert started.returncode == 0, started.stderr
    return broker


def create_scram_user(broker: SaslBroker) -> tuple[str, SecretStr]:
    """A user created with Kafka's own tool; the password exists only in this test run."""
    username, password = f"scorer-{uuid.uuid4().hex[:6]}", secrets.token_urlsafe(24)
    created = broker.run(
        *(str(KAFKA_CONFIGS), "--bootstrap-server", broker.plaintext, "--alter"),
        *("--entity-type", "users", "--entity-name", username),
        *("--add-config", f"{MECHANISM}=[password={password}]"),
    )
    assert created.returncode == 0, created.stderr
    return username, SecretStr(password)


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[SaslBroker]:
    broker = start_private_broker(tmp_path_factory.mktemp("kafka-sasl"), pki)
    yield broker
    broker.run(str(BROKER_SH), "stop")


@pytest.fixture(scope="module")
def scram_user(sasl_broker: SaslBroker) -> tuple[str, SecretStr]:
    return create_scram_user(sasl_broker)


@pytest.fixture
def sasl_topics(sasl_broker: SaslBroker, request: pytest.FixtureRequest) -> TopicNames:
    names = unique_topics(request.node.name[:24])
    create_topics(sasl_broker.plaintext, names)
    return names


def client_settings(
    broker: SaslBroker,
    protocol: str,
    topics: TopicNames,
    user: tuple[str, SecretStr],
    ca: Path | None = None,
) -> KafkaSettings:
    """What an operator would configure: ``ca`` is the CA file a SASL_SSL client trusts."""
    username, password = user
    return KafkaSettings.model_validate(
        {
            "bootstrap_servers": broker.listeners[protocol],
            "security_protocol": protocol,
            "sasl_mechanism": MECHANISM,
            "sasl_username": username,
            "sasl_password": password,
            "ssl_cafile": ca,
            "topics": topics,
        }
    )


def security_env(kafka: KafkaSettings) -> dict[str, str]:
    """The FRAUDSTREAM_KAFKA__* variables for the security fields that are set."""
    fields = {
        "SECURITY_PROTOCOL": kafka.security_protocol,
        "SASL_MECHANISM": kafka.sasl_mechanism,
        "SASL_USERNAME": kafka.sasl_username,
        "SASL_PASSWORD": kafka.sasl_password.get_secret_value() if kafka.sasl_password else None,
        "SSL_CAFILE": kafka.ssl_cafile,
    }
    return {f"FRAUDSTREAM_KAFKA__{name}": str(value) for name, value in fields.items() if value}


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
        env.update(security_env(kafka))
        worker = WorkerProcess(env, port, tmp_path / f"worker-{index}.log")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


# --- helpers ----------------------------------------------------------------------------------


def is_ready(worker: WorkerProcess) -> bool:
    try:
        with urllib.request.urlopen(f"{worker.url}/health", timeout=2) as response:  # noqa: S310
            return bool(json.load(response)["ready"])
    except urllib.error.HTTPError:  # 503: up, not ready yet
        return False
    except OSError:  # not listening yet
        return False


def read_verdicts(kafka: KafkaSettings, expected: int, timeout: float) -> list[Verdict]:
    """The scores topic from the beginning, read with the same security settings."""
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


def confluent_refusal(kafka: KafkaSettings, code: int) -> str:
    """Produces with ``kafka``'s settings until the client reports ``code``; returns that error."""
    errors: list[KafkaError] = []
    producer = Producer({**kafka.confluent_config(), "error_cb": errors.append})
    producer.produce(kafka.topics.transactions, b"{}", b"k")

    def refused() -> bool:
        producer.poll(0.2)
        return any(error.code() == code for error in errors)

    try:
        wait_until(refused, timeout=60, what=f"error {code} for the confluent client: {errors}")
    finally:
        producer.purge()
    return next(error.str() for error in errors if error.code() == code)


class RecordingHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def confluent_logs(kafka: KafkaSettings, text: str) -> None:
    """Produces with ``kafka``'s settings until librdkafka logs ``text``.

    For a refusal librdkafka reports only in its log: with TLS 1.3 a client finishes its side of
    the handshake before the broker rejects its certificate, which looks like a lost connection.
    """
    handler = RecordingHandler()
    logger = logging.getLogger(f"rdkafka-{uuid.uuid4().hex[:8]}")
    logger.propagate = False
    logger.addHandler(handler)
    producer = Producer({**kafka.confluent_config(), "logger": logger})
    producer.produce(kafka.topics.transactions, b"{}", b"k")

    def logged() -> bool:
        producer.poll(0.2)
        return any(text in record.getMessage() for record in handler.records)

    try:
        wait_until(logged, timeout=60, what=f"librdkafka logging {text!r}")
    finally:
        producer.purge()


def faust_tls_handshake(kafka: KafkaSettings, server_hostname: str) -> None:
    """A TLS handshake with the SSL context the worker hands to aiokafka, as aiokafka makes it.

    Raises ssl.SSLCertVerificationError when the broker's certificate is not trusted.
    """
    credentials = faust_credentials(kafka)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.ssl_context is not None
    host, port = kafka.bootstrap_servers.rsplit(":", 1)
    with (
        socket.create_connection((host, int(port)), timeout=10) as raw,
        credentials.ssl_context.wrap_socket(raw, server_hostname=server_hostname),
    ):
        pass


# --- the tests --------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["SASL_PLAINTEXT", "SASL_SSL"])
def test_worker_and_clients_authenticate_with_scram(
    protocol: str,
    sasl_broker: SaslBroker,
    scram_user: tuple[str, SecretStr],
    pki: Pki,
    sasl_topics: TopicNames,
    start_worker: StartWorker,
) -> None:
    ca = pki.ca if protocol == "SASL_SSL" else None
    kafka = client_settings(sasl_broker, protocol, sasl_topics, scram_user, ca)
    worker = start_worker(kafka)
    wait_until(
        lambda: is_ready(worker),
        timeout=120,
        what=f"{protocol} worker ready\n{worker.log_tail()}",
    )
    transactions = simulated_transactions(TRANSACTIONS, seed=41)
    producer = Producer(kafka.confluent_config())
    for txn in transactions:
        producer.produce(kafka.topics.transactions, txn.to_bytes(), txn.customer_id.encode())
    assert producer.flush(60) == 0, f"the confluent producer delivered over {protocol}"

    # Verdicts exist only if the Faust (aiokafka) consumer read the input over this listener and
    # the worker's confluent producer published them over it. With SASL_SSL, both clients had
    # to verify the broker's certificate against the throwaway CA named by
    # FRAUDSTREAM_KAFKA__SSL_CAFILE: no system trust store knows it.
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
    wrong_password = (username, SecretStr(secrets.token_urlsafe(24)))
    wrong = client_settings(sasl_broker, "SASL_PLAINTEXT", sasl_topics, wrong_password)

    confluent_refusal(wrong, KafkaError._AUTHENTICATION)

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


def test_a_client_trusting_another_ca_is_refused(
    sasl_broker: SaslBroker, scram_user: tuple[str, SecretStr], pki: Pki, sasl_topics: TopicNames
) -> None:
    trusting = client_settings(sasl_broker, "SASL_SSL", sasl_topics, scram_user, pki.ca)
    faust_tls_handshake(trusting, "127.0.0.1")  # the right CA gets through: the control

    wrong_ca = client_settings(sasl_broker, "SASL_SSL", sasl_topics, scram_user, pki.other_ca)
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
        faust_tls_handshake(wrong_ca, "127.0.0.1")
    error = confluent_refusal(wrong_ca, KafkaError._SSL)
    assert "certificate verify failed" in error


def test_a_broker_name_outside_its_certificate_is_refused(
    sasl_broker: SaslBroker, scram_user: tuple[str, SecretStr], pki: Pki, sasl_topics: TopicNames
) -> None:
    """Hostname verification is on: the right CA is not enough for a name the SAN lacks."""
    by_ip = client_settings(sasl_broker, "SASL_SSL", sasl_topics, scram_user, pki.ca)
    # The same listener by a name that resolves to it but is not in the certificate.
    by_name = by_ip.model_copy(
        update={"bootstrap_servers": by_ip.bootstrap_servers.replace("127.0.0.1", "localhost")}
    )
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        faust_tls_handshake(by_name, "localhost")
    error = confluent_refusal(by_name, KafkaError._SSL)
    assert "certificate verify failed" in error


def test_start_without_a_keystore_fails_before_the_jvm(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "KAFKA_LOCAL": str(tmp_path / "kafka"),
        "KAFKA_PORT": str(free_port()),
        "CONTROLLER_PORT": str(free_port()),
        "KAFKA_SASL_SSL_PORT": str(free_port()),
        "KAFKA_SSL_KEYSTORE": str(tmp_path / "missing.p12"),
        "KAFKA_SSL_KEYSTORE_PASSWORD": "unused",
    }
    result = subprocess.run(
        [str(BROKER_SH), "start"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0
    assert "KAFKA_SSL_KEYSTORE" in result.stderr and "not a readable file" in result.stderr
    assert not (tmp_path / "kafka" / "broker.pid").exists()


def test_mutual_tls_lets_in_only_clients_with_a_certificate_from_the_ca(
    tmp_path: Path, pki: Pki
) -> None:
    """KAFKA_SSL_CLIENT_CA: the SASL_SSL listener also wants a client certificate it trusts."""
    broker = start_private_broker(
        tmp_path / "kafka-mtls", pki, with_sasl_plaintext=False, client_ca=pki.ca
    )
    try:
        user = create_scram_user(broker)
        topics = unique_topics("mtls")
        create_topics(broker.plaintext, topics)
        without_cert = client_settings(broker, "SASL_SSL", topics, user, pki.ca)
        with_cert = without_cert.model_copy(
            update={"ssl_certfile": pki.client_cert, "ssl_keyfile": pki.client_key}
        )

        producer = Producer(with_cert.confluent_config())
        producer.produce(topics.transactions, b"{}", b"k")
        assert producer.flush(60) == 0, "delivered with a client certificate"

        confluent_logs(without_cert, "alert bad certificate")
    finally:
        broker.run(str(BROKER_SH), "stop")
