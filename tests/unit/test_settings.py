"""Settings come from FRAUDSTREAM_* variables, nested with __, and keep secrets secret."""

from __future__ import annotations

import os
import ssl
import subprocess
from pathlib import Path

import pytest

from stream_app.settings import Settings


def test_defaults_bind_to_loopback_and_name_the_topics(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [key for key in os.environ if key.startswith("FRAUDSTREAM_")]:
        monkeypatch.delenv(name)
    settings = Settings()
    assert settings.worker.web_host == "127.0.0.1"
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert settings.kafka.topics.all() == [
        "transactions",
        "fraud-alerts",
        "fraud-scores",
        "transaction-labels",
        "transactions-dlq",
        "retrain-requests",
        "model-updates",
        "fraud-rules",
    ]
    assert settings.kafka.topics.compacted() == ["fraud-rules"]


def test_nested_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUDSTREAM_KAFKA__BOOTSTRAP_SERVERS", "b1:9092,b2:9092")
    monkeypatch.setenv("FRAUDSTREAM_KAFKA__TOPICS__ALERTS", "alerts-eu")
    monkeypatch.setenv("FRAUDSTREAM_WORKER__BATCH_SIZE", "250")
    settings = Settings()
    assert settings.kafka.bootstrap_servers == "b1:9092,b2:9092"
    assert settings.kafka.topics.alerts == "alerts-eu"
    assert settings.kafka.topics.transactions == "transactions"
    assert settings.worker.batch_size == 250


def test_sasl_password_is_secret_but_reaches_the_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUDSTREAM_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("FRAUDSTREAM_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("FRAUDSTREAM_KAFKA__SASL_USERNAME", "scorer")
    monkeypatch.setenv("FRAUDSTREAM_KAFKA__SASL_PASSWORD", "hunter2")
    settings = Settings()
    assert "hunter2" not in repr(settings)
    config = settings.kafka.confluent_config()
    assert config["sasl.password"] == "hunter2"
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"


def test_invalid_values_fail_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUDSTREAM_WORKER__WEB_PORT", "70000")
    with pytest.raises(ValueError, match="web_port"):
        Settings()


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_settings_reach_confluent_and_faust_alike(
    monkeypatch: pytest.MonkeyPatch, mechanism: str
) -> None:
    """One set of variables configures both client stacks: librdkafka (publisher, readers) and
    aiokafka (Faust's consumer and producer). A difference would fail only in production."""
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    from stream_app.kafka import faust_credentials

    monkeypatch.setenv("FRAUDSTREAM_KAFKA__SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("FRAUDSTREAM_KAFKA__SASL_MECHANISM", mechanism)
    monkeypatch.setenv("FRAUDSTREAM_KAFKA__SASL_USERNAME", "scorer")
    monkeypatch.setenv("FRAUDSTREAM_KAFKA__SASL_PASSWORD", "hunter2")
    kafka = Settings().kafka

    confluent = kafka.confluent_config()
    aiokafka = credentials_to_aiokafka_auth(faust_credentials(kafka))

    assert (confluent["security.protocol"], aiokafka["security_protocol"]) == (
        "SASL_PLAINTEXT",
    ) * 2
    assert confluent["sasl.mechanism"] == aiokafka["sasl_mechanism"] == mechanism
    assert confluent["sasl.username"] == aiokafka["sasl_plain_username"] == "scorer"
    assert confluent["sasl.password"] == aiokafka["sasl_plain_password"] == "hunter2"
    assert aiokafka["ssl_context"] is None
    assert "hunter2" not in repr(faust_credentials(kafka))


def test_tls_files_reach_confluent_and_faust_alike(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """SASL_SSL: the CA file both stacks trust is the configured one."""
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    from stream_app.kafka import faust_credentials

    cafile = _self_signed_ca(tmp_path)
    monkeypatch.setenv("FRAUDSTREAM_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("FRAUDSTREAM_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("FRAUDSTREAM_KAFKA__SASL_USERNAME", "scorer")
    monkeypatch.setenv("FRAUDSTREAM_KAFKA__SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("FRAUDSTREAM_KAFKA__SSL_CAFILE", str(cafile))
    kafka = Settings().kafka

    confluent = kafka.confluent_config()
    aiokafka = credentials_to_aiokafka_auth(faust_credentials(kafka))

    assert confluent["security.protocol"] == aiokafka["security_protocol"] == "SASL_SSL"
    assert confluent["ssl.ca.location"] == str(cafile)
    context: ssl.SSLContext = aiokafka["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    subjects = [str(ca["subject"]) for ca in context.get_ca_certs()]
    assert len(subjects) == 1 and "fraudstream-test-ca" in subjects[0]


def _self_signed_ca(folder: Path) -> Path:
    """A throwaway CA certificate, made with openssl the way an operator would."""
    cafile, key = folder / "ca.pem", folder / "ca.key"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=fraudstream-test-ca", "-keyout", str(key), "-out", str(cafile)),
        ],
        check=True,
        capture_output=True,
    )
    return cafile
