"""A/B in one run: the worker's backlog throughput with merchant volume read from every
partition (the all-partitions reader, the default) against its own transactions only.

Alternating legs on fresh topics with the same backlog (bench_compare's worker leg), so a loaded
machine slows both alike; the ratio is the number to read.

    .venv/bin/python bench/bench_merchant_volume.py --transactions 100000 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

import benchkit
import machine_info
from bench_compare import throughput_leg

SETTING = "FRAUDSTREAM_WORKER__MERCHANT_VOLUME_ALL_PARTITIONS"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=100_000, help="backlog per leg")
    parser.add_argument("--rounds", type=int, default=2, help="alternating pairs of legs")
    parser.add_argument("--model", type=Path, default=benchkit.DEFAULT_MODEL)
    parser.add_argument("--port", type=int, default=6097, help="the worker's web port")
    args = parser.parse_args()
    messages = benchkit.payloads(args.transactions)
    rates: dict[str, list[float]] = {"all_partitions": [], "own_only": []}
    with tempfile.TemporaryDirectory(prefix="bench-volume-") as tmp:
        for _ in range(args.rounds):
            for name, value in (("own_only", "false"), ("all_partitions", "true")):
                os.environ[SETTING] = value
                leg = throughput_leg("worker", args.model, messages, args.port, Path(tmp))
                rates[name].append(leg["tx_per_s"])
    best = {name: max(values) for name, values in rates.items()}
    print(
        json.dumps(
            {
                "machine": machine_info.machine(),
                "transactions": args.transactions,
                "tx_per_s": rates,
                "median": {name: statistics.median(values) for name, values in rates.items()},
                "ratio_best_all_over_own": best["all_partitions"] / best["own_only"],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
