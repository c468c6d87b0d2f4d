"""The training consumer with fakes: ledger, readiness, once-only handling, queue and commits."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from stream_app.schemas import ModelUpdate, RetrainRequest
from stream_app.store import LocalStore
from tests.fakes import FakeMessage
from tests.kafka_helpers import wait_until
from training.registry import PublishResult
from training.retrain.consumer import Backoff, RetrainConsumer
from training.retrain.handler import (
    DatasetNotReady,
    Handled,
    NotReady,
    RetrainHandler,
    matured_fraud_labels,
)
from training.retrain.ledger import RequestOutcome, StoreLedger
from training.retrain.registry_runs import _filter_literal, registered_result

NOW = datetime(2025, 3, 20, 12, tzinfo=UTC)
DRIFT_START = NOW - timedelta(days=5)
NAME = "fraudstream-xgb"


def request(request_id: str = "r1", window_start: datetime = DRIFT_START) -> RetrainRequest:
    return RetrainRequest(
        request_id=request_id,
        requested_at=NOW - timedelta(days=1),
        window_start=window_start,
        window_end=NOW - timedelta(days=1),
    )


def lake_frames(
    frauds_after_drift: int, frauds_before: int = 3
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One fraud per transaction id, half a day apart, labelled an hour later."""
    before = [DRIFT_START - timedelta(hours=12 * (i + 1)) for i in range(frauds_before)]
    after = [DRIFT_START + timedelta(hours=12 * i) for i in range(frauds_after_drift)]
    stamps = before + after
    transactions = pd.DataFrame(
        {"transaction_id": [f"t{i}" for i in range(len(stamps))], "timestamp": stamps}
    )
    labels = pd.DataFrame(
        {
            "transaction_id": transactions["transaction_id"],
            "is_fraud": True,
            "labeled_at": [stamp + timedelta(hours=1) for stamp in stamps],
        }
    )
    return transactions, labels


# --- pure parts ----------------------------------------------------------------------------------


def test_matured_fraud_labels_count_frauds_known_now_of_transactions_since_the_drift() -> None:
    transactions = pd.DataFrame(
        {
            "transaction_id": ["old", "a", "b", "c", "legit", "late"],
            "timestamp": [
                DRIFT_START - timedelta(seconds=1),
                DRIFT_START,
                DRIFT_START + timedelta(days=1),
                DRIFT_START + timedelta(days=2),
                DRIFT_START + timedelta(days=2),
                DRIFT_START + timedelta(days=3),
            ],
        }
    )
    labels = pd.DataFrame(
        {
            "transaction_id": ["old", "a", "b", "c", "c", "legit", "late"],
            "is_fraud": [True, True, True, True, False, False, True],
            "labeled_at": [
                NOW - timedelta(days=4),
                NOW - timedelta(days=3),
                NOW - timedelta(days=2),
                NOW - timedelta(days=2),
                NOW - timedelta(days=1),  # c was relabelled legit: the latest label counts
                NOW - timedelta(days=1),
                NOW + timedelta(hours=1),  # not known yet
            ],
        }
    )
    since, as_of = pd.Timestamp(DRIFT_START), pd.Timestamp(NOW)
    assert matured_fraud_labels(transactions, labels, since, as_of) == 2  # a and b


