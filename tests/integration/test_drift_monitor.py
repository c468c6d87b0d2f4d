"""The drift monitor as users run it (``python -m drift.cli monitor``) on the real broker, and the
champion's reference loaded from a real MLflow server.

Verdicts are built from offline features and a stand-in score (no worker needed) and produced to
one partition of a fresh ``fraud-scores`` topic, so their order, and with it every window, is
known: windows of 1,000, three clean, then three with amounts x1.5 and a category mix change.
With two drifted windows required, the request must cover windows 3 and 4, exactly, once.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from drift.reference import RegistryReferences
from drift.trigger import FLAG_KEY, request_id
from drift.windows import Span
from stream_app.schemas import RetrainRequest
from stream_app.settings import TopicNames
from stream_app.store import LocalStore
from tests.drift_data import (
    COLUMNS,
    FIRST_EVENT,
    STEP,
    samples,
    shifted,
    verdict_payloads,
)
from tests.kafka_helpers import REPO_ROOT, consume_all, wait_until
from tests.processes import free_port
from tests.workers import settings_env

WINDOW = 1_000
CLEAN_WINDOWS = 3
DRIFTED_WINDOWS = 3


def verdict_stream() -> list[bytes]:
    _, pool = samples(seed=11)
    clean = pool.iloc[: CLEAN_WINDOWS * WINDOW]
    drifted = shifted(pool.iloc[: DRIFTED_WINDOWS * WINDOW], seed=5)
    return verdict_payloads(pd.concat([clean, drifted], ignore_index=True))


def produce(bootstrap: str, topic: str, payloads: list[bytes]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for payload in payloads:
        producer.produce(topic, payload, b"customer", partition=0)
        producer.poll(0)
    assert producer.flush(30) == 0


class MonitorProcess:
    def __init__(self, env: dict[str, str], reference: Path, log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        command = [sys.executable, "-m", "drift.cli", "monitor", "--reference", str(reference)]
        self.process = subprocess.Popen(
            [*command, "--review-threshold", "0.5"],
            env=env,
            cwd=REPO_ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log_tail(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()
        return self.process.returncode


@pytest.fixture
def monitor_env(kafka_bootstrap: str, topics: TopicNames, tmp_path: Path) -> dict[str, str]:
    drift = {
        "APP_ID": f"test-drift-{uuid.uuid4().hex[:8]}",
        "WINDOW_SIZE": str(WINDOW),
        "WINDOW_SECONDS": "3600",
        "MIN_WINDOW_ROWS": str(WINDOW),
        "CONSECUTIVE_WINDOWS": "2",
        "COOLDOWN_SECONDS": "3600",
        "AUTO_OFFSET_RESET": "earliest",
        "WEB_PORT": str(free_port()),
    }
    env = settings_env(kafka_bootstrap, topics)
    env.update({f"FRAUDSTREAM_DRIFT__{key}": value for key, value in drift.items()})
    env["FRAUDSTREAM_STORE__URI"] = str(tmp_path / "store")
    return env


@pytest.fixture
def reference_file(tmp_path: Path) -> Path:
    reference, _ = samples(seed=11)
    path = tmp_path / "reference.parquet"
    reference[list(COLUMNS)].to_parquet(path)
    return path


@pytest.fixture
def monitor(
    monitor_env: dict[str, str], reference_file: Path, tmp_path: Path
) -> Iterator[MonitorProcess]:
    process = MonitorProcess(monitor_env, reference_file, tmp_path / "monitor.log")
    yield process
    process.stop()


def metric(port: str, line_start: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    [line] = [line for line in text.splitlines() if line.startswith(line_start + " ")]
    return float(line.split()[-1])


def committed(bootstrap: str, group: str, topic: str) -> int | None:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        [position] = consumer.committed([TopicPartition(topic, 0)], timeout=10)
    finally:
        consumer.close()
    return position.offset if position.offset >= 0 else None


def test_monitor_requests_one_retrain_after_two_drifted_windows_and_reports_every_window(
    kafka_bootstrap: str,
    topics: TopicNames,
    monitor_env: dict[str, str],
    monitor: MonitorProcess,
    tmp_path: Path,
) -> None:
    payloads = verdict_stream()
    produce(kafka_bootstrap, topics.scores, payloads)

    messages = consume_all(
        kafka_bootstrap, topics.retrain_requests, lambda found: len(found) >= 1, timeout=180
    )
    assert len(messages) == 1, monitor.log_tail()
    request = RetrainRequest.model_validate_json(messages[0].value() or b"")
    first, last = CLEAN_WINDOWS * WINDOW, (CLEAN_WINDOWS + 2) * WINDOW - 1
    expected = Span(FIRST_EVENT + first * STEP, FIRST_EVENT + last * STEP)
    assert (request.window_start, request.window_end) == (expected.start, expected.end)
    assert request.request_id == request_id(expected)
    assert messages[0].key() == request.request_id.encode()
    assert {"amount_usd", "merchant_category_code"} <= set(request.drifted_features)

    store = LocalStore(tmp_path / "store")
    windows = CLEAN_WINDOWS + DRIFTED_WINDOWS
    wait_until(
        lambda: len(store.list("drift/reports/")) == 2 * windows, 120, "every window's reports"
    )
    assert RetrainRequest.model_validate_json(store.get_bytes(FLAG_KEY)) == request
    port = monitor_env["FRAUDSTREAM_DRIFT__WEB_PORT"]
    wait_until(
        lambda: metric(port, "fraudstream_drift_windows_checked_total") == windows,
        30,
        "the metrics of the last window",
    )
    assert metric(port, "fraudstream_retrain_requests_total") == 1
    group, scores = monitor_env["FRAUDSTREAM_DRIFT__APP_ID"], topics.scores
    wait_until(
        lambda: committed(kafka_bootstrap, group, scores) == len(payloads),
        30,
        "offsets committed after the last window",
    )
    assert monitor.stop() == 0, monitor.log_tail()


# --- the champion's reference, from a real MLflow server ----------------------------------------


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from tests.integration.mlflow_server import running_mlflow_server

    with running_mlflow_server(tmp_path_factory.mktemp("mlflow")) as server:
        yield server.tracking_uri


def test_registry_reference_follows_the_scoring_version_and_falls_back_to_the_champion(
    mlflow_uri: str,
) -> None:
    from stream_app import model_store
    from tests.training_data import (
        FAST,
        NAME,
        publish_model,
        synthetic_splits,
        with_shuffled_training_labels,
    )
    from training.train import train_model

    client = model_store.client_for(mlflow_uri)
    splits = synthetic_splits()
    champion = train_model(splits, config=FAST, name=NAME)
    assert publish_model(client, champion, splits).promoted
    challenger = train_model(with_shuffled_training_labels(splits), config=FAST, name=NAME)
    assert not publish_model(client, challenger, splits).promoted

    references = RegistryReferences(client, NAME, "champion", COLUMNS)
    first = references.champion()
    assert first.model_version == "1"
    assert len(first.frame) == min(len(splits.validation.frame), 5_000)
    assert list(first.frame.columns) == list(COLUMNS)
    assert first.review_threshold == champion.metadata.review_threshold
    second = references.for_version("2")
    assert second.model_version == "2"
    assert not second.frame["score"].equals(first.frame["score"])  # its own model's scores
    assert references.for_version("local-folder") is first
    assert references.default() is first
