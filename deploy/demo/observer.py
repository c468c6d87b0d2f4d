"""Reading the topics and the store while the demo runs: what the dashboard and summary show."""

from __future__ import annotations

import base64
import json
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from deploy.demo.planner import CAUGHT_UP_MS, NEW_CATEGORIES, RECENT, Plan
from deploy.demo.shadow import ShadowRuleStat, shadow_hits_of, shadow_rule_stats
from stream_app.schemas import ModelUpdate, RetrainRequest
from stream_app.settings import Settings
from stream_app.store import ObjectStore

log = logging.getLogger("demo")

# ---------------------------------------------------------------------------------------------
# Reading the topics and the store while the demo runs


@dataclass(frozen=True)
class Event:
    """A moment of the timeline: wall clock, and simulated time where it has one."""

    wall: datetime
    sim: datetime | None = None
    detail: str = ""

    def to_dict(self, started: datetime) -> dict[str, Any]:
        return {
            "wall": self.wall.isoformat(),
            "seconds": round((self.wall - started).total_seconds(), 1),
            "sim": None if self.sim is None else self.sim.isoformat(),
            "detail": self.detail,
        }


@dataclass(frozen=True)
class WindowSeen:
    start: datetime
    end: datetime
    rows: int
    drift_share: float
    drifted: bool
    features: tuple[str, ...]
    report: str


@dataclass(frozen=True)
class Alert:
    transaction_id: str
    decision: str
    score: float
    version: str
    reasons: tuple[str, ...]


