"""Entry point of the scoring worker: ``fraudstream-worker``.

Reads settings once, configures logging, loads the model and runs the Faust worker until
SIGINT/SIGTERM. This is the only module that imports the Faust app.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import timedelta

from stream_app.labels_reader import LabelsReader
from stream_app.metrics import create_worker_metrics
from stream_app.model import ModelBundle, ModelLoadError, load_bundle
from stream_app.processor import BatchScorer
from stream_app.publisher import VerdictPublisher
from stream_app.scoring import load_rules, thresholds_for
from stream_app.settings import Settings

log = logging.getLogger(__name__)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="fraudstream-worker",
        description=(
            "Score transactions from Kafka in real time. Consumes the transactions topic, "
            "publishes every verdict to fraud-scores, review/block verdicts to fraud-alerts and "
            "bad input to transactions-dlq; serves /metrics and /health. Configure with "
            "FRAUDSTREAM_* environment variables (see the README)."
        ),
    )
    parser.add_argument(
        "--model",
        help="model folder (model.ubj + metadata.json); default FRAUDSTREAM_WORKER__MODEL_PATH",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    settings = Settings()
    if args.model:
        settings.worker.model_path = type(settings.worker.model_path)(args.model)
    logging.basicConfig(
        level=settings.worker.log_level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        bundle = load_bundle(settings.worker.model_path)
    except ModelLoadError as exc:
        sys.stderr.write(f"fraudstream-worker: {exc} (train one with `make model`)\n")
        raise SystemExit(2) from exc
    thresholds = thresholds_for(
        bundle, settings.worker.review_threshold, settings.worker.block_threshold
    )
    metrics = create_worker_metrics()
    scorer = BatchScorer(
        bundle,
        thresholds,
        metrics,
        rules=load_rules(settings.worker.deny_list_path, settings.worker.review_above_usd),
        shadow=_load_shadow(settings),
    )
    publisher = VerdictPublisher(settings.kafka, client_id=settings.worker.app_id)
    labels = LabelsReader(
        settings.kafka,
        lookback=timedelta(days=settings.worker.labels_lookback_days),
        on_invalid=lambda reason: metrics.labels_rejected.labels(reason).inc(),
    )
    log.info(
        "model=%s version=%s review>=%.3f block>=%.3f",
        bundle.metadata.name,
        bundle.metadata.version,
        thresholds.review,
        thresholds.block,
    )
    _run(settings, scorer, publisher, labels)


def _load_shadow(settings: Settings) -> ModelBundle | None:
    path = settings.worker.shadow_model_path
    if path is None:
        return None
    try:
        return load_bundle(path)
    except ModelLoadError as exc:  # a broken challenger must not stop scoring
        log.error("shadow model not loaded path=%s error=%s", path, exc)
        return None


def _run(
    settings: Settings, scorer: BatchScorer, publisher: VerdictPublisher, labels: LabelsReader
) -> None:
    # Imported here so that importing this module (for --help, or in tests) builds no app.
    import faust

    from stream_app.app import WorkerParts, create_app

    app = create_app(settings, WorkerParts(scorer, publisher, labels))
    worker = faust.Worker(app, loglevel=settings.worker.log_level, quiet=True)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
