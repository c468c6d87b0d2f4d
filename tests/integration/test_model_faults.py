"""Model faults against a real worker: a corrupt artifact, a model whose features do not match,
an unreachable registry. Each time the worker keeps scoring with the last good model and says
so: verdicts keep the old version, ``fraudstream_model_load_failures_total{reason}`` names the
fault, and a log line says the serving model was kept.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from stream_app.features import FEATURE_NAMES
from stream_app.schemas import Verdict
from stream_app.settings import TopicNames
from tests.factories import quantile_model, saved, simulated_transactions
from tests.integration.worker_helpers import (
    announce,
    metric,
    produce,
    relabelled_copy,
    started_worker,
    swaps,
)
from tests.kafka_helpers import consume_all, wait_until
from tests.processes import free_port
from tests.workers import WorkerFactory, WorkerProcess

KEPT = "keeping the serving model"
POLL_LOG_SECONDS = 300.0  # stream_app.worker.model_swap.POLL_FAILURE_LOG_SECONDS


def identity_of(model_dir: Path) -> tuple[str, str]:
    metadata = json.loads((model_dir / "metadata.json").read_text())
    return str(metadata["name"]), str(metadata["version"])


def failures(worker: WorkerProcess, reason: str) -> float:
    return metric(worker, f'fraudstream_model_load_failures_total{{reason="{reason}"}}')


def log_lines(worker: WorkerProcess, text: str) -> list[str]:
    return [
        line for line in worker.log_path.read_text(errors="replace").splitlines() if text in line
    ]


def assert_still_serving(
    kafka_bootstrap: str, topics: TopicNames, worker: WorkerProcess, model_dir: Path, seed: int
) -> None:
    """New traffic is scored, all of it by the model in ``model_dir``, and /metrics says so."""
    name, version = identity_of(model_dir)
    transactions = simulated_transactions(100, seed=seed)
    produce(
        kafka_bootstrap,
        topics.transactions,
        [(t.customer_id.encode(), t.to_bytes()) for t in transactions],
    )
    raw = consume_all(kafka_bootstrap, topics.scores, lambda m: len(m) >= 100, timeout=120)
    assert {Verdict.model_validate_json(m.value() or b"").model_version for m in raw} == {version}
    info = f'fraudstream_model_info{{model_name="{name}",model_version="{version}"}}'
    assert metric(worker, info) == 1
    assert swaps(worker, "success") == 0
    assert worker.process.poll() is None


def test_a_corrupt_artifact_keeps_the_last_good_model(
    kafka_bootstrap: str,
    topics: TopicNames,
    worker_factory: WorkerFactory,
    trained_model_dir: Path,
    tmp_path: Path,
) -> None:
    serving = identity_of(trained_model_dir)[1]
    corrupt = relabelled_copy(trained_model_dir, tmp_path / "corrupt", "3")
    (corrupt / "model.ubj").write_bytes(b"{truncated in transit")
    worker = started_worker(worker_factory, topics, trained_model_dir)

    announce(kafka_bootstrap, topics, corrupt, "3")
    wait_until(lambda: failures(worker, "corrupt_artifact") == 1, timeout=90, what="the refusal")

    assert_still_serving(kafka_bootstrap, topics, worker, trained_model_dir, seed=51)
    (line,) = log_lines(worker, KEPT)
    assert "version=3 result=load_failed reason=corrupt_artifact" in line
    assert f"serving_version={serving}" in line


def test_a_model_whose_features_do_not_match_is_refused(
    kafka_bootstrap: str,
    topics: TopicNames,
    worker_factory: WorkerFactory,
    trained_model_dir: Path,
    tmp_path: Path,
) -> None:
    serving = identity_of(trained_model_dir)[1]
    # A sound booster, trained on a feature list the worker does not compute.
    renamed = (*FEATURE_NAMES[:-1], "merchant_chargeback_rate_90d")
    mismatched = saved(quantile_model("4", names=renamed), tmp_path / "mismatched")
    worker = started_worker(worker_factory, topics, trained_model_dir)

    announce(kafka_bootstrap, topics, mismatched, "4")
    wait_until(lambda: failures(worker, "feature_mismatch") == 1, timeout=90, what="the refusal")

    assert_still_serving(kafka_bootstrap, topics, worker, trained_model_dir, seed=53)
    (line,) = log_lines(worker, KEPT)
    assert "version=4 result=invalid reason=feature_mismatch" in line
    assert "unexpected=['merchant_chargeback_rate_90d']" in line
    assert f"serving_version={serving}" in line


def test_an_unreachable_registry_is_counted_every_poll_and_logged_sparingly(
    kafka_bootstrap: str,
    topics: TopicNames,
    worker_factory: WorkerFactory,
    trained_model_dir: Path,
) -> None:
    serving = identity_of(trained_model_dir)[1]
    started = time.monotonic()
    worker = started_worker(
        worker_factory,
        topics,
        trained_model_dir,
        extra_env={
            # Nothing listens there; MLflow's own retries are switched off to poll faster.
            "FRAUDSTREAM_MLFLOW__TRACKING_URI": f"http://127.0.0.1:{free_port()}",
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
        },
        model_poll_seconds="1",
    )

    wait_until(
        lambda: failures(worker, "registry_error") >= 5, timeout=120, what="five failed polls"
    )
    assert_still_serving(kafka_bootstrap, topics, worker, trained_model_dir, seed=57)

    failed_polls = failures(worker, "registry_error")
    lines = log_lines(worker, "model registry poll failed")
    assert failed_polls >= 5
    # One line per streak, then at most one per interval: never one per poll.
    assert 1 <= len(lines) <= 1 + (time.monotonic() - started) // POLL_LOG_SECONDS
    assert KEPT in lines[0]
    assert "reason=registry_error" in lines[0]
    assert f"serving_version={serving} failed_polls=1" in lines[0]
