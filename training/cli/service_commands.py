"""``lake-writer`` and ``retrain-consumer``: the two long-running services of the retraining loop.

Both run until Ctrl-C, SIGTERM or ``--exit-when-idle`` and print one summary line; the loops
themselves live in :mod:`training.lake_writer` and :mod:`training.retrain`.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from stream_app.settings import Settings
from stream_app.store import open_store
from training.cli.output import Ui
from training.lake_writer.loop import run_lake_writer
from training.retrain.consumer import run_retrain_consumer

logger = logging.getLogger(__name__)


def _add_idle_exit(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--exit-when-idle",
        type=float,
        metavar="SECONDS",
        help=f"exit once {what} for this long (default: run until Ctrl-C or SIGTERM)",
    )


def add_lake_writer_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "lake-writer",
        help="archive the transactions and labels topics into the lake (a long-running service)",
        description=(
            "Consume the transactions and labels topics (consumer group "
            "FRAUDSTREAM_TRAINING__LAKE_WRITER_APP_ID) and write them to the object store as "
            "Parquet under lake/<table>/date=YYYY-MM-DD/, the layout `train` reads. Offsets are "
            "committed after the parts are written; a replay rewrites the same parts. Parts are "
            "written every FRAUDSTREAM_TRAINING__LAKE_FLUSH_ROWS rows per partition or "
            "FRAUDSTREAM_TRAINING__LAKE_FLUSH_SECONDS seconds, and on exit."
        ),
    )
    _add_idle_exit(parser, "no message has arrived")
    parser.set_defaults(handler=lake_writer)


def add_retrain_consumer_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    parser = commands.add_parser(
        "retrain-consumer",
        help="retrain once per retrain-requests message, one at a time (a long-running service)",
        description=(
            "Consume retrain-requests (consumer group FRAUDSTREAM_TRAINING__APP_ID). Each request "
            "waits until FRAUDSTREAM_TRAINING__MIN_FRAUD_LABELS fraud labels of transactions since "
            "its drift window began are in the lake, then trains on the lake like `train`, gates "
            "against the champion, and announces a promotion on model-updates. Handled requests "
            "are recorded under training/requests/ in the object store: a repeat is skipped."
        ),
    )
    _add_idle_exit(parser, "no request is queued or running and none has arrived")
    parser.set_defaults(handler=retrain_consumer)


def _stop_on_signals() -> threading.Event:
    """Ctrl-C and SIGTERM ask a service to finish its current work and exit cleanly."""
    stop = threading.Event()
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, lambda *_: stop.set())
    return stop


def lake_writer(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    stop = _stop_on_signals()
    store = open_store(settings.store)
    logger.info("archiving into %s", store.uri())
    stats = run_lake_writer(settings.kafka, settings.training, store, stop, args.exit_when_idle)
    ui.out.print(
        f"archived {stats.rows:,} rows in {stats.parts:,} parts to {store.uri()}; "
        f"{stats.invalid:,} invalid messages skipped"
    )
    return 0


def retrain_consumer(args: argparse.Namespace, settings: Settings, ui: Ui) -> int:
    stats = run_retrain_consumer(settings, _stop_on_signals(), args.exit_when_idle)
    ui.out.print(
        f"handled {stats.handled} requests ({stats.duplicates} repeats skipped); "
        f"{stats.invalid} invalid messages skipped"
    )
    return 0
