"""The Faust agent in Faust's test context: it batches, publishes once per batch, acks after."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from stream_app.metrics import create_worker_metrics
from stream_app.model_store import ModelStore
from stream_app.processor import BatchResult, BatchScorer
from stream_app.scoring import Thresholds
from stream_app.settings import Settings, WorkerSettings
from stream_app.state import ChangelogRecord
from stream_app.worker.app import create_app
from stream_app.worker.model_swap import ModelSwapper, create_swap_metrics
from stream_app.worker.parts import WorkerParts
from stream_app.worker.publisher import BatchDelivery
from tests.factories import amount_model, transaction


class RecordingPublisher:
    """Stands in for the Kafka publisher: keeps each batch's result and state changes. The
    broker's answers come when the test releases them (at once unless the test holds them)."""

    def __init__(self) -> None:
        self.results: list[BatchResult] = []
        self.state_writes: list[list[ChangelogRecord]] = []
        self.deliveries: list[BatchDelivery] = []
        self.confirmations = 0
        self.waiting = asyncio.Event()  # someone waits for the broker's answers
        self.released = asyncio.Event()
        self.released.set()
        self.changelog_topic: str | None = None

    def enqueue_outputs(self, result: BatchResult) -> BatchDelivery:
        self.results.append(result)
        return self._outstanding()

    def enqueue_state(self, changes: list[ChangelogRecord]) -> BatchDelivery:
        self.state_writes.append(changes)
        return self._outstanding()

    def _outstanding(self) -> BatchDelivery:
        delivery = BatchDelivery(failure_log=[])
        delivery.seal(1)  # one answer outstanding, given once released
        self.deliveries.append(delivery)
        return delivery

    def serve_deliveries(self) -> None:
        if self.results:
            self.waiting.set()
        if self.released.is_set():
            for delivery in self.deliveries:
                delivery.answered = 1

    def check_delivered(self, delivery: BatchDelivery, waited_seconds: float) -> None:
        assert delivery.done
        self.confirmations += 1


class QuietReader:
    """A topic reader with nothing to read."""

    def __init__(self) -> None:
        self.caught_up = threading.Event()
        self.caught_up.set()

    def start(self) -> None:
        """Nothing to start."""

    def drain(self) -> list[Any]:
        return []


def build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, RecordingPublisher, BatchScorer]:
    settings = Settings(worker=WorkerSettings(data_dir=tmp_path))
    metrics = create_worker_metrics()
    model = amount_model()
    scorer = BatchScorer(model, Thresholds(review=0.5, block=0.9), metrics)
    publisher = RecordingPublisher()
    swapper = ModelSwapper(model, ModelStore(None), create_swap_metrics(metrics.registry))
    parts = WorkerParts(scorer, publisher, QuietReader(), QuietReader(), swapper)  # type: ignore[arg-type]
    app = create_app(settings, parts)
    # No broker in the test context: each partition's high watermark is 10 here.
    monkeypatch.setattr(app.consumer, "highwater", lambda tp: 10)
    return app, publisher, scorer


def outputs(publisher: RecordingPublisher) -> int:
    return sum(len(r.verdicts) + len(r.dead_letters) for r in publisher.results)


async def until(condition: Any, deadline_seconds: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_seconds
    while not condition():
        assert loop.time() < deadline, "timed out waiting for the agent"
        await asyncio.sleep(0.01)


def test_agent_scores_puts_in_batches_and_writes_state_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, publisher, scorer = build(tmp_path, monkeypatch)
    agent = app.agents["stream_app.worker.app.score_transactions"]

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
    written = [c for write in publisher.state_writes for c in write]
    assert [v.transaction_id for v in verdicts] == [f"t{i}" for i in range(5)]
    assert [d.reason for d in letters] == ["invalid_json"]
    assert len(publisher.results) <= 6
    # Every batch's outputs confirmed, and every batch with state changes had them written.
    assert publisher.confirmations == len(publisher.results) + len(publisher.state_writes)
    assert {json.loads(c.key) for c in changes} == {"c0", "c1"}
    assert written == changes
    assert scorer.metrics.registry.get_sample_value("fraudstream_transactions_scored_total") == 5


def test_a_batch_is_acknowledged_only_after_its_outputs_are_confirmed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, publisher, scorer = build(tmp_path, monkeypatch)
    agent = app.agents["stream_app.worker.app.score_transactions"]
    publisher.released.clear()

    async def scenario() -> tuple[list[bool], list[bool], int]:
        async with agent.test_context() as test_agent:

            async def put(index: int) -> Any:
                value = transaction(f"t{index}", "c0", 20.0 + index, minutes=index)
                return await test_agent.put(value, key=b"c0", partition=0, wait=False)

            events = [await put(index) for index in range(3)]
            await until(publisher.waiting.is_set, deadline_seconds=10)
            # The first batch waits for the broker; the agent takes and scores the next meanwhile.
            events += [await put(index) for index in range(3, 5)]
            await until(lambda: outputs(publisher) == 5, deadline_seconds=10)
            held = [event.message.acked for event in events]
            state_written_while_held = len(publisher.state_writes)
            publisher.released.set()
            await until(lambda: all(e.message.acked for e in events), deadline_seconds=10)
            return held, [event.message.acked for event in events], state_written_while_held

    held, released, state_written_while_held = asyncio.run(scenario())
    assert held == [False] * 5, "nothing acknowledged before the broker confirmed it"
    assert state_written_while_held == 0, "state written before the outputs were confirmed"
    assert released == [True] * 5
    assert len(publisher.results) >= 2
    # Each batch changed c0's state: written once its outputs were confirmed, then confirmed.
    assert len(publisher.state_writes) == len(publisher.results)
    assert publisher.confirmations == 2 * len(publisher.results)
    lag = scorer.metrics.registry.get_sample_value("fraudstream_consumer_lag", {"partition": "0"})
    assert lag == 10 - 4 - 1  # high watermark 10, last offset 4


def test_the_app_creates_its_data_folder_with_its_parents(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nested = tmp_path / "new" / "container" / "worker"
    app, _, _ = build(nested, monkeypatch)
    assert nested.is_dir()
    assert app.conf.datadir == nested
