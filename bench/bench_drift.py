"""Drift check benchmark: one window of 50,000 verdicts (36 features + score) against 5,000
reference rows, the size the monitor must check in under 5 seconds on two cores.

    .venv/bin/python bench/bench_drift.py                      # defaults below, ~1.5 minutes
    .venv/bin/python bench/bench_drift.py --skip-defaults      # only the monitor's check
    .venv/bin/python bench/bench_drift.py --continuous         # worst case: no ties anywhere

Prints one JSON object (for CI trends) and a table. The data is the simulator's: seeded history,
offline features, a stand-in score (a logistic of a few features); the reference is a sample of
an earlier week, the window the latest 50,000 rows.

What is timed (best of ``--repeat`` after a first, cold run, since the machine is shared):

- ``check``: what the monitor runs per window, :func:`drift.checks.check_window`: Evidently
  ``ValueDrift`` per monitored column with the project's PSI, the typed result, HTML + JSON
  written to a local store; also split into Evidently's run and the HTML rendering;
- ``measure``: the same numbers without Evidently (offline evaluation);
- for comparison, Evidently's defaults on all 37 columns: ``DataDriftPreset()`` and one
  ``ValueDrift`` per column with the automatic method (Wasserstein distance or Jensen-Shannon,
  by column); the preset gets one warm run only, it is the slow one.

The first ("cold") run pays Evidently's lazy set-up once; the import itself is timed apart.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from drift.checks import CheckConfig, check_window, measure, run_report
from drift.windows import Span
from producers.simulator import SimulatorConfig, generate_history
from stream_app.features import FEATURE_NAMES, offline_features
from stream_app.settings import DriftSettings
from stream_app.store import LocalStore

SPAN = Span(datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 3, 1, 0, 5, tzinfo=UTC))


def scored_frames(rows: int, reference_rows: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The latest ``rows`` verdict rows and a reference sample from the week before them."""
    customers = 5_000
    days = 14 + math.ceil(rows / customers) + 7
    transactions, labels = generate_history(SimulatorConfig(seed=seed, n_customers=customers), days)
    frame = offline_features(transactions, labels)
    logit = -3.7 + 0.55 * np.log1p(frame["amount_usd"]) + 1.6 * frame["device_first_seen"]
    frame["score"] = (1 / (1 + np.exp(-logit))).astype(np.float32)
    frame["decision"] = np.where(frame["score"] >= 0.5, "review", "approve")
    window = frame.iloc[-rows:].reset_index(drop=True)
    earlier = frame.iloc[-rows - 7 * customers : -rows]
    reference = earlier.sample(n=reference_rows, random_state=seed).drop(columns="decision")
    return window, reference.reset_index(drop=True)


def continuous_frames(
    rows: int, reference_rows: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The worst case for per-column cost: every column continuous (lognormal), no ties."""
    rng = np.random.default_rng(seed)
    columns = [*FEATURE_NAMES, "score"]

    def frame(n: int) -> pd.DataFrame:
        return pd.DataFrame(
            rng.lognormal(size=(n, len(columns))).astype(np.float32), columns=columns
        )

    window = frame(rows).assign(decision="approve")
    return window, frame(reference_rows)


def timed(run: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """(first run, best of ``repeat`` more) in seconds."""
    started = time.perf_counter()
    run()
    cold = time.perf_counter() - started
    best = math.inf
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return cold, best


def evidently_defaults(
    window: pd.DataFrame, reference: pd.DataFrame
) -> dict[str, Callable[[], Any]]:
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    columns = [*FEATURE_NAMES, "score"]
    definition = DataDefinition(numerical_columns=columns)

    def run(metrics: list[Any]) -> Any:
        return Report(metrics).run(
            Dataset.from_pandas(window[columns], data_definition=definition),
            Dataset.from_pandas(reference[columns], data_definition=definition),
        )

    return {
        "default_preset": lambda: run([DataDriftPreset()]),
        "default_value_drift": lambda: run([ValueDrift(column=name) for name in columns]),
    }


def import_seconds() -> float:
    """Evidently's import, paid once per process (the monitor pays it before its first window)."""
    started = time.perf_counter()
    import evidently.metrics  # noqa: F401 - timed for its side effect

    return time.perf_counter() - started


def bench(args: argparse.Namespace) -> dict[str, Any]:
    frames = continuous_frames if args.continuous else scored_frames
    window, reference = frames(args.rows, args.reference_rows, args.seed)
    config = CheckConfig.from_settings(DriftSettings())
    results: dict[str, Any] = {
        "data": "continuous" if args.continuous else "simulator",
        "window_rows": len(window),
        "reference_rows": len(reference),
        "features_checked": len(config.features),
        "columns_compared": len(config.columns),
        "evidently_import_seconds": round(import_seconds(), 3),
    }
    with tempfile.TemporaryDirectory() as folder:
        store = LocalStore(Path(folder))
        runs: dict[str, Callable[[], Any]] = {
            "check": lambda: check_window(window, reference, SPAN, config, store, 0.5),
            "check_evidently_run": lambda: run_report(window, reference, config),
            "check_html_render": lambda: snapshot.get_html_str(as_iframe=False),
            "measure": lambda: measure(window, reference, SPAN, config, 0.5),
        }
        if not args.skip_defaults:
            runs.update(evidently_defaults(window, reference))
        snapshot: Any = None
        for name, run in runs.items():
            if name == "check_html_render":
                snapshot = run_report(window, reference, config)
            cold, best = timed(run, args.repeat if name != "default_preset" else 1)
            results[f"{name}_cold_seconds"] = round(cold, 3)
            results[f"{name}_seconds"] = round(best, 3)
        result = check_window(window, reference, SPAN, config, store, 0.5)
        report = Path(folder) / "drift" / "reports"
        sizes = {path.name: path.stat().st_size for path in report.rglob("report.*")}
    results["report_html_bytes"] = sizes["report.html"]
    results["report_json_bytes"] = sizes["report.json"]
    results["drift_share"] = round(result.drift_share, 4)
    results["under_5_seconds"] = results["check_seconds"] < 5.0
    return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=50_000, help="verdicts in the window")
    parser.add_argument("--reference-rows", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="warm runs, best counts")
    parser.add_argument(
        "--skip-defaults", action="store_true", help="skip Evidently's defaults (~30 s each)"
    )
    parser.add_argument(
        "--continuous", action="store_true", help="synthetic lognormal columns instead"
    )
    results = bench(parser.parse_args(argv))
    print(json.dumps(results))
    width = max(len(name) for name in results)
    for name, value in results.items():
        number = isinstance(value, int) and not isinstance(value, bool)
        shown = f"{value:,}" if number else str(value)
        print(f"{name:<{width}}  {shown:>14}")


if __name__ == "__main__":
    main()
