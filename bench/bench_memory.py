"""Worker memory with N customers of state (default 1,000,000): RSS once Faust has recovered it.

The customer-state changelog of a fresh app id is filled with N realistic states (about a month
of paying once a day, as bench/bench_features.py builds them; 1,000 distinct histories reused
round-robin under N distinct customer ids), exactly as the worker writes them
(:func:`stream_app.state.encode_customer`). A worker started on that app id recovers all of them
into its table before it scores anything, so the first verdict for a new transaction marks the
end of recovery; its RSS (``/proc/<pid>/status``) is measured then, and the peak during recovery.

    .venv/bin/python bench/bench_memory.py                      # 1,000,000 customers
    .venv/bin/python bench/bench_memory.py --customers 100000   # quicker
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import benchkit
import machine_info
from bench_features import customer_histories
from bench_goals import MEMORY_GOALS, goals, report
from confluent_kafka import Producer

from stream_app.features import CustomerState
from stream_app.features.customer import observe_customer
from stream_app.state import encode_customer, encode_key

TEMPLATES = 1_000
GOAL_GIB = 1.5


def template_states(rate: float, days: int) -> list[bytes]:
    """Encoded changelog values of TEMPLATES customers with realistic histories."""
    values = []
    for history in customer_histories(TEMPLATES, rate, days, seed=7):
        state = CustomerState()
        for event in history:
            observe_customer(state, event)
        values.append(encode_customer(state, offset=0))
    return values


def prefill(changelog: str, customers: int, values: Sequence[bytes]) -> int:
    """Write one state per customer to the changelog; returns the bytes written."""
    producer = Producer(
        {"bootstrap.servers": benchkit.BOOTSTRAP, "linger.ms": 20, "compression.type": "lz4"}
    )
    written = 0
    for index in range(customers):
        value = values[index % len(values)]
        key = encode_key(f"C{index:08d}")
        written += len(key) + len(value)
        benchkit.produce_waiting(producer, changelog, value, key)
        if index % 10_000 == 0:
            producer.poll(0)
    if producer.flush(300):
        raise SystemExit("could not fill the changelog")
    return written


class PeakRss:
    """Samples a process's RSS every 0.2 s in the background; remembers the highest."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self.peak = max(self.peak, benchkit.rss_mib(self.pid))
            except OSError:  # the process has ended
                return

    def stop(self) -> float:
        self._stop.set()
        self._thread.join(5)
        return self.peak


def measure(args: argparse.Namespace) -> dict[str, Any]:
    topics = benchkit.fresh_topics("bench-memory")
    app_id = f"bench-memory-{uuid.uuid4().hex[:8]}"
    changelog = f"{app_id}-customer-state-changelog"
    benchkit.create_topics([changelog], {"cleanup.policy": "compact"})
    values = template_states(args.rate, args.days)
    started = time.monotonic()
    written = prefill(changelog, args.customers, values)
    prefill_seconds = time.monotonic() - started
    probe = benchkit.payloads(1, seed=99)
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        env = benchkit.scorer_env(topics, args.model, app_id, args.port, tmp)
        env["FRAUDSTREAM_WORKER__LOG_LEVEL"] = args.log_level
        command = [sys.executable, "-m", "stream_app.worker"]
        if args.profile:  # cProfile writes its file when the worker stops (SIGTERM exits cleanly)
            command[1:1] = ["-m", "cProfile", "-o", str(args.profile.resolve())]
        worker = benchkit.start_process(command, env, Path(tmp) / "worker.log")
        peak = PeakRss(worker.pid)
        try:
            idle = benchkit.rss_mib(worker.pid)
            started = time.monotonic()
            benchkit.produce(topics.transactions, probe)
            # The agent starts only after the table is recovered: this verdict marks the end.
            if (
                benchkit.wait_for_count(topics.scores, 1, 1800, alive=lambda: worker.poll() is None)
                < 1
            ):
                raise SystemExit("no verdict: recovery did not finish in time")
            recovery_seconds = time.monotonic() - started
            time.sleep(2)  # let allocations of the last recovered batches settle
            rss = benchkit.rss_mib(worker.pid)
        finally:
            peak_rss = peak.stop()
            benchkit.stop_process(worker)
            if args.worker_log:
                shutil.copyfile(Path(tmp) / "worker.log", args.worker_log)
            benchkit.delete_topics([*topics.all(), changelog])
    return {
        "machine": machine_info.machine(),
        "customers": args.customers,
        "changelog_mib": written / 2**20,
        "mean_state_bytes": sum(len(v) for v in values) / len(values),
        "prefill_seconds": prefill_seconds,
        "recovery_seconds": recovery_seconds,
        "rss_at_start_mib": idle,
        "rss_after_recovery_mib": rss,
        "peak_rss_mib": max(peak_rss, rss),
        "goal_gib": GOAL_GIB,
        "goal_met": rss / 1024 < GOAL_GIB,
        "goals": goals(
            {
                "recovery_customers_per_s": args.customers / recovery_seconds,
                "rss_mib": rss,
            },
            MEMORY_GOALS,
        ),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=1.0, help="payments per customer per day")
    parser.add_argument("--days", type=int, default=30, help="days of history per customer")
    parser.add_argument("--model", type=Path, default=benchkit.DEFAULT_MODEL)
    parser.add_argument("--port", type=int, default=6097)
    parser.add_argument("--output", type=Path, help="also write the JSON here")
    parser.add_argument("--worker-log", type=Path, help="keep a copy of the worker's log here")
    parser.add_argument(
        "--log-level", default="WARNING", help="the worker's log level (INFO shows recovery)"
    )
    parser.add_argument(
        "--profile", type=Path, help="run the worker under cProfile, writing its stats here"
    )
    args = parser.parse_args(argv)
    result = measure(args)
    document = json.dumps(result, indent=2)
    if args.output:
        args.output.write_text(document + "\n")
    print(document)
    verdict = "met" if result["goal_met"] else "NOT met"
    print(f"| customers of state | {result['customers']:,} |")
    print(f"| changelog | {result['changelog_mib']:,.0f} MiB |")
    print(f"| recovery | {result['recovery_seconds']:,.0f} s |")
    print(
        f"| worker RSS after recovery | {result['rss_after_recovery_mib']:,.0f} MiB ({verdict}) |"
    )
    print(f"| worker peak RSS | {result['peak_rss_mib']:,.0f} MiB |")
    print()
    print(report(result["goals"], MEMORY_GOALS))


if __name__ == "__main__":
    main()
