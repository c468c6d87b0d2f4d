"""Entry point of the scoring worker: ``fraudstream-worker``.

Reads settings once, configures logging, loads the model and runs the Faust worker until
SIGINT/SIGTERM. This is the only module that imports the Faust app.
"""

from __future__ import annotations

import argparse
import logging
import sys

from stream_app.metrics import create_worker_metrics
from stream_app.model import ModelLoadError, load_bundle
from stream_app.processor import BatchScorer
from stream_app.publisher import VerdictPublisher
from stream_app.scoring import thresholds_for
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
    scorer = BatchScorer(bundle, thresholds, create_worker_metrics())
    publisher = VerdictPublisher(settings.kafka, client_id=settings.worker.app_id)
    log.info(
        "model=%s version=%s review>=%.3f block>=%.3f",
        bundle.metadata.name,
        bundle.metadata.version,
        thresholds.review,
        thresholds.block,
    )
    _run(settings, scorer, publisher)


def _run(settings: Settings, scorer: BatchScorer, publisher: VerdictPublisher) -> None:
    # Imported here so that importing this module (for --help, or in tests) builds no app.
    import faust

    from stream_app.app import create_app

    app = create_app(settings, scorer, publisher)
    worker = faust.Worker(app, loglevel=settings.worker.log_level, quiet=True)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
