"""The pure core alone, no Kafka: ``BatchScorer.score_batch`` plus verdict encoding, rows/s.

Legs run in one process, alternating, best of ``--repeat`` counts (the machine is shared, so
single numbers are noisy; rows per CPU second are reported too):

- ``pydantic``: every verdict built as a :class:`stream_app.schemas.Verdict` and encoded by
  pydantic (``Verdict.to_bytes``), as the core did before its verdicts were encoded directly;
- ``core``: the core as it runs (verdict rows encoded by pydantic from a plain dict, no model);
- ``booster``: the model alone (``ModelBundle.predict``) on the feature matrices the core
  computed, batch by batch: the limit the core is measured against. ``core / booster`` is
  printed, a ratio from one process, steadier on a shared machine than either number.

``--profile`` prints a cProfile of the ``core`` leg (top functions by own time), so what
remains is shown next to the numbers.

    .venv/bin/python bench/bench_core.py --model .local/models/champion
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import benchkit
import numpy as np

from stream_app.metrics import create_worker_metrics
from stream_app.model_store import load_folder
from stream_app.processor import BatchScorer
from stream_app.scoring import thresholds_for
from stream_app.validation import RawRecord

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


def encode_direct(verdicts: Sequence[Any]) -> int:
    return sum(len(verdict.to_bytes()) for verdict in verdicts)


LEGS: dict[str, Callable[[Sequence[Any]], int]] = {
    "pydantic": encode_pydantic,
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
        "machine": benchkit.machine(),
    }
    if args.profile:
        result["profile"] = profile(args.model, records(messages), args.profile)
    return result


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per leg, best counts")
    parser.add_argument("--model", type=Path, default=benchkit.DEFAULT_MODEL)
    parser.add_argument("--profile", type=int, default=0, help="print the top N functions")
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
    if args.profile:
        print(result["profile"])
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