def test_ledger_round_trips_and_keeps_odd_ids_inside_its_prefix(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    ledger = StoreLedger(store)
    outcome = RequestOutcome(
        request_id="../drift/2025-03-20T12:00",
        handled_at=NOW,
        run_id="abc",
        model_name=NAME,
        model_version="3",
        promoted=True,
    )
    assert ledger.get(outcome.request_id) is None
    ledger.record(outcome)
    assert ledger.get(outcome.request_id) == outcome
    assert store.list() == ["training/requests/%2E%2E%2Fdrift%2F2025-03-20T12%3A00.json"]
    assert ledger.get("../drift") is None


def test_backoff_doubles_to_its_cap_and_starts_over_after_reset() -> None:
    backoff = Backoff(first=300, maximum=1000)
    assert [backoff.next() for _ in range(4)] == [300, 600, 1000, 1000]
    backoff.reset()
    assert backoff.next() == 300


def test_filter_literal_quotes_with_a_mark_the_id_does_not_contain() -> None:
    assert _filter_literal("r-1") == "'r-1'"
    assert _filter_literal("it's") == '"it\'s"'
    assert _filter_literal("'\"") is None  # cannot be searched safely: no recovery lookup


@dataclass
class FakeVersion:
    name: str
    version: str
    tags: dict[str, str]


@dataclass
class FakeRegistryClient:
    versions: list[FakeVersion]
    champion: str

    def search_model_versions(self, filter_string: str) -> list[FakeVersion]:
        assert filter_string == "run_id = 'run-9'"
        return self.versions

    def get_registered_model(self, name: str) -> Any:
        return type("Model", (), {"aliases": {"champion": self.champion}})()


def test_registered_result_rebuilds_the_gate_from_tags_and_the_alias_now() -> None:
    tags = {"holdout_average_precision": "0.61", "champion_version_at_gate": "2"}
    client = FakeRegistryClient([FakeVersion("other", "1", {}), FakeVersion(NAME, "3", tags)], "3")
    result = registered_result(client, NAME, "champion", "run-9")
    assert result == PublishResult("run-9", "3", True, 0.61, "2", None)
    client.champion = "4"  # a later version took over: announcing 3 again would be wrong
    result = registered_result(client, NAME, "champion", "run-9")
    assert result is not None
    assert not result.promoted


# --- the handler -------------------------------------------------------------------------------


class MemoryLedger:
    def __init__(self) -> None:
        self.outcomes: dict[str, RequestOutcome] = {}

    def get(self, request_id: str) -> RequestOutcome | None:
        return self.outcomes.get(request_id)

    def record(self, outcome: RequestOutcome) -> None:
        self.outcomes[outcome.request_id] = outcome


@dataclass
class CountingTrainer:
    promoted: bool = True
    calls: list[str] = field(default_factory=list)
    gate: threading.Event | None = None  # when set, training waits for it

    def __call__(
        self, request: RetrainRequest, tx: pd.DataFrame, labels: pd.DataFrame, as_of: pd.Timestamp
    ) -> PublishResult:
        self.calls.append(request.request_id)
        if self.gate is not None:
            assert self.gate.wait(timeout=10)
        version = str(len(self.calls) + 1)
        return PublishResult(f"run-{version}", version, self.promoted, 0.7, "1", 0.5)


@dataclass
class Fakes:
    lake: tuple[pd.DataFrame, pd.DataFrame] = field(default_factory=lambda: lake_frames(5))
    ledger: MemoryLedger = field(default_factory=MemoryLedger)
    trainer: CountingTrainer = field(default_factory=CountingTrainer)
    updates: list[ModelUpdate] = field(default_factory=list)
    previous: dict[str, PublishResult] = field(default_factory=dict)

    def handler(self, min_fraud_labels: int = 5) -> RetrainHandler:
        return RetrainHandler(
            ledger=self.ledger,
            previous_run=self.previous.get,
            lake=lambda as_of: self.lake,
            trainer=self.trainer,
            announce=self.updates.append,
            model_name=NAME,
            champion_alias="champion",
            min_fraud_labels=min_fraud_labels,
            clock=lambda: NOW,
        )


def test_the_same_request_twice_trains_once_and_announces_once() -> None:
    fakes = Fakes()
    handler = fakes.handler()
    first, second = handler.handle(request()), handler.handle(request())
    assert fakes.trainer.calls == ["r1"]
    assert isinstance(first, Handled)
    assert isinstance(second, Handled)
    assert (first.duplicate, second.duplicate) == (False, True)
    assert second.outcome == first.outcome == fakes.ledger.outcomes["r1"]
    assert first.outcome.fraud_labels == 5
    assert fakes.updates == [
        ModelUpdate(
            model_name=NAME,
            model_version="2",
            alias="champion",
            model_uri=f"models:/{NAME}/2",
            promoted_at=NOW,
            run_id="run-2",
        )
    ]


def test_too_few_matured_fraud_labels_is_not_trained_nor_recorded_until_they_arrive() -> None:
    fakes = Fakes(lake=lake_frames(frauds_after_drift=4, frauds_before=50))
    handler = fakes.handler(min_fraud_labels=5)
    result = handler.handle(request())
    assert isinstance(result, NotReady)
    assert "4 fraud labels" in result.reason
    assert fakes.trainer.calls == []
    assert fakes.ledger.outcomes == {}
    fakes.lake = lake_frames(frauds_after_drift=5)
    assert isinstance(handler.handle(request()), Handled)
    assert fakes.trainer.calls == ["r1"]


def test_an_empty_lake_or_an_unsplittable_dataset_is_not_ready_either() -> None:
    fakes = Fakes()
    handler = fakes.handler()

    def no_lake(as_of: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
        raise ValueError("no data under lake/transactions/")

    handler.lake = no_lake
    assert handler.handle(request()) == NotReady("no data under lake/transactions/")

    def too_short(*args: Any) -> PublishResult:
        raise DatasetNotReady("history too short")

    handler.lake, handler.trainer = (lambda as_of: fakes.lake), too_short
    assert handler.handle(request()) == NotReady("history too short")
    assert fakes.ledger.outcomes == {}


def test_a_run_finished_before_a_crash_is_recorded_without_training_again() -> None:
    fakes = Fakes(previous={"r1": PublishResult("run-7", "7", True, 0.8, "6", 0.6)})
    result = fakes.handler().handle(request())
    assert fakes.trainer.calls == []
    assert isinstance(result, Handled)
    assert (result.outcome.model_version, result.outcome.recovered) == ("7", True)
    assert [update.model_version for update in fakes.updates] == ["7"]


def test_a_challenger_that_loses_is_recorded_but_not_announced() -> None:
    fakes = Fakes(trainer=CountingTrainer(promoted=False))
    result = fakes.handler().handle(request())
    assert isinstance(result, Handled)
    assert (result.outcome.promoted, result.outcome.model_update_sent) == (False, False)
    assert fakes.updates == []


# --- the consumer loop -------------------------------------------------------------------------


class FakeConsumer:
    def __init__(self) -> None:
        self.inbox: deque[FakeMessage] = deque()
        self.commits: list[int] = []
        self.next_offset = 100

    def send(self, *payloads: bytes) -> None:
        for payload in payloads:
            self.inbox.append(FakeMessage("retrain-requests", 0, self.next_offset, payload))
            self.next_offset += 1

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        taken = [self.inbox.popleft() for _ in range(min(num_messages, len(self.inbox)))]
        return taken

    def commit(self, message: FakeMessage, asynchronous: bool) -> None:
        assert not asynchronous
        self.commits.append(message.offset() + 1)


class InlineExecutor(Executor):
    """Runs the handler at submit: the loop's bookkeeping without threads."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_result(fn(*args, **kwargs))
        return future


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def loop_for(
    fakes: Fakes, executor: Executor, min_fraud_labels: int = 5
) -> tuple[RetrainConsumer, FakeConsumer, FakeClock]:
    consumer, clock = FakeConsumer(), FakeClock()
    loop = RetrainConsumer(
        consumer,
        fakes.handler(min_fraud_labels).handle,
        "retrain-requests",
        Backoff(first=60, maximum=600),
        executor,
        clock,
    )
    return loop, consumer, clock


def test_requests_are_handled_in_order_and_each_offset_committed_once_handled() -> None:
    fakes = Fakes()
    loop, consumer, _ = loop_for(fakes, InlineExecutor())
    consumer.send(
        request("a").to_bytes(), request("a").to_bytes(), b"not json", request("b").to_bytes()
    )
    for _ in range(6):
        loop.poll_once()
    assert fakes.trainer.calls == ["a", "b"]
    assert consumer.commits == [101, 102, 103, 104]
    assert (loop.stats.handled, loop.stats.duplicates, loop.stats.invalid) == (3, 1, 1)


def test_a_request_not_ready_stays_uncommitted_and_is_checked_again_after_the_backoff() -> None:
    fakes = Fakes(lake=lake_frames(frauds_after_drift=1))
    loop, consumer, clock = loop_for(fakes, InlineExecutor())
    consumer.send(request("a").to_bytes(), request("b").to_bytes())
    loop.poll_once()  # a: not ready
    loop.poll_once()
    assert (consumer.commits, fakes.trainer.calls, loop.stats.not_ready) == ([], [], 1)
    fakes.lake = lake_frames(frauds_after_drift=5)
    clock.now = 59.0
    loop.poll_once()
    assert consumer.commits == []  # b waits behind a, a waits for its backoff
    clock.now = 60.0
    for _ in range(4):
        loop.poll_once()
    assert not loop.busy
    assert fakes.trainer.calls == ["a", "b"]
    assert consumer.commits == [101, 102]


def test_requests_arriving_during_a_training_are_queued_behind_it() -> None:
    gate = threading.Event()
    fakes = Fakes(trainer=CountingTrainer(gate=gate))
    with ThreadPoolExecutor(max_workers=1) as executor:
        loop, consumer, _ = loop_for(fakes, executor)
        consumer.send(request("a").to_bytes())
        loop.poll_once()
        consumer.send(request("b").to_bytes(), request("c").to_bytes())
        wait_until(lambda: loop.poll_once() == 0 and len(loop.queue) == 3, 5, "b and c queued")
        assert fakes.trainer.calls == ["a"]
        assert consumer.commits == []
        gate.set()
        wait_until(lambda: loop.poll_once() >= 0 and not loop.busy, 10, "all handled")
    assert fakes.trainer.calls == ["a", "b", "c"]
    assert consumer.commits == [101, 102, 103]
