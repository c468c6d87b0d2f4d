"""``fraudstream-train``: a first local model, training from the lake into MLflow, backtests, and
the two services of the retraining loop.

    fraudstream-train first-model             # simulate history, train, save .local/models/champion
    fraudstream-train train                   # lake -> train -> MLflow run, version, champion gate
    fraudstream-train backtest FILE.parquet   # rolling train / delay / test folds on any file
    fraudstream-train lake-writer             # archive transactions + labels topics into the lake
    fraudstream-train retrain-consumer        # retrain on each retrain-requests message, once

Settings (store, MLflow, model folder) come from FRAUDSTREAM_* variables, read once here.
"""

# The package follows the command line: options.py (the training options shared by first-model,
# train and the retrain consumer's defaults), output.py (tables and the progress spinner),
# model_commands.py (first-model, train), backtest_command.py and service_commands.py (the two
# long-running services). This module only assembles the parser and maps failures to exit codes;
# the docstring above is the top-level --help text.
from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence

from confluent_kafka import KafkaException
from mlflow.exceptions import MlflowException
from rich.console import Console
from rich.logging import RichHandler

from stream_app.kafka import DeliveryError
from stream_app.model import ModelLoadError
from stream_app.settings import Settings
from training.cli.backtest_command import add_backtest_command
from training.cli.model_commands import add_first_model_command, add_train_command
from training.cli.output import Ui
from training.cli.service_commands import add_lake_writer_command, add_retrain_consumer_command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fraudstream-train", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--log-level", default="INFO", help="default INFO")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_first_model_command(commands)
    add_train_command(commands)
    add_backtest_command(commands)
    add_lake_writer_command(commands)
    add_retrain_consumer_command(commands)
    return parser


def _configure_logging(level: str, console: Console) -> None:
    handler = RichHandler(console=console, show_path=False, rich_tracebacks=False)
    logging.basicConfig(level=level.upper(), format="%(name)s %(message)s", handlers=[handler])


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Our own spinner shows progress; MLflow's per-file tqdm bars would only garble it.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    ui = Ui(out=Console(), err=Console(stderr=True))
    _configure_logging(args.log_level, ui.err)
    settings = Settings()
    try:
        code: int = args.handler(args, settings, ui)
    except (
        ValueError,
        OSError,
        ModelLoadError,
        MlflowException,
        KafkaException,
        DeliveryError,
    ) as error:
        ui.err.print(f"[red]fraudstream-train {args.command}: {error}[/red]")
        return 1
    return code
