"""``fraudstream-generate``: simulated transactions to Kafka (live) or to the lake (history).

Examples::

    fraudstream-generate history --days 60 --seed 7                # lake under the store URI
    fraudstream-generate history --days 30 --parquet backtest.parquet --no-lake
    fraudstream-generate history --days 60 --preset realistic --parquet hard.parquet --no-lake
    fraudstream-generate stream --rate 200 --duration 10m --drift-at-count 50000

``stream`` runs in simulated time by default: a customer pays about once a simulated day, as in
the history the model was trained on, and the timeline is anchored so that it ends now. A
warm-up of past days goes out first at full speed, so the worker starts with customer history;
then the live part follows at ``--rate`` transactions per wall-clock second.

This package is the command line only: :mod:`.options` holds the shared option parsers and the
mapping of options to a :class:`~producers.simulator.SimulatorConfig`; :mod:`.history` and
:mod:`.stream` are one subcommand each (its options and its run); this module builds the parser
and turns expected failures into one line and an exit code.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from botocore.exceptions import BotoCoreError, ClientError
from confluent_kafka import KafkaException
from rich.console import Console

from producers.cli.history import add_history_command
from producers.cli.stream import add_stream_command
from stream_app.kafka import DeliveryError
from stream_app.settings import Settings

logger = logging.getLogger(__name__)

PROG = "fraudstream-generate"
# Failures of the environment or the input, reported in one line; anything else is a bug and
# keeps its traceback. ValueError covers pydantic's ValidationError for bad option values.
_EXPECTED_FAILURES = (
    DeliveryError,
    KafkaException,
    OSError,
    ValueError,
    BotoCoreError,
    ClientError,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Generate realistic card transactions with labelled fraud scenarios, "
        "delayed labels and scheduled drift. Kafka and store locations come from the "
        "FRAUDSTREAM_* environment (see the README).",
        epilog="examples:\n"
        "  fraudstream-generate history --days 60 --seed 7\n"
        "  fraudstream-generate history --days 30 --no-lake --parquet backtest.parquet\n"
        "  fraudstream-generate history --preset realistic --no-lake --parquet hard.parquet\n"
        "  fraudstream-generate stream --rate 200 --duration 10m --drift-at-count 50000",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_history_command(commands)
    add_stream_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if logging.getLogger().level > logging.DEBUG:
        # librdkafka logs every reconnect attempt; failures reach the user through DeliveryError.
        logging.getLogger("producers.sinks.librdkafka").setLevel(logging.CRITICAL)
    console = Console(stderr=True)
    try:
        settings = Settings()
        code: int = args.handler(args, settings, console)
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 130
    except _EXPECTED_FAILURES as error:
        logger.debug("failed", exc_info=True)  # the traceback, for --log-level DEBUG
        detail = "; ".join(line.strip() for line in str(error).splitlines() if line.strip())
        sys.stderr.write(f"{PROG}: error: {type(error).__name__}: {detail}\n")
        return 1
    return code
