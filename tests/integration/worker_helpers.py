"""Helpers for tests that run real worker processes: produce, poll health and metrics, POST."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

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
