"""The core's validation stage alone: per message (as the core did) against per batch (as it does).

Both legs validate the same batches in one process, alternating which runs first, so a busy
machine slows both alike and their ratio stays meaningful where single numbers are not. The
customer state is the one the core would hold: after each batch is validated by both legs, it
is featurised once, so later batches' duplicate checks find their customers' recent ids.

- ``per_message``: ``parse_transaction`` for each record, then the duplicate check, record by
  record: the core's ``_validate`` before it took whole batches;
- ``batch``: ``BatchScorer._validate`` as it runs now (``parse_transactions`` over the batch).

    .venv/bin/python bench/bench_validation.py --model .local/models/champion
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import benchkit
import machine_info
from bench_core import BATCH, records

from stream_app.metrics import create_worker_metrics
from stream_app.model_store import load_folder
from stream_app.processor import BatchScorer, duplicate_rejection
from stream_app.schemas import DeadLetter, Transaction
from stream_app.scoring import thresholds_for
from stream_app.validation import RawRecord, Rejection, dead_letter, parse_transaction

Validated = tuple[list[Transaction], list[RawRecord], list[DeadLetter]]


def per_message(scorer: BatchScorer, batch: Sequence[RawRecord], now: datetime) -> Validated:
    """The core's validation before it took whole batches, kept here as the reference."""
    transactions: list[Transaction] = []
    sources: list[RawRecord] = []
    dead_letters: list[DeadLetter] = []
    accepted: set[tuple[str, str]] = set()
    state = scorer.state
    for record in batch:
        parsed = parse_transaction(record.value, now)
        if isinstance(parsed, Transaction) and not state.already_observed(
            parsed.customer_id, record.offset
        ):
            key = (parsed.customer_id, parsed.transaction_id)
            if key in accepted or state.is_duplicate(*key):
                parsed = duplicate_rejection(parsed)
            else:
                accepted.add(key)
        if isinstance(parsed, Rejection):
            dead_letters.append(dead_letter(record, parsed, now))
        else:
            transactions.append(parsed)
            sources.append(record)
    return transactions, sources, dead_letters


def per_batch(scorer: BatchScorer, batch: Sequence[RawRecord], now: datetime) -> Validated:
    return scorer._validate(batch, now)


LEGS: dict[str, Callable[[BatchScorer, Sequence[RawRecord], datetime], Validated]] = {
    "per_message": per_message,
    "batch": per_batch,
}


def run_once(model: Path, batches: list[RawRecord], tries: int) -> dict[str, float]:
    """CPU seconds each leg spent over all batches, on one shared, growing state: per batch,
    the least of ``tries`` runs of each leg, the legs taking turns (validation changes no
    state, so a batch can be validated again)."""
    bundle = load_folder(model)
    scorer = BatchScorer(bundle, thresholds_for(bundle, None, None), create_worker_metrics())
    spent = dict.fromkeys(LEGS, 0.0)
    clock = time.process_time
    for start in range(0, len(batches), BATCH):
        batch, now = batches[start : start + BATCH], datetime.now(UTC)
        least = dict.fromkeys(LEGS, float("inf"))
        outcomes = {}
        for attempt in range(tries):
            order = list(LEGS.items()) if attempt % 2 == 0 else list(reversed(LEGS.items()))
            for name, validate in order:
                mark = clock()
                outcomes[name] = validate(scorer, batch, now)
                least[name] = min(least[name], clock() - mark)
        if outcomes["per_message"] != outcomes["batch"]:  # transactions, sources, dead letters
            raise SystemExit(f"the legs disagree on the batch at {start}")
        for name, seconds in least.items():
            spent[name] += seconds
        transactions, sources, _ = outcomes["batch"]
        scorer._featurise(transactions, sources)
        scorer.state.take_changes()
    return spent


def run(args: argparse.Namespace) -> dict[str, Any]:
    batches = records(benchkit.payloads(args.rows))
    runs = [run_once(args.model, batches, args.tries) for _ in range(args.repeat)]
    us_per_row = {
        name: [seconds / len(batches) * 1e6 for seconds in (run[name] for run in runs)]
        for name in LEGS
    }
    ratios = [run["per_message"] / run["batch"] for run in runs]
    return {
        "rows": len(batches),
        "batch": BATCH,
        "repeat": args.repeat,
        "tries": args.tries,
        "cpu_us_per_row": {name: min(values) for name, values in us_per_row.items()},
        "runs_cpu_us_per_row": us_per_row,
        # per run, both legs timed over the same batches in the same minutes
        "per_message_over_batch": ratios,
        "per_message_over_batch_median": sorted(ratios)[len(ratios) // 2],
        "machine": machine_info.machine(),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs, best (and median ratio)")
    parser.add_argument("--tries", type=int, default=5, help="per batch and leg, least counts")
    parser.add_argument("--model", type=Path, default=benchkit.DEFAULT_MODEL)
    parser.add_argument(
        "--output", type=Path, default=benchkit.REPO / ".local/bench/validation.json"
    )
    args = parser.parse_args(argv)
    result = run(args)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    for name, value in result["cpu_us_per_row"].items():
        print(f"{name:>12}: {value:6.2f} cpu us/row (best of {args.repeat})")
    ratios = ", ".join(f"{ratio:.3f}" for ratio in result["per_message_over_batch"])
    print(f"per_message / batch: median {result['per_message_over_batch_median']:.3f} ({ratios})")
    print(f"wrote {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