@dataclass
class Tally:
    """Everything the demo has read from the topics and the store during the run."""

    transactions: int = 0
    produced: set[str] = field(default_factory=set)
    answered: set[str] = field(default_factory=set)
    timestamps: dict[str, datetime] = field(default_factory=dict)
    flagged: dict[str, bool] = field(default_factory=dict)
    version_of: dict[str, str] = field(default_factory=dict)
    labels: dict[str, bool] = field(default_factory=dict)
    fraud_labelled: set[str] = field(default_factory=set)
    decisions: Counter[str] = field(default_factory=Counter)
    dead_letters: Counter[str] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT))
    rate_marks: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=60))
    alerts: deque[Alert] = field(default_factory=lambda: deque(maxlen=6))
    windows: list[WindowSeen] = field(default_factory=list)
    requests: list[tuple[RetrainRequest, datetime]] = field(default_factory=list)
    updates: list[tuple[ModelUpdate, datetime]] = field(default_factory=list)
    outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)
    # shadow rule id -> transactions it would have fired on (a set: a verdict written twice
    # after a rebalance counts once)
    shadow_hits: dict[str, set[str]] = field(default_factory=dict)
    events: dict[str, Event] = field(default_factory=dict)
    last_version: str = "-"
    last_event_time: datetime | None = None

    @property
    def verdicts(self) -> int:
        return sum(self.decisions.values())

    @property
    def unanswered(self) -> int:
        return len(self.produced - self.answered)

    def fraud_labels_since(self, since: datetime) -> int:
        """What the training consumer waits for, as seen on the topics (the lake lags a little)."""
        oldest = datetime.min.replace(tzinfo=UTC)
        return sum(self.timestamps.get(tid, oldest) >= since for tid in self.fraud_labelled)

    def shadow_rules(self) -> list[ShadowRuleStat]:
        """Per shadow rule: hits so far and precision against the labels arrived so far."""
        return shadow_rule_stats(self.shadow_hits, self.labels)

    def note(self, name: str, event: Event) -> None:
        """First occurrence only: the timeline records when something first happened."""
        self.events.setdefault(name, event)

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(int(share * len(ordered)), len(ordered) - 1)] if ordered else 0.0

    def throughput(self) -> float:
        """Verdicts per second over the last ~10 seconds."""
        if len(self.rate_marks) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self.rate_marks[0], self.rate_marks[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0


class Observer:
    """Reads every topic of the run from its beginning (they were created empty for it) and
    the drift reports and retrain ledger from the run's store."""

    def __init__(self, settings: Settings, store: ObjectStore, plan: Plan) -> None:
        self.topics = settings.kafka.topics
        self.store = store
        self.drift_at = plan.drift_time
        self.live_from = plan.schedule.live_from
        self.tally = Tally()
        # fraud-scores partition -> offset of its first verdict on a live transaction scored
        # in time (the worker has caught up with the warm-up backlog)
        self.first_live: dict[int, int] = {}
        # the same without the latency condition: the fallback on a machine too slow to catch
        # up before the drift (the first windows then mix partitions far apart in time)
        self.first_live_late: dict[int, int] = {}
        self.seen_keys: set[str] = set()
        self.next_scan = 0.0
        self.consumer = Consumer(
            {
                **settings.kafka.confluent_config(),
                "group.id": "fraudstream-demo-observer",
                "enable.auto.commit": False,
            }
        )
        names = [
            self.topics.transactions,
            self.topics.scores,
            self.topics.dead_letters,
            self.topics.labels,
            self.topics.retrain_requests,
            self.topics.model_updates,
        ]
        metadata = self.consumer.list_topics(timeout=10)
        self.score_partitions = len(metadata.topics[self.topics.scores].partitions)
        self.consumer.assign(
            [
                TopicPartition(name, partition, OFFSET_BEGINNING)
                for name in names
                for partition in metadata.topics[name].partitions
            ]
        )

    def close(self) -> None:
        self.consumer.close()

    @property
    def live_offsets(self) -> list[TopicPartition] | None:
        """Where the live verdicts begin in every fraud-scores partition, once known."""
        chosen = self.first_live
        if len(chosen) < self.score_partitions:
            past_drift = (self.tally.last_event_time or self.live_from) >= self.drift_at
            if not past_drift or len(self.first_live_late) < self.score_partitions:
                return None
            log.warning("the worker is still catching up at the drift point: monitoring anyway")
            chosen = self.first_live_late
        topic = self.topics.scores
        return [TopicPartition(topic, p, o) for p, o in sorted(chosen.items())]

    def poll(self, timeout: float = 0.2) -> int:
        messages = self.consumer.consume(num_messages=5000, timeout=timeout)
        for message in messages:
            if message.error() is None:
                self._route(message)
        self.tally.rate_marks.append((time.monotonic(), self.tally.verdicts))
        if time.monotonic() >= self.next_scan:
            self.scan_store()
            self.next_scan = time.monotonic() + 2.0
        return len(messages)

    def _route(self, message: Message) -> None:
        topic, value = message.topic(), message.value() or b""
        handlers: dict[str, Callable[[bytes, Message], None]] = {
            self.topics.transactions: self._transaction,
            self.topics.scores: self._verdict,
            self.topics.dead_letters: self._dead_letter,
            self.topics.labels: self._label,
            self.topics.retrain_requests: self._request,
            self.topics.model_updates: self._update,
        }
        handlers[topic or ""](value, message)

    def _transaction(self, value: bytes, message: Message) -> None:
        tally = self.tally
        tally.transactions += 1
        decoded = _json_object(value)
        identifier = decoded.get("transaction_id") if decoded else None
        if not isinstance(identifier, str):
            identifier = f"{message.partition()}:{message.offset()}"
        tally.produced.add(identifier)
        stamp = _parse_time(decoded.get("timestamp")) if decoded else None
        if stamp is None:
            return
        tally.timestamps[identifier] = stamp
        if stamp >= self.drift_at:
            tally.note("drift_point", Event(utc_now(), self.drift_at, "first drifted transaction"))
        if decoded and decoded.get("merchant_category") in NEW_CATEGORIES:
            tally.note("new_category", Event(utc_now(), stamp, str(decoded["merchant_category"])))

    def _verdict(self, value: bytes, message: Message) -> None:
        decoded = _json_object(value) or {}
        tally = self.tally
        identifier, decision = str(decoded.get("transaction_id")), str(decoded.get("decision"))
        version = str(decoded.get("model_version"))
        tally.answered.add(identifier)
        tally.decisions[decision] += 1
        tally.versions[version] += 1
        tally.flagged[identifier] = decision != "approve"
        tally.version_of[identifier] = version
        tally.latencies.append(float(decoded.get("latency_ms", 0.0)))
        for rule_id in shadow_hits_of(decoded):
            tally.shadow_hits.setdefault(rule_id, set()).add(identifier)
        tally.last_event_time = _parse_time(decoded.get("event_time"))
        partition, latency = message.partition() or 0, float(decoded.get("latency_ms", 0.0))
        live = tally.last_event_time is not None and tally.last_event_time >= self.live_from
        if live and partition not in self.first_live_late:
            self.first_live_late[partition] = message.offset() or 0
        if live and latency < CAUGHT_UP_MS and partition not in self.first_live:
            self.first_live[partition] = message.offset() or 0
        scored = _parse_time(decoded.get("scored_at")) or utc_now()
        tally.note(f"version:{version}", Event(scored, tally.last_event_time, version))
        tally.last_version = version
        if decision != "approve":
            reasons = tuple(str(r.get("code")) for r in decoded.get("reasons", [])[:3])
            score = float(decoded.get("score", 0.0))
            tally.alerts.appendleft(Alert(identifier, decision, score, version, reasons))

    def _dead_letter(self, value: bytes, _message: Message) -> None:
        decoded = _json_object(value) or {}
        self.tally.dead_letters[str(decoded.get("reason"))] += 1
        original = base64.b64decode(str(decoded.get("original_value", "")))
        inner = _json_object(original)
        identifier = inner.get("transaction_id") if inner else None
        if not isinstance(identifier, str):
            identifier = f"{decoded.get('partition')}:{decoded.get('offset')}"
        self.tally.answered.add(identifier)

    def _label(self, value: bytes, _message: Message) -> None:
        decoded = _json_object(value) or {}
        identifier, fraud = str(decoded.get("transaction_id")), bool(decoded.get("is_fraud"))
        self.tally.labels[identifier] = fraud
        if fraud:
            self.tally.fraud_labelled.add(identifier)

    def _request(self, value: bytes, message: Message) -> None:
        request = RetrainRequest.model_validate_json(value)
        wall = _kafka_time(message)
        self.tally.requests.append((request, wall))
        self.tally.note("retrain_request", Event(wall, request.window_end, request.request_id))

    def _update(self, value: bytes, message: Message) -> None:
        update = ModelUpdate.model_validate_json(value)
        wall = _kafka_time(message)
        self.tally.updates.append((update, wall))
        self.tally.note("promotion", Event(wall, None, f"version {update.model_version}"))

    def scan_store(self) -> None:
        """New drift reports and retrain outcomes: the store is the record of both."""
        for key in self.store.list("drift/reports/"):
            if key.endswith("report.json") and key not in self.seen_keys:
                self.seen_keys.add(key)
                self._window(key)
        for key in self.store.list("training/requests/"):
            if key not in self.seen_keys:
                self.seen_keys.add(key)
                outcome = json.loads(self.store.get_bytes(key))
                self.tally.outcomes[str(outcome["request_id"])] = outcome

    def _window(self, key: str) -> None:
        summary = json.loads(self.store.get_bytes(key))["summary"]
        window = WindowSeen(
            start=datetime.fromisoformat(summary["span"]["start"]),
            end=datetime.fromisoformat(summary["span"]["end"]),
            rows=int(summary["rows"]),
            drift_share=float(summary["drift_share"]),
            drifted=bool(summary["drifted"]),
            features=tuple(summary.get("drifted_features", ())),
            report=self.store.uri(key),
        )
        self.tally.windows.append(window)
        self.tally.windows.sort(key=lambda seen: seen.end)
        if window.drifted:
            self.tally.note("first_drifted_window", Event(utc_now(), window.end, key))


def _json_object(value: bytes) -> dict[str, Any] | None:
    try:
        decoded = json.loads(value)
    except ValueError:
        return None
    return decoded if isinstance(decoded, dict) else None


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _kafka_time(message: Message) -> datetime:
    _, stamp = message.timestamp()
    return datetime.fromtimestamp(stamp / 1000, UTC) if stamp > 0 else utc_now()


def utc_now() -> datetime:
    return datetime.now(UTC)
