"""The progress watchdog on a real worker and broker: a partition made to stall on purpose is
caught (log, counter, /health, exit code); an idle worker on a quiet topic never fires.

The stall is made with a test-only hook (``sitecustomize`` on the worker's PYTHONPATH, as the
fault tests inject their bug): a timer pauses one partition of ``transactions`` through Faust's
own ``Consumer.pause_partitions``, again and again, so that a recovery's resume cannot undo it.
The worker's fetch position on that partition then stops while records keep arriving: the
symptom of issue 17's lost partition, whatever its cause.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

from stream_app.settings import TopicNames
from stream_app.worker.watchdog import EXIT_STALLED
from tests.integration.fault_helpers import VerdictReader, simulated_transactions
from tests.integration.worker_helpers import metric, produce, started_worker
from tests.kafka_helpers import REPO_ROOT, wait_until
from tests.workers import WorkerFactory, WorkerProcess

PAUSED_PARTITION = 1
STALL_SECONDS = 6.0  # checks every 2 s

PAUSE_ONE_PARTITION = """
import os, sys
sys.path.insert(0, os.environ["FAULT_REPO_ROOT"])
from faust.types import TP
import stream_app.worker.app as worker_app

_create_app = worker_app.create_app

def create_app(settings, parts):
    app = _create_app(settings, parts)
    paused = TP(settings.kafka.topics.transactions, int(os.environ["FAULT_PAUSED_PARTITION"]))

    @app.timer(interval=0.2)
    async def keep_one_partition_paused():
        if paused in app.consumer.assignment():
            app.consumer.pause_partitions([paused])

    return app

worker_app.create_app = create_app
"""


def pausing_env(tmp_path: Path) -> dict[str, str]:
    hook = tmp_path / "pause-hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(PAUSE_ONE_PARTITION)
    return {
        "PYTHONPATH": str(hook),
        "FAULT_REPO_ROOT": str(REPO_ROOT),
        "FAULT_PAUSED_PARTITION": str(PAUSED_PARTITION),
    }


def health(worker: WorkerProcess) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(f"{worker.url}/health", timeout=5) as response:  # noqa: S310
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def stalling_worker_with_traffic(
    worker_factory: WorkerFactory,
    topics: TopicNames,
    model_dir: Path,
    tmp_path: Path,
    bootstrap: str,
    count: int,
    **worker_settings: str,
) -> WorkerProcess:
    """A worker whose partition PAUSED_PARTITION is kept paused, then ``count`` transactions
    spread over every partition: the paused one's position stops while its watermark grows."""
    worker = started_worker(
        worker_factory,
        topics,
        model_dir,
        pausing_env(tmp_path),
        stall_seconds=str(STALL_SECONDS),
        **worker_settings,
    )
    transactions = simulated_transactions(count)
    produce(
        bootstrap,
        topics.transactions,
        [(t.customer_id.encode(), t.to_bytes()) for t in transactions],
    )
    return worker


def test_a_stalled_partition_makes_the_worker_exit_for_a_restart(
    kafka_bootstrap: str,
    topics: TopicNames,
    worker_factory: WorkerFactory,
    trained_model_dir: Path,
    tmp_path: Path,
) -> None:
    worker = stalling_worker_with_traffic(
        worker_factory, topics, trained_model_dir, tmp_path, kafka_bootstrap, 300
    )
    wait_until(lambda: worker.process.poll() is not None, 120, "the watchdog to stop the worker")
    assert worker.process.returncode == EXIT_STALLED, worker.log_tail()
    stall_line = f"partition stalled: topic={topics.transactions} partition={PAUSED_PARTITION} "
    assert stall_line in worker.log_tail(200)
    assert f"exiting with {EXIT_STALLED}" in worker.log_tail(200)


def test_report_only_counts_the_stall_and_turns_health_not_ready(
    kafka_bootstrap: str,
    topics: TopicNames,
    worker_factory: WorkerFactory,
    trained_model_dir: Path,
    tmp_path: Path,
) -> None:
    count = 300
    worker = stalling_worker_with_traffic(
        worker_factory,
        topics,
        trained_model_dir,
        tmp_path,
        kafka_bootstrap,
        count,
        stall_action="report",
    )
    wait_until(
        lambda: metric(worker, "fraudstream_partition_stalls_total") >= 1,
        120,
        "a stall counted",
    )
    status, answer = health(worker)
    assert (status, answer["ready"]) == (503, False), answer
    assert worker.process.poll() is None, "report only: the worker stays up"
    paused_lag = f'fraudstream_consumer_lag{{partition="{PAUSED_PARTITION}"}}'
    assert metric(worker, paused_lag) > 0
    assert "partition stalled" in worker.log_tail(200)
    # Only the paused partition stalled: the others were scored, and it was not.
    reader = VerdictReader(kafka_bootstrap, topics.scores)
    try:
        scored = reader.settle(3.0)
    finally:
        reader.close()
    assert 0 < len(scored.counts) < count
    assert metric(worker, "fraudstream_partition_stalls_total") == 1


def test_an_idle_worker_on_a_quiet_topic_never_fires(
    kafka_bootstrap: str,
    topics: TopicNames,
    worker_factory: WorkerFactory,
    trained_model_dir: Path,
) -> None:
    """No transaction at all: the lag of every assigned partition is still exported (by the
    watchdog's timer, since no batch ever runs), at 0, and no stall is ever counted."""
    stall_seconds = 2.0
    worker = started_worker(
        worker_factory, topics, trained_model_dir, stall_seconds=str(stall_seconds)
    )
    lags = [f'fraudstream_consumer_lag{{partition="{p}"}}' for p in range(3)]

    def all_lags_exported() -> bool:
        with urllib.request.urlopen(f"{worker.url}/metrics", timeout=5) as response:  # noqa: S310
            text = response.read().decode()
        return all(f"{lag} " in text for lag in lags)

    wait_until(all_lags_exported, 60, "the timer to export every partition's lag")
    # A negative claim needs a span of time: ten stall periods of checks, each polled.
    checks = 0

    def quiet_for_ten_periods() -> bool:
        nonlocal checks
        assert metric(worker, "fraudstream_partition_stalls_total") == 0
        assert health(worker)[0] == 200
        assert all(metric(worker, lag) == 0 for lag in lags)
        checks += 1
        return checks >= 10 * stall_seconds / 0.5

    wait_until(quiet_for_ten_periods, 120, "ten stall periods", interval=0.5)
    assert worker.process.poll() is None
