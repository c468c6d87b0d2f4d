"""The pure core alone, no Kafka: ``BatchScorer.score_batch`` plus verdict encoding, rows/s.

Legs run in one process, alternating, best of ``--repeat`` counts (the machine is shared, so
single numbers are noisy; rows per CPU second are reported too):

- ``pydantic``: every verdict built as a :class:`stream_app.schemas.Verdict` and encoded by
  pydantic (``Verdict.to_bytes``), as the core did before its verdicts were encoded directly;
- ``rows``: verdict rows encoded one by one by pydantic from a plain dict (``VerdictRow.to_bytes``),
  as the core did before its verdicts were encoded a batch at a time;
- ``core``: the core as it runs (a batch's verdicts encoded together, ``encode_verdicts``);
- ``booster``: the model alone (``ModelBundle.predict``) on the feature matrices the core
  computed, batch by batch: the limit the core is measured against. ``core / booster`` is
  printed, a ratio from one process, steadier on a shared machine than either number.

``--profile`` prints a cProfile of the ``core`` leg (top functions by own time), so what
remains is shown next to the numbers. ``--stages`` prints the core's CPU time per row by stage
(validation, features and state, booster, reasons and verdict rows, changelog snapshots, verdict
JSON) and the share of the cyclic garbage collector, best of ``--repeat``, without a profiler's
overhead.

    .venv/bin/python bench/bench_core.py --model .local/models/champion
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import pstats
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import benchkit
import machine_info
import numpy as np

from stream_app.metrics import create_worker_metrics
from stream_app.model_store import load_folder
from stream_app.processor import BatchScorer
from stream_app.scoring import thresholds_for
from stream_app.validation import RawRecord
from stream_app.verdicts import encode_verdicts

BATCH = 1000
GOAL_ROWS_PER_S = 100_000


def records(messages: Sequence[benchkit.Message]) -> list[RawRecord]:
    now_ms = int(time.time() * 1000)
    return [
        RawRecord("transactions", index % 3, index, key, value, now_ms)
        for index, (key, value) in enumerate(messages)
    ]


def encode_pydantic(verdicts: Sequence[Any]) -> int:
    return sum(len(verdict.to_model().to_bytes()) for verdict in verdicts)


def encode_rows(verdicts: Sequence[Any]) -> int:
    return sum(len(verdict.to_bytes()) for verdict in verdicts)


def encode_direct(verdicts: Sequence[Any]) -> int:
    return sum(len(payload) for payload in encode_verdicts(verdicts))


LEGS: dict[str, Callable[[Sequence[Any]], int]] = {
    "pydantic": encode_pydantic,
    "rows": encode_rows,
    "core": encode_direct,
}


def run_leg(model: Path, batches: list[RawRecord], encode: Callable[[Sequence[Any]], int]) -> Any:
    bundle = load_folder(model)
    scorer = BatchScorer(bundle, thresholds_for(bundle, None, None), create_worker_metrics())
    started, cpu_started = time.perf_counter(), time.process_time()
    for start in range(0, len(batches), BATCH):
        result = scorer.score_batch(batches[start : start + BATCH])
        encode(result.verdicts)
    return len(batches) / (time.perf_counter() - started), len(batches) / (
        time.process_time() - cpu_started
    )


Matrix = np.ndarray[Any, np.dtype[np.float32]]


def feature_matrices(model: Path, batches: list[RawRecord]) -> list[Matrix]:
    """The feature rows the core scores, one matrix per batch, for the booster leg."""
    bundle = load_folder(model)
    scorer = BatchScorer(bundle, thresholds_for(bundle, None, None), create_worker_metrics())
    matrices = []
    for start in range(0, len(batches), BATCH):
        verdicts = scorer.score_batch(batches[start : start + BATCH]).verdicts
        matrices.append(np.asarray([v.feature_values for v in verdicts], dtype=np.float32))
    return matrices


def run_booster(model: Path, matrices: list[Matrix]) -> tuple[float, float]:
    bundle = load_folder(model)
    rows = sum(len(matrix) for matrix in matrices)
    started, cpu_started = time.perf_counter(), time.process_time()
    for matrix in matrices:
        bundle.predict(matrix)
    return rows / (time.perf_counter() - started), rows / (time.process_time() - cpu_started)


def profile(model: Path, batches: list[RawRecord], top: int) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    run_leg(model, batches, LEGS["core"])
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


class GcClock:
    """CPU seconds spent in the cyclic garbage collector while installed."""

    def __init__(self) -> None:
        self.seconds, self._started = 0.0, 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.process_time()
        else:
            self.seconds += time.process_time() - self._started

    def __enter__(self) -> GcClock:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self)


def stage_times(model: Path, batches: list[RawRecord]) -> dict[str, float]:
    """CPU microseconds per row of each step of ``score_batch``, run step by step (the same
    calls it makes, in its order), plus the verdict JSON and the collector's share."""
    bundle = load_folder(model)
    scorer = BatchScorer(bundle, thresholds_for(bundle, None, None), create_worker_metrics())
    spent = dict.fromkeys(
        ("validation", "features_and_state", "booster", "reasons_rules_rows", "changelog", "json"),
        0.0,
    )
    clock = time.process_time
    with GcClock() as collector:
        started = clock()
        for start in range(0, len(batches), BATCH):
            batch = batches[start : start + BATCH]
            mark = clock()
            transactions, sources, _ = scorer._validate(batch, datetime.now(UTC))
            spent["validation"] += clock() - mark
            mark = clock()
            matrix = scorer._featurise(transactions, sources)
            spent["features_and_state"] += clock() - mark
            mark = clock()
            bundle.predict(matrix)  # timed alone; _verdicts below predicts again
            spent["booster"] += clock() - mark
            mark = clock()
            verdicts = scorer._verdicts(transactions, matrix, [0.0] * len(transactions))
            spent["reasons_rules_rows"] += clock() - mark
            mark = clock()
            scorer.state.take_changes()
            spent["changelog"] += clock() - mark
            mark = clock()
            encode_direct(verdicts)
            spent["json"] += clock() - mark
        total = clock() - started
    spent["reasons_rules_rows"] -= spent["booster"]  # _verdicts includes one booster call
    per_row = {name: seconds / len(batches) * 1e6 for name, seconds in spent.items()}
    # The total counts the booster once (the separate timing call excluded) and the time
    # between the steps (the batch slicing, the clock calls).
    per_row["total"] = (total - spent["booster"]) / len(batches) * 1e6
    per_row["gc_share_of_total"] = collector.seconds / total
    return per_row


