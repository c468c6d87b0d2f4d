"""The Faust agent in Faust's test context: it batches, publishes once per batch, acks after."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from stream_app.app import create_app
from stream_app.metrics import create_worker_metrics
from stream_app.model_store import ModelStore
from stream_app.model_swap import ModelSwapper, create_swap_metrics
from stream_app.parts import WorkerParts
from stream_app.processor import BatchResult, BatchScorer
from stream_app.scoring import Thresholds
from stream_app.settings import Settings, WorkerSettings
from tests.unit.test_processor import amount_model, transaction

pytestmark = pytest.mark.agents


class RecordingPublisher:
    """Stands in for the Kafka publisher: keeps each batch's result and counts flushes."""

    def __init__(self) -> None:
        self.results: list[BatchResult] = []
        self.flushes = 0
        self.changelog_topic: str | None = None

    def enqueue(self, result: BatchResult) -> None:
        self.results.append(result)

    def flush(self, timeout_seconds: float) -> None:
        self.flushes += 1


class QuietReader:
    """A topic reader with nothing to read."""

    def __init__(self) -> None:
        self.caught_up = threading.Event()
        self.caught_up.set()

    def start(self) -> None:
        """Nothing to start."""

    def drain(self) -> list[Any]:
        return []


def build(tmp_path: Path) -> tuple[Any, RecordingPublisher, BatchScorer]:
    settings = Settings(worker=WorkerSettings(data_dir=tmp_path, batch_within_seconds=0.05))
    metrics = create_worker_metrics()
    model = amount_model()
    scorer = BatchScorer(model, Thresholds(review=0.5, block=0.9), metrics)
    publisher = RecordingPublisher()
    swapper = ModelSwapper(model, ModelStore(None), create_swap_metrics(metrics.registry))
    parts = WorkerParts(scorer, publisher, QuietReader(), QuietReader(), swapper)  # type: ignore[arg-type]
    return create_app(settings, parts), publisher, scorer


def outputs(publisher: RecordingPublisher) -> int:
    return sum(len(r.verdicts) + len(r.dead_letters) for r in publisher.results)


async def until(condition: Any, deadline_seconds: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_seconds
    while not condition():
        assert loop.time() < deadline, "timed out waiting for the agent"
        await asyncio.sleep(0.01)


def test_agent_scores_puts_in_batches_and_writes_state_changes(tmp_path: Path) -> None:
    app, publisher, scorer = build(tmp_path)
    agent = app.agents["stream_app.app.score_transactions"]

    async def scenario() -> None:
        async with agent.test_context() as test_agent:
            for index in range(5):
                value = transaction(f"t{index}", f"c{index % 2}", 20.0 + index, minutes=index)
                key = f"c{index % 2}".encode()
                await test_agent.put(value, key=key, partition=index % 2, wait=False)
            await test_agent.put(b"{broken", key=b"c9", partition=1, wait=False)
            await until(lambda: outputs(publisher) == 6, deadline_seconds=10)

    asyncio.run(scenario())
    verdicts = [v for result in publisher.results for v in result.verdicts]
    letters = [d for result in publisher.results for d in result.dead_letters]
    changes = [c for result in publisher.results for c in result.state_changes]
    assert [v.transaction_id for v in verdicts] == [f"t{i}" for i in range(5)]
    assert [d.reason for d in letters] == ["invalid_json"]
    assert publisher.flushes == len(publisher.results) <= 6
    assert {json.loads(c.key) for c in changes} == {"c0", "c1"}
    assert scorer.metrics.registry.get_sample_value("fraudstream_transactions_scored_total") == 5
