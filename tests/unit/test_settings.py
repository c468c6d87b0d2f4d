"""Settings come from FRAUDSTREAM_* variables, nested with __, and keep secrets secret."""

from __future__ import annotations

import os

import pytest

from stream_app.settings import Settings

pytestmark = pytest.mark.unit


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
    ]


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
