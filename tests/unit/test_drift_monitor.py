"""The monitor loop with in-memory Kafka stand-ins: what it checks, publishes and commits, in order.

The broker itself is exercised by ``tests/integration/test_drift_monitor.py``; here the consumer
and producer are fakes so that the order of effects (check, reports, request, flag, commit) can
be asserted message by message. The checks are the real Evidently ones.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import cast

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from drift.checks import report_prefix
from drift.cli import main
from drift.metrics import create_drift_metrics
from drift.monitor import DriftMonitor, MonitorParts, parse_row
from drift.reference import (
    METADATA_ARTIFACT,
    REFERENCE_ARTIFACT,
    FixedReference,
    Reference,
    ReferenceLoadError,
    load_reference_file,
)
from drift.trigger import FLAG_KEY, RetrainTrigger, TriggerPolicy, read_flag, read_streak
from drift.windows import Windower, WindowPolicy
from stream_app.kafka import DeliveryError
from stream_app.schemas import RetrainRequest, Verdict
from stream_app.store import LocalStore
from tests.drift_data import (
    COLUMNS,
    CONFIG,
    FIRST_EVENT,
    REVIEW_THRESHOLD,
    STEP,
    samples,
    shifted,
    verdict_payloads,
)
from tests.fakes import FakeMessage, FakeProducer

REQUESTS_TOPIC = "retrain-requests-test"
SCORES_TOPIC = "fraud-scores-test"


@dataclass
class FakeConsumer:
    messages: list[FakeMessage]
    store: LocalStore
    commits: list[dict[int, int]] = field(default_factory=list)
    reports_at_commit: list[list[str]] = field(default_factory=list)

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        batch, self.messages = self.messages[:num_messages], self.messages[num_messages:]
        return batch

    def commit(self, *, offsets: Sequence[TopicPartition], asynchronous: bool) -> None:
        assert not asynchronous
        assert {tp.topic for tp in offsets} == {SCORES_TOPIC}
        self.commits.append({tp.partition: tp.offset for tp in offsets})
        self.reports_at_commit.append(self.store.list("drift/reports/"))


def monitor_for(
    payloads: list[bytes], tmp_path: Path, producer: FakeProducer
) -> tuple[DriftMonitor, FakeConsumer, LocalStore]:
    store = LocalStore(tmp_path / "store")
    consumer = FakeConsumer(
        [FakeMessage(SCORES_TOPIC, 0, i, p) for i, p in enumerate(payloads)], store
    )
    reference, _ = samples(seed=11)
    parts = MonitorParts(
        consumer=cast(Consumer, consumer),
        producer=cast(Producer, producer),
        store=store,
        references=FixedReference(Reference(reference, REVIEW_THRESHOLD, "test")),
        config=CONFIG,
        windower=Windower(WindowPolicy(1_000, 3_600, 1_000), COLUMNS),
        trigger=RetrainTrigger(TriggerPolicy(2, timedelta(hours=1))),
        metrics=create_drift_metrics(),
        scores_topic=SCORES_TOPIC,
        requests_topic=REQUESTS_TOPIC,
    )
    return DriftMonitor(parts), consumer, store


def clean_then_drifted() -> list[bytes]:
    """1,000 clean verdicts, one garbage message, then 2,000 drifted ones (offsets 0..3000)."""
    _, pool = samples(seed=11)
    clean = verdict_payloads(pool.iloc[:1_000])
    drifted = verdict_payloads(shifted(pool.iloc[1_000:3_000], seed=5), FIRST_EVENT + 1_000 * STEP)
    return [*clean[:500], b"{not json", *clean[500:], *drifted]


def test_windows_are_checked_reported_requested_then_committed(tmp_path: Path) -> None:
    producer = FakeProducer()
    monitor, consumer, store = monitor_for(clean_then_drifted(), tmp_path, producer)
    results = [result for _ in range(4) for result in monitor.poll(timeout=0)]

    assert [result.drifted for result in results] == [False, True, True]
    assert consumer.commits == [{0: 1_001}, {0: 2_001}, {0: 3_001}]
    for index, result in enumerate(results):  # every window's reports exist before its commit
        prefix = report_prefix(result.span)
        assert [f"{prefix}report.html", f"{prefix}report.json"] == [
            key for key in consumer.reports_at_commit[index] if key.startswith(prefix)
        ]
    [(topic, value, key)] = producer.produced
    request = RetrainRequest.model_validate_json(value)
    assert (topic, key) == (REQUESTS_TOPIC, request.request_id.encode())
    assert (request.window_start, request.window_end) == (
        results[1].span.start,
        results[2].span.end,
    )
    assert read_flag(store) == request
    assert request.report_uri == results[2].report_uri

    registry = monitor.parts.metrics.registry
    assert registry.get_sample_value("fraudstream_drift_windows_checked_total") == 3
    assert registry.get_sample_value("fraudstream_retrain_requests_total") == 1
    assert registry.get_sample_value("fraudstream_drift_invalid_messages_total") == 1
    assert registry.get_sample_value("fraudstream_drift_share") == results[2].drift_share
    first = results[2].features[0]
    score = registry.get_sample_value("fraudstream_feature_drift_score", {"feature": first.name})
    assert score == first.score
    reference_rate = registry.get_sample_value("fraudstream_alert_rate", {"window": "reference"})
    assert reference_rate == results[2].alert_rate.reference


def test_an_unacknowledged_request_stops_the_monitor_before_the_commit(tmp_path: Path) -> None:
    monitor, consumer, store = monitor_for(clean_then_drifted(), tmp_path, FakeProducer(False))
    with pytest.raises(DeliveryError):
        for _ in range(4):
            monitor.poll(timeout=0)
    assert consumer.commits == [{0: 1_001}, {0: 2_001}]  # the third window will be read again
    assert not store.exists(FLAG_KEY)


def test_parse_row_takes_features_in_column_order_then_the_score() -> None:
    _, pool = samples(seed=11)
    [payload] = verdict_payloads(pool.iloc[:1])
    row = parse_row(payload, COLUMNS, partition=2, offset=9)
    expected = [*pool.iloc[0][list(COLUMNS[:-1])].astype("float64"), float(pool.iloc[0]["score"])]
    assert list(row.values) == pytest.approx(expected, rel=1e-7)
    assert (row.partition, row.offset, row.model_version) == (2, 9, "1")
    assert row.event_time == FIRST_EVENT.timestamp()
    no_features = Verdict.model_validate_json(payload).model_copy(update={"features": None})
    with pytest.raises(ValueError, match="no features"):
        parse_row(no_features.to_bytes(), COLUMNS, 0, 0)


def test_reference_file_is_checked_for_columns_and_rows(tmp_path: Path) -> None:
    reference, _ = samples(seed=11)
    path = tmp_path / "reference.parquet"
    reference.to_parquet(path)
    loaded = load_reference_file(path, COLUMNS, review_threshold=0.4)
    assert loaded.frame.equals(reference[list(COLUMNS)].astype("float32"))
    assert loaded.review_threshold == 0.4
    reference.drop(columns="score").to_parquet(path)
    with pytest.raises(ReferenceLoadError, match="score"):
        load_reference_file(path, COLUMNS)
    with pytest.raises(ReferenceLoadError, match="cannot read"):
        load_reference_file(tmp_path / "missing.parquet", COLUMNS)


def test_artifact_paths_match_what_training_logs() -> None:
    from training.registry import MODEL_ARTIFACT_PATH
    from training.registry import REFERENCE_ARTIFACT as TRAINING_REFERENCE

    assert REFERENCE_ARTIFACT == TRAINING_REFERENCE
    assert METADATA_ARTIFACT.startswith(f"{MODEL_ARTIFACT_PATH}/")


# --- the command line ----------------------------------------------------------------------------


def isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No FRAUDSTREAM_* from the caller's shell; MLflow variables main() sets are undone after."""
    for name in [key for key in os.environ if key.startswith("FRAUDSTREAM_")]:
        monkeypatch.delenv(name)
    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.setenv(name, os.environ.get(name, "2"))


