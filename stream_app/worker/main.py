"""Entry point of the scoring worker: ``fraudstream-worker``.

Reads settings once, configures logging, loads the model and runs the Faust worker until
SIGINT/SIGTERM. This is the only module that imports the Faust app.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
from datetime import timedelta

from stream_app.features import FEATURE_NAMES
from stream_app.metrics import create_worker_metrics
from stream_app.model import ModelBundle, ModelLoadError
from stream_app.model_store import ModelStore, load_folder
from stream_app.processor import BatchScorer
from stream_app.rules import load_rules
from stream_app.rules.book import RuleBook
from stream_app.schemas import Label, ModelUpdate
from stream_app.scoring import thresholds_for
from stream_app.settings import Settings
from stream_app.worker.merchant_volume_reader import VOLUME_LOOKBACK_US, MerchantVolumeReader
from stream_app.worker.model_checks import feature_list_problem
from stream_app.worker.model_swap import ModelSwapper, create_swap_metrics
from stream_app.worker.parts import WorkerParts
from stream_app.worker.publisher import VerdictPublisher
from stream_app.worker.rules_reader import LiveRules, RulesReader, dead_letter_producer
from stream_app.worker.topic_reader import TopicReader

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
    # MLflow's client otherwise retries an unreachable registry for minutes, holding the model
    # loader thread; the old model keeps serving either way.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    if args.model:
        settings.worker.model_path = type(settings.worker.model_path)(args.model)
    logging.basicConfig(
        level=settings.worker.log_level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        bundle = load_folder(settings.worker.model_path)
    except ModelLoadError as exc:
        sys.stderr.write(f"fraudstream-worker: {exc} (train one with `make model`)\n")
        raise SystemExit(2) from exc
    _refuse_other_features(bundle)
    thresholds = thresholds_for(
        bundle, settings.worker.review_threshold, settings.worker.block_threshold
    )
    metrics = create_worker_metrics()
    # One mechanism: the settings' deny-list and amount limit are the book's first rules.
    book = RuleBook(
        load_rules(settings.worker.deny_list_path, settings.worker.review_above_usd).rules
    )
    scorer = BatchScorer(
        bundle, thresholds, metrics, rules=book.ruleset, shadow=_load_shadow(settings)
    )
    publisher = VerdictPublisher(settings.kafka, client_id=settings.worker.app_id)
    topics = settings.kafka.topics
    rules = LiveRules(
        RulesReader(settings.kafka, topics.rules),
        book,
        metrics,
        dead_letter_producer(publisher, topics.dead_letters),
    )
    labels = TopicReader(
        settings.kafka,
        settings.kafka.topics.labels,
        Label,
        lookback=timedelta(days=settings.worker.labels_lookback_days),
        on_invalid=lambda reason: metrics.labels_rejected.labels(reason).inc(),
    )
    model_updates = TopicReader(
        settings.kafka, settings.kafka.topics.model_updates, ModelUpdate, lookback=None
    )
    swapper = ModelSwapper(
        bundle,
        ModelStore(settings.mlflow.tracking_uri, nthread=1),
        create_swap_metrics(metrics.registry),
        registry_model=settings.mlflow.model_name,
        alias=settings.mlflow.champion_alias,
    )
    log.info(
        "model=%s version=%s review>=%.3f block>=%.3f",
        bundle.metadata.name,
        bundle.metadata.version,
        thresholds.review,
        thresholds.block,
    )
    volume = _volume_reader(settings, scorer)
    _run(settings, WorkerParts(scorer, publisher, labels, model_updates, swapper, rules, volume))


def _volume_reader(settings: Settings, scorer: BatchScorer) -> MerchantVolumeReader | None:
    """The all-partitions reader behind merchant volume, wired into the scorer."""
    if not settings.worker.merchant_volume_all_partitions:
        return None
    reader = MerchantVolumeReader(
        settings.kafka,
        settings.kafka.topics.transactions,
        lookback=timedelta(microseconds=VOLUME_LOOKBACK_US),
        registry=scorer.metrics.registry,
    )
    scorer.volume = reader
    scorer.volume_wait_seconds = settings.worker.merchant_volume_wait_seconds
    return reader


def _refuse_other_features(bundle: ModelBundle) -> None:
    """Exit 2 when the model was trained on another feature list than this code computes.

    The booster only checks the number of columns, so a model from another release (a feature
    added, removed or moved) would score every transaction on shifted columns without an error.
    """
    if bundle.metadata.feature_names == FEATURE_NAMES:
        return
    problem = feature_list_problem(bundle.metadata.feature_names, FEATURE_NAMES)
    log.error(
        "model refused: model=%s version=%s %s (retrain it with this release)",
        bundle.metadata.name,
        bundle.metadata.version,
        problem,
    )
    sys.stderr.write(
        f"fraudstream-worker: model {bundle.metadata.name} v{bundle.metadata.version}: "
        f"{problem}; retrain it with this release\n"
    )
    raise SystemExit(2)


def _load_shadow(settings: Settings) -> ModelBundle | None:
    path = settings.worker.shadow_model_path
    if path is None:
        return None
    try:
        shadow = load_folder(path)
    except ModelLoadError as exc:  # a broken challenger must not stop scoring
        log.error("shadow model not loaded path=%s error=%s", path, exc)
        return None
    if shadow.metadata.feature_names != FEATURE_NAMES:
        # Its scores would be computed on the wrong columns: worse than no shadow scores.
        problem = feature_list_problem(shadow.metadata.feature_names, FEATURE_NAMES)
        log.error("shadow model not loaded path=%s error=%s", path, problem)
        return None
    return shadow


def _run(settings: Settings, parts: WorkerParts) -> None:
    # Imported here so that importing this module (for --help, or in tests) builds no app.
    import faust

    from stream_app.worker.app import create_app

    app = create_app(settings, parts)
    # Everything built so far (imported modules, the booster, the app) lives as long as the
    # process: out of the collector's sight, a full collection no longer walks its ~150,000
    # objects. bench/bench_core.py --stages measured the collector at 15-27 % of the core's CPU
    # before, 9 % after (docs/benchmarks.md, "The pure core").
    gc.freeze()
    worker = faust.Worker(app, loglevel=settings.worker.log_level, quiet=True)
    # No terminal spinner: at WARNING and above Faust would set the root logger to DEBUG so the
    # spinner turns on every record, and every debug line of Faust's recovery and fetch loop is
    # then formatted (16 % of a profiled changelog recovery at WARNING).
    worker.spinner = None
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
