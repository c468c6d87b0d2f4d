"""Scale-out on one machine: one worker against two workers of one group, on six partitions.

Both legs drain the same backlog of N transactions from fresh topics with six partitions: the
workers start first and the backlog is produced once every partition is owned (by the single
worker, or three each), so no rebalance falls inside the measured span. Throughput is measured
as in bench/bench_compare.py, from the Kafka timestamps of the first and the last verdict.

Beside each leg's throughput it reports where the machine's cores went during the drain: the
CPU seconds of each worker, of the broker's JVM and of this process (the producer and the
reader), divided by the drain's wall time, so "cores used" can be compared with ``nproc``. On a
2-core machine the broker and the benchmark share the cores with the workers: the ratio says how
much a second process buys here, not what a second machine would.

    .venv/bin/python bench/bench_scaling.py --model .local/models/champion
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import benchkit
import machine_info
from benchkit import Message

PARTITIONS = 6
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far, all its threads (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def broker_pid() -> int:
    """The local broker `make bench` started (deploy/kafka/broker.sh writes its pid file)."""
    return int((benchkit.REPO / ".local/kafka/broker.pid").read_text().split()[0])


def owned_partitions(port: int) -> list[int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
        return list(json.load(response)["transactions_partitions"])


def wait_all_owned(ports: Sequence[int], deadline_seconds: float = 120) -> list[list[int]]:
    """Until the group has settled: every partition owned, and by every worker some."""
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        try:
            owned = [owned_partitions(port) for port in ports]
        except OSError:
            owned = []
        if (
            owned
            and all(owned)
            and sorted(p for ps in owned for p in ps) == list(range(PARTITIONS))
        ):
            return owned
        time.sleep(0.2)
    raise SystemExit(f"the group did not settle on {PARTITIONS} partitions: {owned}")


def scaling_leg(
    workers: int, model: Path, messages: Sequence[Message], first_port: int, workdir: Path
) -> dict[str, Any]:
    topics = benchkit.fresh_topics(f"bench-scale{workers}", partitions=PARTITIONS)
    app_id = f"bench-scale{workers}-{uuid.uuid4().hex[:8]}"
    ports = [first_port + index for index in range(workers)]
    processes = []
    try:
        for index, port in enumerate(ports):
            data_dir = str(workdir / f"{app_id}-{index}")
            env = benchkit.scorer_env(topics, model, app_id, port, data_dir, PARTITIONS)
            log = workdir / f"{app_id}-{index}.log"
            command = [sys.executable, "-m", "stream_app.worker"]
            processes.append(benchkit.start_process(command, env, log))
        for port, process in zip(ports, processes, strict=True):
            benchkit.wait_ready(port, process)
        owned = wait_all_owned(ports)
        pids = {"broker": broker_pid(), **{f"worker{i}": p.pid for i, p in enumerate(processes)}}
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        own_before, started = own_cpu_seconds(), time.monotonic()
        benchkit.produce(topics.transactions, messages)

        def alive() -> bool:
            return all(process.poll() is None for process in processes)

        seen = benchkit.wait_for_count(
            topics.scores, len(messages), 900, alive=alive, partitions=PARTITIONS
        )
        wall = time.monotonic() - started
        cpu = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
        cpu["benchmark"] = own_cpu_seconds() - own_before
        stamps, samples = benchkit.verdict_timestamps(topics.scores, seen, PARTITIONS)
        benchkit.check_verdicts(samples)
    finally:
        for process in processes:
            benchkit.stop_process(process)
        benchkit.delete_topics([*topics.all(), *benchkit.topics_with_prefix(app_id)])
    return {
        "workers": workers,
        "partitions_owned": owned,
        "transactions": len(messages),
        "verdicts": len(stamps),
        "tx_per_s": benchkit.throughput(stamps),
        "drain_wall_seconds": wall,
        "cpu_seconds": cpu,
        "cores_used": {name: seconds / wall for name, seconds in cpu.items()},
    }


def table(result: dict[str, Any]) -> str:
    lines = ["| leg | tx/s | cores: workers | broker | benchmark |", "|---|---|---|---|---|"]
    for leg in (result["one_worker"], result["two_workers"]):
        cores = leg["cores_used"]
        workers = sum(v for k, v in cores.items() if k.startswith("worker"))
        lines.append(
            f"| {leg['workers']} worker(s), {PARTITIONS} partitions | {leg['tx_per_s']:,.0f} | "
            f"{workers:.2f} | {cores['broker']:.2f} | {cores['benchmark']:.2f} |"
        )
    lines.append(f"\ntwo workers / one worker: {result['ratio_two_to_one']:.2f}")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=benchkit.DEFAULT_MODEL)
    parser.add_argument("--transactions", type=int, default=60_000)
    parser.add_argument("--port", type=int, default=18700, help="first worker's web port")
    parser.add_argument("--output", type=Path, default=Path(".local/bench/scaling.json"))
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    messages = benchkit.payloads(args.transactions)
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as folder:
        workdir = Path(folder)
        one = scaling_leg(1, args.model, messages, args.port, workdir)
        two = scaling_leg(2, args.model, messages, args.port + 10, workdir)
    result = {
        "machine": machine_info.machine(),
        "one_worker": one,
        "two_workers": two,
        "ratio_two_to_one": two["tx_per_s"] / one["tx_per_s"],
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    print(table(result))


if __name__ == "__main__":
    main()
