"""Entry point of ``python -m deploy.demo``: arguments, logging, signals, summary, exit code."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from rich.console import Console

import deploy.demo
from deploy.demo.observer import utc_now
from deploy.demo.planner import DEFAULT_FRAUD_SCALE, DRIFT_DAY
from deploy.demo.report import summary, summary_tables
from deploy.demo.runner import Demo, run_demo
from deploy.demo.runs import RunPaths
from deploy.stack import (
    Stack,
    StackError,
    delete_groups,
    delete_topics_with_prefix,
)
from stream_app.settings import Settings

log = logging.getLogger("demo")

# ---------------------------------------------------------------------------------------------
# Arguments


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.demo",
        description=deploy.demo.__doc__.split("\n\n")[0] if deploy.demo.__doc__ else None,
        epilog="Settings (broker, topic names, ports, MLflow address) come from FRAUDSTREAM_* "
        "variables; the demo adds its own drift and training settings for the children.",
    )
    parser.add_argument("--duration", type=float, default=240, help="seconds of live traffic")
    parser.add_argument("--rate", type=float, default=200, help="live transactions per second")
    parser.add_argument("--seed", type=int, default=42, help="simulation seed (42)")
    parser.add_argument(
        "--customers", type=int, help="simulated customers (default: RATE x DURATION / 10 days)"
    )
    parser.add_argument(
        "--fraud-scale",
        type=float,
        default=DEFAULT_FRAUD_SCALE,
        help=f"multiply the simulator's fraud rates ({DEFAULT_FRAUD_SCALE:g})",
    )
    parser.add_argument(
        "--drift-at-count",
        type=int,
        metavar="N",
        help=f"drift from the N-th live transaction (default: {DRIFT_DAY} simulated days in)",
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=Path(".local/demo/champion"),
        help="the worker's model folder; the first champion is exported there each run",
    )
    parser.add_argument("--home", type=Path, default=Path(".local/demo"), help="runs, logs")
    parser.add_argument(
        "--mlflow-dir", type=Path, default=Path(".local/mlflow"), help="MLflow database, artifacts"
    )
    parser.add_argument("--headless", action="store_true", help="no live display")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the summary as JSON")
    return parser.parse_args(argv)


# ---------------------------------------------------------------------------------------------
# Entry point


def configure_logging(paths: RunPaths, headless: bool) -> None:
    handlers: list[logging.Handler] = [logging.FileHandler(paths.logs / "demo.log")]
    if headless:
        handlers.append(logging.StreamHandler(sys.stderr))
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        handlers=handlers,
    )


def raise_on_sigterm() -> None:
    """SIGTERM ends the demo like Ctrl-C: through the same cleanup."""

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


EXIT_CODES = {"completed": 0, "unanswered": 1, "failed": 2, "interrupted": 130}


def finish(demo: Demo, outcome: str) -> int:
    """The summary of whatever ran (also after Ctrl-C or a failed service), and the exit code."""
    plan, observer = demo.plan, demo.observer
    if plan is None or observer is None:
        return EXIT_CODES[outcome] or EXIT_CODES["failed"]
    observer.poll(timeout=1.0)  # whatever the services wrote while stopping
    observer.scan_store()
    result = summary(observer.tally, plan, demo.paths, demo.settings, demo.started)
    result["outcome"] = outcome
    observer.close()
    out = Console() if not demo.headless else Console(stderr=True)
    for table in summary_tables(result):
        out.print(table)
    if demo.args.json:
        demo.args.json.parent.mkdir(parents=True, exist_ok=True)
        demo.args.json.write_text(json.dumps(result, indent=2, default=str))
        out.print(f"summary written to {demo.args.json}")
    if result["unanswered"]:
        out.print(f"[red]{result['unanswered']} transactions without verdict or dead letter[/red]")
        if outcome == "completed":
            outcome = "unanswered"
    return EXIT_CODES[outcome]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # MLflow's per-file download bars would garble the dashboard; the children inherit this.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    settings = Settings()
    started = utc_now()
    paths = RunPaths.create(args.home, started)
    paths.logs.mkdir(parents=True)
    configure_logging(paths, args.headless)
    raise_on_sigterm()
    console = Console(stderr=args.headless)
    outcome = "completed"
    with Stack(paths.logs, dict(os.environ)) as stack:
        demo = Demo(args, settings, console, paths, started, stack)
        try:
            run_demo(demo)
        except KeyboardInterrupt:
            outcome = "interrupted"
            console.print("interrupted: stopping every process the demo started")
        except (StackError, ValueError) as error:
            outcome = "failed"
            console.print(f"[red]demo: {error}[/red]")
            log.exception("demo failed")
        finally:
            # A second Ctrl-C must not cut the cleanup short: every stop has a timeout.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            stack.stop_all()
            delete_topics_with_prefix(settings.kafka, paths.group_prefix)
            delete_groups(settings.kafka, paths.groups())
    return finish(demo, outcome)
