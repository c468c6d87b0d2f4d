"""Simulator throughput: history mode into DataFrames, and the wire path used by the stream command.

Usage: .venv/bin/python bench/bench_simulator.py --transactions 1000000

History mode generates whole days, so it simulates enough days for at least the requested number
of transactions with the given customer count and reports what it actually produced. The wire
path builds and serialises Transaction/Label models one by one (what the Kafka sink sends),
without pacing and without a broker.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time

from producers.simulator import SimulatorConfig, generate_history, iter_events


def bench_history(config: SimulatorConfig, transactions: int) -> dict[str, float]:
    days = math.ceil(transactions / (config.n_customers * config.transactions_per_customer_day))
    started = time.perf_counter()
    frame, labels = generate_history(config, days)
    elapsed = time.perf_counter() - started
    return {
        "days": days,
        "transactions": len(frame),
        "labels": len(labels),
        "fraud_rate": float(frame["is_fraud"].mean()),
        "seconds": elapsed,
        "transactions_per_s": len(frame) / elapsed,
    }


def bench_wire(config: SimulatorConfig, transactions: int) -> dict[str, float]:
    started = time.perf_counter()
    events = payload = 0
    for event in iter_events(config, max_transactions=transactions):
        payload += len(event.to_bytes())
        events += 1
    elapsed = time.perf_counter() - started
    return {
        "transactions": transactions,
        "events": events,
        "bytes": payload,
        "seconds": elapsed,
        "transactions_per_s": transactions / elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--wire-transactions", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    config = SimulatorConfig(seed=args.seed, n_customers=args.customers)
    history = bench_history(config, args.transactions)
    wire = bench_wire(config, args.wire_transactions)
    result = {
        "benchmark": "simulator",
        "python": platform.python_version(),
        "customers": args.customers,
        "history": history,
        "wire": wire,
    }
    print(json.dumps(result, indent=2))
    print()
    print(f"{'mode':<10}{'transactions':>14}{'seconds':>10}{'tx/s':>12}")
    for name, row in (("history", history), ("wire", wire)):
        print(
            f"{name:<10}{row['transactions']:>14,.0f}{row['seconds']:>10.2f}"
            f"{row['transactions_per_s']:>12,.0f}"
        )


if __name__ == "__main__":
    main()
