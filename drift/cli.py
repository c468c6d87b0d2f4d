"""``fraudstream-drift``: the drift monitor, and a one-off check of two Parquet files.

Examples::

    fraudstream-drift                                      # the monitor; reference from MLflow
    fraudstream-drift --reference ref.parquet --review-threshold 0.42         # no MLflow
    fraudstream-drift check window.parquet --reference ref.parquet

The monitor (also ``fraudstream-drift monitor``) reads ``fraud-scores`` in its own consumer
group, checks each window against the reference sample, writes the reports to the object store
(``drift/reports/<window end>/``), serves Prometheus metrics on
``FRAUDSTREAM_DRIFT__WEB_HOST:WEB_PORT``/metrics and publishes a retrain request to
``retrain-requests`` after enough drifted windows in a row. Settings come from
``FRAUDSTREAM_*`` variables (see docs/configuration.md).

``check`` compares one Parquet file of verdict features (feature columns + ``score``, optional
``decision`` and ``event_time``) with a reference and prints the result as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import pandas as pd
from confluent_kafka import Consumer, KafkaException, Producer
from prometheus_client import start_http_server

from drift.checks import CheckConfig, check_window
from drift.metrics import create_drift_metrics
from drift.monitor import DriftMonitor, MonitorParts
from drift.reference import (
    FixedReference,
    ReferenceLoadError,
    ReferenceSource,
    RegistryReferences,
    load_reference_file,
)
from drift.trigger import RetrainTrigger, TriggerPolicy, read_flag, read_streak
from drift.windows import Span, Windower, WindowPolicy
from stream_app import model_store
from stream_app.kafka import consumer_config, producer_config
from stream_app.settings import Settings
from stream_app.store import ObjectStore, open_store

log = logging.getLogger(__name__)

PROGRAM = "fraudstream-drift"
CHECK_HELP = "Check one Parquet file of verdict features against a reference; print JSON."


def _reference_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reference",
        type=Path,
        help="reference Parquet (features + score); default: the champion's, from MLflow",
    )
    parser.add_argument(
        "--review-threshold",
        type=float,
        help="score at which the model alerts, for the reference alert rate "
        "(default: FRAUDSTREAM_WORKER__REVIEW_THRESHOLD, else the model's own)",
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """``check ...`` runs one check; anything else (``monitor`` or nothing) runs the monitor,
    so ``fraudstream-drift`` alone is the service command."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["check"]:
        check = argparse.ArgumentParser(prog=f"{PROGRAM} check", description=CHECK_HELP)
        check.add_argument("current", type=Path, help="Parquet: feature columns + score")
        _reference_options(check)
        check.add_argument("--no-reports", action="store_true", help="print only, write nothing")
        return check.parse_args(args[1:], argparse.Namespace(command="check"))
    monitor = argparse.ArgumentParser(
        prog=PROGRAM,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        usage=f"{PROGRAM} [monitor] [options] | {PROGRAM} check CURRENT [options]",
    )
    _reference_options(monitor)
    monitor_args = args[1:] if args[:1] == ["monitor"] else args
    return monitor.parse_args(monitor_args, argparse.Namespace(command="monitor"))


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        settings = Settings()
        configure(settings)
        if args.command == "check":
            run_check(args, settings)
        else:
            run_monitor(args, settings)
    except (ReferenceLoadError, KafkaException, ValueError) as error:  # bad input or config
        sys.stderr.write(f"{PROGRAM}: {error}\n")
        raise SystemExit(2) from error


def configure(settings: Settings) -> None:
    """Logging, and MLflow's client, which otherwise retries a dead server for minutes."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    logging.basicConfig(
        level=settings.drift.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )


def review_threshold(args: argparse.Namespace, settings: Settings) -> float | None:
    """The CLI's, else the worker's configured override; None lets the model's own apply."""
    cli: float | None = args.review_threshold
    return cli if cli is not None else settings.worker.review_threshold


def reference_source(args: argparse.Namespace, settings: Settings) -> ReferenceSource:
    """A fixed local sample when one is given, else the registry's, loaded now to fail fast."""
    columns = CheckConfig.from_settings(settings.drift).columns
    path: Path | None = args.reference or settings.drift.reference_path
    threshold = review_threshold(args, settings)
    if path is not None:
        return FixedReference(load_reference_file(path, columns, threshold))
    mlflow = settings.mlflow
    references = RegistryReferences(
        model_store.client_for(mlflow.tracking_uri),
        mlflow.model_name,
        mlflow.champion_alias,
        columns,
        review_override=threshold,
    )
    references.default()  # fail now, not at the first window
    return references


def run_check(args: argparse.Namespace, settings: Settings) -> None:
    config = CheckConfig.from_settings(settings.drift)
    reference = reference_source(args, settings).default()
    current = pd.read_parquet(args.current)
    store: ObjectStore | None = None if args.no_reports else open_store(settings.store)
    result = check_window(
        current, reference.frame, _span_of(current), config, store, reference.review_threshold
    )
    sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")


def _span_of(frame: pd.DataFrame) -> Span:
    """From an ``event_time`` column when there is one; else now."""
    if "event_time" not in frame.columns or frame.empty:
        now = datetime.now(UTC)
        return Span(now, now)
    times = pd.to_datetime(frame["event_time"], utc=True)
    return Span(times.min().to_pydatetime(), times.max().to_pydatetime())


def build_parts(
    settings: Settings, references: ReferenceSource, store: ObjectStore
) -> MonitorParts:
    drift, kafka = settings.drift, settings.kafka
    config = CheckConfig.from_settings(drift)
    flag = read_flag(store)
    trigger = RetrainTrigger(
        TriggerPolicy.from_settings(drift),
        last_request_at=None if flag is None else flag.requested_at,
    )
    streak = read_streak(store)
    if streak is not None:  # a restart: the drifted windows in a row so far still count
        trigger.restore(streak)
    return MonitorParts(
        consumer=Consumer(
            consumer_config(kafka, drift.app_id, offset_reset=drift.auto_offset_reset)
        ),
        producer=Producer(producer_config(kafka, drift.app_id)),
        store=store,
        references=references,
        config=config,
        windower=Windower(
            WindowPolicy.create(drift.window_size, drift.window_seconds, drift.min_window_rows),
            config.columns,
        ),
        trigger=trigger,
        metrics=create_drift_metrics(),
        scores_topic=kafka.topics.scores,
        requests_topic=kafka.topics.retrain_requests,
    )


def run_monitor(args: argparse.Namespace, settings: Settings) -> None:
    store = open_store(settings.store)
    parts = build_parts(settings, reference_source(args, settings), store)
    monitor = DriftMonitor(parts)
    server, _ = start_http_server(
        settings.drift.web_port, addr=settings.drift.web_host, registry=parts.metrics.registry
    )
    stop = _stop_on_signals()
    consumer = parts.consumer
    consumer.subscribe([parts.scores_topic], on_revoke=monitor.on_revoke)
    log.info(
        "drift monitor topic=%s group=%s store=%s metrics=http://%s:%d/metrics",
        parts.scores_topic,
        settings.drift.app_id,
        store.uri(),
        settings.drift.web_host,
        settings.drift.web_port,
    )
    try:
        monitor.run(stop)
    finally:
        consumer.close()
        server.shutdown()


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal=%d: stopping after the current batch", signum)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return stop


if __name__ == "__main__":
    main()
