"""The options both subcommands share, their value parsers, and the config they build.

``history`` and ``stream`` simulate the same population, so the population options, the
duration and delay parsers and :func:`simulator_config` are written once here; so are the small
output helpers (progress bar, one-line summaries) both runs use.
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime, timedelta

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from producers.simulator import (
    DriftSchedule,
    LabelPolicy,
    SimulatorConfig,
)
from producers.simulator.presets import DEFAULT_PRESET, PRESETS

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# Label delays by clock: the preset's chargeback delays in simulated time (the history's), a
# short range in wall-clock time so that labels show up during a demo.
STREAM_LABEL_DELAYS = {"wall": "30s-5m"}
# The options' defaults are the simulator's own (one source; the help text prints them).
SIMULATOR_DEFAULTS = SimulatorConfig()


def parse_duration(text: str) -> timedelta:
    """``90``, ``90s``, ``5m``, ``2h``, ``1.5d`` or ``250ms`` (a bare number is seconds)."""
    match = _DURATION.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (examples: 30s, 5m, 2d)")
    return timedelta(seconds=float(match[1]) * _UNITS[match[2] or "s"])


def parse_delay_range(text: str) -> tuple[timedelta, timedelta]:
    """``MIN-MAX`` such as ``1d-10d`` or ``30s-5m``; a single duration means a fixed delay."""
    low, _, high = text.partition("-")
    delay_min = parse_duration(low)
    delay_max = parse_duration(high) if high else delay_min
    if delay_max < delay_min:
        raise argparse.ArgumentTypeError(f"delay range {text!r} ends before it starts")
    return delay_min, delay_max


def parse_start(text: str) -> datetime:
    """An ISO date or date-time; without an offset it is UTC."""
    try:
        moment = datetime.fromisoformat(text)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (example: 2025-01-01)") from error


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"must be >= 0: {text}")
    return value


def _delay_text(config: SimulatorConfig) -> str:
    return f"{_days(config.labels.delay_min)}-{_days(config.labels.delay_max)}"


def _days(delay: timedelta) -> str:
    return f"{delay / timedelta(days=1):g}d"


def add_population_options(parser: argparse.ArgumentParser, *, wall_clock: bool) -> None:
    defaults = SIMULATOR_DEFAULTS
    parser.add_argument(
        "--preset",
        choices=list(PRESETS),
        default=DEFAULT_PRESET,
        help="which simulated world: 'default' (the demo's, easy to score) or 'realistic' "
        "(fraud that mimics the customer, merchants breached for days, noisy labels up to 5 "
        "weeks late, a few busy fraudsters; docs/simulator.md); the options below apply on top",
    )
    for flag, kind, default, what in (
        ("--seed", non_negative_int, defaults.seed, "random seed"),
        ("--customers", int, defaults.n_customers, "customers"),
        ("--merchants", int, defaults.n_merchants, "merchants"),
    ):
        parser.add_argument(flag, type=kind, default=default, help=f"{what} (default {default})")
    parser.add_argument(
        "--fraud-scale",
        type=float,
        default=1.0,
        help="multiply every fraud scenario's rate (default 1.0, about 0.7 %% of transactions)",
    )
    presets = ", ".join(f"{name} {_delay_text(config)}" for name, config in PRESETS.items())
    wall = f"; {STREAM_LABEL_DELAYS['wall']} with --clock wall" if wall_clock else ""
    parser.add_argument(
        "--label-delay",
        type=parse_delay_range,
        metavar="MIN-MAX",
        help=f"label delay range, e.g. 1d-10d (default: the preset's: {presets}{wall})",
    )
    parser.add_argument(
        "--no-legit-labels",
        action="store_true",
        help="publish labels for fraud only (default: is_fraud=false labels for the rest too)",
    )
    parser.add_argument(
        "--drift-at-count",
        type=int,
        metavar="N",
        help="apply the standard drift (pricier baskets, new categories, crypto cash-out "
        "fraud) from about the N-th transaction (stream, simulated clock: N-th live one, "
        "after the warm-up)",
    )


def simulator_config(args: argparse.Namespace, start: datetime) -> SimulatorConfig:
    """The preset's configuration with the options applied (validated again, as a whole)."""
    preset = PRESETS[args.preset]
    delays = args.label_delay or (preset.labels.delay_min, preset.labels.delay_max)
    labels = LabelPolicy(
        **{
            **dict(preset.labels),
            "delay_min": delays[0],
            "delay_max": delays[1],
            "emit_legit": not args.no_legit_labels,
        }
    )
    drift_at = getattr(args, "drift_at", None)
    drift = DriftSchedule()
    if drift_at is not None or args.drift_at_count is not None:
        drift = DriftSchedule.standard(at=drift_at, at_transaction=args.drift_at_count)
    return SimulatorConfig(
        **{
            **dict(preset),
            "seed": args.seed,
            "n_customers": args.customers,
            "n_merchants": args.merchants,
            "start": start,
            "fraud_rates": preset.fraud_rates.scaled(args.fraud_scale),
            "labels": labels,
            "drift": drift,
        }
    )


def progress_bar(console: Console, *, total: bool) -> Progress:
    columns: list[ProgressColumn] = [TextColumn("{task.description}")]
    columns += [BarColumn(), MofNCompleteColumn()] if total else [TextColumn("{task.completed:,}")]
    return Progress(*columns, TimeElapsedColumn(), console=console, transient=True)


def midnight(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def seconds(duration: timedelta | None) -> float | None:
    return None if duration is None else duration.total_seconds()


def share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.2f} %" if whole else "0 %"


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