def run(args: argparse.Namespace) -> dict[str, Any]:
    messages = benchkit.payloads(args.rows)
    names = [*LEGS, "booster"]
    rates: dict[str, list[float]] = {name: [] for name in names}
    cpu_rates: dict[str, list[float]] = {name: [] for name in names}
    matrices = feature_matrices(args.model, records(messages))
    for _ in range(args.repeat):
        for name, encode in LEGS.items():
            wall, cpu = run_leg(args.model, records(messages), encode)
            rates[name].append(wall)
            cpu_rates[name].append(cpu)
        wall, cpu = run_booster(args.model, matrices)
        rates["booster"].append(wall)
        cpu_rates["booster"].append(cpu)
    best = {name: max(values) for name, values in rates.items()}
    result: dict[str, Any] = {
        "rows": len(messages),
        "batch": BATCH,
        "repeat": args.repeat,
        "legs": {
            name: {
                "rows_per_s": best[name],
                "rows_per_cpu_s": max(cpu_rates[name]),
                "runs_rows_per_s": rates[name],
            }
            for name in names
        },
        "core_share_of_booster": best["core"] / best["booster"],
        "core_share_of_booster_cpu": max(cpu_rates["core"]) / max(cpu_rates["booster"]),
        "goals": {"core_rows_per_s": best["core"]},
        "goal_met": {"core_rows_per_s": best["core"] >= GOAL_ROWS_PER_S},
        "machine": machine_info.machine(),
    }
    if args.profile:
        result["profile"] = profile(args.model, records(messages), args.profile)
    if args.stages:
        runs = [stage_times(args.model, records(messages)) for _ in range(args.repeat)]
        # The whole run with the least total, so that its stages add up (per-stage minima
        # from different runs would not).
        result["stages_us_per_row"] = min(runs, key=lambda run: run["total"])
    return result


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per leg, best counts")
    parser.add_argument("--model", type=Path, default=benchkit.DEFAULT_MODEL)
    parser.add_argument("--profile", type=int, default=0, help="print the top N functions")
    parser.add_argument("--stages", action="store_true", help="print CPU us/row per stage")
    parser.add_argument("--output", type=Path, default=benchkit.REPO / ".local/bench/core.json")
    args = parser.parse_args(argv)
    result = run(args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    for name, leg in result["legs"].items():
        print(
            f"{name:>9}: {leg['rows_per_s']:>10,.0f} rows/s  {leg['rows_per_cpu_s']:>10,.0f}/cpu-s"
        )
    print(
        f"core / booster: {result['core_share_of_booster']:.3f} "
        f"(per cpu-s {result['core_share_of_booster_cpu']:.3f})"
    )
    met = "met" if result["goal_met"]["core_rows_per_s"] else "NOT met"
    print(f"goal core_rows_per_s >= {GOAL_ROWS_PER_S:,}: {met}")
    for name, value in result.get("stages_us_per_row", {}).items():
        print(f"{name:>28}: {value:8.2f}" + ("" if name.startswith("gc") else " us/row"))
    if args.profile:
        print(result["profile"])
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