def test_check_command_prints_the_result_and_writes_the_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    reference, pool = samples(seed=11)
    reference_path, current_path = tmp_path / "reference.parquet", tmp_path / "window.parquet"
    reference.to_parquet(reference_path)
    window = shifted(pool.iloc[:2_000], seed=5).assign(
        event_time=[FIRST_EVENT + index * STEP for index in range(2_000)]
    )
    window.to_parquet(current_path)
    isolated_environment(monkeypatch)
    monkeypatch.setenv("FRAUDSTREAM_STORE__URI", str(tmp_path / "store"))

    main(["check", str(current_path), "--reference", str(reference_path)])

    printed = json.loads(capsys.readouterr().out)
    assert printed["drifted"] is True
    assert printed["span"] == {
        "start": FIRST_EVENT.isoformat(),
        "end": (FIRST_EVENT + 1_999 * STEP).isoformat(),
    }
    assert printed["alert_rate"]["reference"] is None  # no threshold given, none in the sample
    store = LocalStore(tmp_path / "store")
    assert len(store.list("drift/reports/")) == 2
    assert printed["report_uri"] == store.uri(store.list("drift/reports/")[1])


def test_a_missing_reference_fails_with_one_line_and_status_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    isolated_environment(monkeypatch)
    with pytest.raises(SystemExit) as stopped:
        main(["--reference", str(tmp_path / "nothing.parquet")])
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("fraudstream-drift: cannot read reference")
    assert error.count("\n") == 1


def test_a_restarted_monitor_keeps_the_drift_streak(tmp_path: Path) -> None:
    """One drifted window, a restart, one more: the two in a row raise the request (k=2)."""
    payloads = clean_then_drifted()
    first, consumer, store = monitor_for(payloads[:2_001], tmp_path, FakeProducer())
    assert [r.drifted for _ in range(3) for r in first.poll(timeout=0)] == [False, True]
    assert first.parts.trigger.streak == 1
    assert consumer.commits == [{0: 1_001}, {0: 2_001}]

    producer = FakeProducer()
    second, _, _ = monitor_for(payloads[2_001:], tmp_path, producer)  # same store
    state = read_streak(store)
    assert state is not None and state.length == 1
    second.parts.trigger.restore(state)  # as drift.cli.build_parts does
    assert [r.drifted for _ in range(3) for r in second.poll(timeout=0)] == [True]
    [(_, value, _)] = producer.produced
    assert RetrainRequest.model_validate_json(value).request_id
    assert read_streak(store) == second.parts.trigger.state()
