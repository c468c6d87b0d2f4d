"""A bare faust-streaming agent doing no work: the ceiling of the Faust shell on this machine.

Run by bench/bench_compare.py as a process of its own, once per transport, over a topic
already holding ``--count`` small messages: the agent takes ``take(1000, within=0.05)``
batches and only counts them. The rate is from the first batch to the last message, so
startup and recovery are not in it. It writes one JSON object to ``--result`` and exits.

    .venv/bin/python bench/faust_bare.py --topic T --count 200000 --transport faust --result r.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import benchkit


def run(args: argparse.Namespace) -> None:
    import faust

    from stream_app.worker.kafka_transport import NoGapTransport

    app = faust.App(
        f"bench-bare-{uuid.uuid4().hex[:8]}",
        broker=f"kafka://{args.bootstrap}",
        datadir=args.datadir,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        topic_partitions=3,
    )
    if args.transport == "worker":
        app.transport = NoGapTransport(app.conf.broker_consumer, app)
    topic = app.topic(args.topic, key_serializer="raw", value_serializer="raw")
    state: dict[str, Any] = {"seen": 0, "first": None}

    @app.agent(topic, concurrency=1)
    async def count(stream: faust.StreamT[bytes]) -> None:
        async for batch in stream.take(1000, within=0.05):
            if state["first"] is None:
                state["first"] = (time.perf_counter(), len(batch))
            state["seen"] += len(batch)
            if state["seen"] >= args.count:
                started, first_batch = state["first"]
                elapsed = time.perf_counter() - started
                counted = state["seen"] - first_batch
                result = {
                    "transport": args.transport,
                    "messages": state["seen"],
                    "msg_per_s": counted / elapsed if elapsed > 0 else 0.0,
                    "seconds": elapsed,
                }
                Path(args.result).write_text(json.dumps(result))
                os._exit(0)  # the measurement is done: no orderly shutdown to wait for

    faust.Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


def bare_leg(count: int, runs: int, workdir: Path) -> dict[str, Any]:
    """``runs`` alternating runs of each transport over one topic of ``count`` small messages,
    each run a new consumer group from the start; the best run of each counts."""
    topic = f"bench-bare-{uuid.uuid4().hex[:8]}"
    benchkit.create_topics([topic])
    try:
        benchkit.produce(topic, [(f"k{i % 1000}".encode(), b"x" * 64) for i in range(count)])
        rates: dict[str, list[float]] = {"faust": [], "worker": []}
        for run_index in range(runs):
            for transport in ("faust", "worker") if run_index % 2 == 0 else ("worker", "faust"):
                rates[transport].append(_one_run(topic, count, transport, workdir))
    finally:
        benchkit.delete_topics([topic, *benchkit.topics_with_prefix("bench-bare-")])
    return {
        "messages": count,
        "runs_each": runs,
        "faust_transport_msg_per_s": rates["faust"],
        "worker_transport_msg_per_s": rates["worker"],
        "msg_per_s": max(rates["faust"]),
        "worker_transport_best_msg_per_s": max(rates["worker"]),
    }


def _one_run(topic: str, count: int, transport: str, workdir: Path) -> float:
    result = workdir / f"bare-{uuid.uuid4().hex[:8]}.json"
    command = [
        sys.executable,
        str(Path(__file__)),
        "--topic",
        topic,
        "--count",
        str(count),
        "--transport",
        transport,
        "--bootstrap",
        benchkit.BOOTSTRAP,
        "--datadir",
        str(workdir / result.stem),
        "--result",
        str(result),
    ]
    log = workdir / f"{result.stem}.log"
    with log.open("wb") as out:
        finished = subprocess.run(
            command, check=False, stdout=out, stderr=subprocess.STDOUT, timeout=900
        )
    code = finished.returncode
    if code != 0 or not result.exists():
        raise SystemExit(f"bare Faust run failed ({code}): {log.read_text()[-2000:]}")
    return float(json.loads(result.read_text())["msg_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--transport", choices=["faust", "worker"], default="faust")
    parser.add_argument("--bootstrap", default=os.environ.get("BENCH_BOOTSTRAP", "127.0.0.1:9092"))
    parser.add_argument("--datadir", required=True)
    parser.add_argument("--result", required=True)
    run(parser.parse_args())


if __name__ == "__main__":
    main()
