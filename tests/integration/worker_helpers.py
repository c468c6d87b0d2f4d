"""Helpers for tests that run real worker processes: produce, poll health and metrics, POST."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from stream_app.schemas import ModelUpdate
from stream_app.settings import TopicNames
from tests.kafka_helpers import wait_until
from tests.workers import WorkerFactory, WorkerProcess


def produce(bootstrap: str, topic: str, messages: Sequence[tuple[bytes | None, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for key, value in messages:
        producer.produce(topic, value, key)
    assert producer.flush(30) == 0


def metric(worker: WorkerProcess, name: str) -> float:
    with urllib.request.urlopen(f"{worker.url}/metrics", timeout=5) as response:  # noqa: S310
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and not line.startswith("#")
    )


def ready(worker: WorkerProcess) -> bool:
    assert worker.process.poll() is None, f"worker exited:\n{worker.log_tail()}"
    try:
        with urllib.request.urlopen(f"{worker.url}/health", timeout=2) as response:  # noqa: S310
            return bool(json.load(response)["ready"])
    except OSError:
        return False


def health(worker: WorkerProcess) -> dict[str, Any]:
    """The worker's /health answer (its body also when not ready), {} while it is not up."""
    try:
        with urllib.request.urlopen(f"{worker.url}/health", timeout=2) as response:  # noqa: S310
            answer: dict[str, Any] = json.load(response)
    except urllib.error.HTTPError as error:
        answer = json.load(error)
    except OSError:
        return {}
    return answer


def started_worker(
    worker_factory: WorkerFactory,
    topics: TopicNames,
    model: Path,
    extra_env: dict[str, str] | None = None,
    **worker_settings: str,
) -> WorkerProcess:
    worker = worker_factory(topics, model, extra_env, **worker_settings)
    wait_until(lambda: ready(worker), timeout=90, what="worker ready (partitions assigned)")
    return worker


def post(url: str, body: bytes) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(  # noqa: S310  # the tests' own loopback URLs
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


# --- model swaps: a second version of a model, announced on model-updates ---------------------


def relabelled_copy(model_dir: Path, target: Path, version: str) -> Path:
    """The same booster under another version number: a distinct model the swapper accepts."""
    shutil.copytree(model_dir, target)
    metadata = json.loads((target / "metadata.json").read_text())
    metadata["version"] = version
    (target / "metadata.json").write_text(json.dumps(metadata))
    return target


def announce(bootstrap: str, topics: TopicNames, folder: Path, version: str) -> None:
    name = json.loads((folder / "metadata.json").read_text())["name"]
    update = ModelUpdate(
        model_name=name,
        model_version=version,
        model_uri=str(folder),
        promoted_at=datetime.now(UTC),
    )
    produce(bootstrap, topics.model_updates, [(name.encode(), update.to_bytes())])


def swaps(worker: WorkerProcess, result: str) -> float:
    return metric(worker, f'fraudstream_model_swaps_total{{result="{result}"}}')
