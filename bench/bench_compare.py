"""Side by side, in one run on the same broker: what the scoring hot path costs, leg by leg.

1. limit: the booster alone scoring precomputed feature rows in batches (rows/s), and the pure
   core (BatchScorer: validation, features, scoring, reasons, verdicts, encoding) without Kafka;
2. baseline: a plain confluent-kafka loop doing the worker's work (bench/baseline_loop.py);
3. worker: the Faust worker (``python -m stream_app.worker``) end to end, and beside it a bare
   Faust agent doing no work (bench/faust_bare.py), with Faust's transport and with the
   worker's own transport (its no-gap consumer), alternating: the shell's ceiling in the same run;
4. predict: ``POST /predict``, one transaction per request, under concurrent load
   (bench/predict_load.py).

Kafka legs get fresh topics and a backlog of N transactions (throughput: first to last verdict)
and then a fixed rate for a while (p50/p99 from produce to verdict). Prints one JSON document
and a table; goals are reported as met or not, never hidden.

    .venv/bin/python bench/bench_compare.py            # the full run (about 5 minutes)
    .venv/bin/python bench/bench_compare.py --quick    # a smoke run (about 2 minutes)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import benchkit
import machine_info
import numpy as np
from bench_goals import COMPARE_GOALS, goals, report
from benchkit import Message
from faust_bare import bare_leg
from predict_load import predict_legs

from stream_app.features import FEATURE_NAMES
from stream_app.metrics import create_worker_metrics
from stream_app.model_store import load_folder
from stream_app.processor import BatchScorer
from stream_app.scoring import thresholds_for
from stream_app.validation import RawRecord
from stream_app.verdicts import encode_verdicts

BATCH = 1000
LOW_RATE = 200.0  # the demo's rate: latency when the worker is mostly idle


# --- 1. the limit: no Kafka --------------------------------------------------------------------


def records(messages: Sequence[Message]) -> list[RawRecord]:
    now_ms = int(time.time() * 1000)
    return [
        RawRecord("transactions", index % 3, index, key, value, now_ms)
        for index, (key, value) in enumerate(messages)
    ]


def new_scorer(model: Path) -> BatchScorer:
    bundle = load_folder(model)
    return BatchScorer(bundle, thresholds_for(bundle, None, None), create_worker_metrics())


def limit_leg(model: Path, messages: Sequence[Message], repeat: int) -> dict[str, Any]:
    """Booster-only rows/s on the features the core computes, and the core's own rows/s."""
    core_rates: list[float] = []
    core_cpu_rates: list[float] = []  # per CPU second: less disturbed by other processes
    matrices: list[np.ndarray[Any, np.dtype[np.float32]]] = []
    for _ in range(repeat):
        scorer, batches = new_scorer(model), records(messages)
        started, cpu_started = time.perf_counter(), time.process_time()
        for start in range(0, len(batches), BATCH):
            result = scorer.score_batch(batches[start : start + BATCH])
            encode_verdicts(result.verdicts)  # what the publisher hands to librdkafka
            if len(matrices) * BATCH < len(messages):
                matrices.append(_features_of(result.verdicts))
        core_rates.append(len(batches) / (time.perf_counter() - started))
        core_cpu_rates.append(len(batches) / (time.process_time() - cpu_started))
    bundle = load_folder(model)
    booster_rates = []
    for _ in range(repeat):
        started = time.perf_counter()
        rows = sum(len(bundle.predict(matrix)) for matrix in matrices)
        booster_rates.append(rows / (time.perf_counter() - started))
    return {
        "booster_rows_per_s": max(booster_rates),
        "core_rows_per_s": max(core_rates),
        "core_rows_per_cpu_s": max(core_cpu_rates),
        "rows": len(messages),
        "batch": BATCH,
    }


def _features_of(verdicts: Sequence[Any]) -> np.ndarray[Any, np.dtype[np.float32]]:
    rows = [[v.features[name] for name in FEATURE_NAMES] for v in verdicts]
    return np.asarray(rows, dtype=np.float32)


# --- 2 and 3: the Kafka legs -------------------------------------------------------------------


class Scorer:
    """A scoring process (worker or baseline) on its own fresh topics."""

    def __init__(self, kind: str, model: Path, port: int, workdir: Path) -> None:
        self.kind, self.port = kind, port
        self.topics = benchkit.fresh_topics(f"bench-{kind}")
        self.app_id = f"bench-{kind}-{uuid.uuid4().hex[:8]}"
        self.changelog = f"{self.app_id}-customer-state-changelog"
        data_dir = workdir / self.app_id
        env = benchkit.scorer_env(self.topics, model, self.app_id, port, str(data_dir))
        if kind == "worker":
            command = [sys.executable, "-m", "stream_app.worker"]
        else:
            benchkit.create_topics([self.changelog], {"cleanup.policy": "compact"})
            script = str(benchkit.REPO / "bench" / "baseline_loop.py")
            command = [sys.executable, script, "--changelog-topic", self.changelog]
        self.log = workdir / f"{self.app_id}.log"
        self.command, self.env = command, env
        self.process: Any = None

    def start(self) -> None:
        self.process = benchkit.start_process(self.command, self.env, self.log)

    def wait_ready(self) -> None:
        if self.kind == "worker":
            benchkit.wait_ready(self.port, self.process)
        else:  # the baseline logs its partition assignment
            deadline = time.monotonic() + 60
            while "assigned" not in self.log.read_text() and time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise SystemExit(f"baseline exited: {self.log.read_text()[-2000:]}")
                time.sleep(0.1)

    def alive(self) -> bool:
        return bool(self.process is not None and self.process.poll() is None)

    def stop(self) -> None:
        if self.process is not None:
            benchkit.stop_process(self.process)
        names = [*self.topics.all(), self.changelog]
        benchkit.delete_topics(names + benchkit.topics_with_prefix(self.app_id))


def throughput_leg(
    kind: str, model: Path, messages: Sequence[Message], port: int, workdir: Path
) -> dict[str, Any]:
    """Drain a backlog of ``messages`` as fast as possible."""
    scorer = Scorer(kind, model, port, workdir)
    try:
        benchkit.produce(scorer.topics.transactions, messages)
        scorer.start()
        started = time.monotonic()
        seen = benchkit.wait_for_count(
            scorer.topics.scores, len(messages), deadline_seconds=900, alive=scorer.alive
        )
        wall = time.monotonic() - started
        rss = benchkit.rss_mib(scorer.process.pid)
        stamps, samples = benchkit.verdict_timestamps(scorer.topics.scores, seen)
        benchkit.check_verdicts(samples)
    finally:
        scorer.stop()
    return {
        "transactions": len(messages),
        "verdicts": len(stamps),
        "tx_per_s": benchkit.throughput(stamps),
        "wall_seconds_incl_startup": wall,
        "rss_mib": rss,
    }


def latency_leg(
    kind: str,
    model: Path,
    messages: Sequence[Message],
    rate: float,
    port: int,
    workdir: Path,
    predict: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A fixed rate to a running scorer; with ``predict`` options, then load its /predict."""
    scorer = Scorer(kind, model, port, workdir)
    try:
        scorer.start()
        scorer.wait_ready()
        result: dict[str, Any] = benchkit.paced_latency(scorer.topics, messages, rate)
        if predict is not None:
            result = {"stream": result, **predict_legs(port, **predict)}
    finally:
        scorer.stop()
    return result


# --- the run -----------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    paced_count = int(args.rate * args.seconds)
    messages = benchkit.payloads(max(args.transactions, paced_count))
    backlog, paced = messages[: args.transactions], messages[:paced_count]
    low = benchkit.payloads(int(LOW_RATE * args.seconds), seed=5)
    predict = {
        "clients": args.clients,
        "requests": args.predict_requests,
        "rate": args.predict_rate,
        "seconds": args.seconds,
    }
    with tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp:
        workdir = Path(tmp)
        limit = limit_leg(args.model, messages[: args.core_rows], args.repeat)
        baseline = throughput_leg("baseline", args.model, backlog, args.port, workdir)
        worker = throughput_leg("worker", args.model, backlog, args.port, workdir)
        bare = bare_leg(args.bare_messages, args.bare_runs, workdir)
        baseline["latency"] = latency_leg(
            "baseline", args.model, paced, args.rate, args.port, workdir
        )
        served = latency_leg("worker", args.model, paced, args.rate, args.port, workdir, predict)
        worker["latency_at_low_rate"] = latency_leg(
            "worker", args.model, low, LOW_RATE, args.port, workdir
        )
    worker["latency"] = served.pop("stream")
    return {
        "machine": machine_info.machine(),
        "model": str(args.model),
        "settings": {k: str(v) for k, v in vars(args).items()},
        "limit": limit,
        "baseline": baseline,
        "worker": worker,
        "faust_bare": bare,
        "predict": served,
        "goals": goals(goal_values(limit, baseline, worker, bare, served), COMPARE_GOALS),
    }


def goal_values(
    limit: dict[str, Any],
    baseline: dict[str, Any],
    worker: dict[str, Any],
    bare: dict[str, Any],
    served: dict[str, Any],
) -> dict[str, float]:
    return {
        "core_rows_per_s": limit["core_rows_per_s"],
        "faust_bare_msg_per_s": bare["msg_per_s"],
        "worker_tx_per_s": worker["tx_per_s"],
        "worker_share_of_faust_bare": worker["tx_per_s"] / bare["msg_per_s"],
        "worker_share_of_baseline": worker["tx_per_s"] / baseline["tx_per_s"],
        "worker_p50_ms_at_2000": worker["latency"]["p50_ms"],
        "worker_p99_ms_at_2000": worker["latency"]["p99_ms"],
        "worker_p99_ms_at_200": worker["latency_at_low_rate"]["p99_ms"],
        # The server's rate: from wrk's leg where wrk is installed (predict_load's docstring).
        "predict_req_per_s": served.get("predict_wrk", served["predict_concurrent"])["req_per_s"],
    }


def table(result: dict[str, Any]) -> str:
    limit, base, work, pred = (result[k] for k in ("limit", "baseline", "worker", "predict"))
    bare = result["faust_bare"]
    conc, fixed = pred["predict_concurrent"], pred["predict_fixed_rate"]
    rate = base["latency"]["rate"]

    def lat(leg: dict[str, Any]) -> str:
        return f"{leg['p50_ms']:.1f} / {leg['p99_ms']:.1f}"

    rows = [
        ("leg", "throughput", f"p50 / p99 ms at {rate:,.0f}/s"),
        ("limit: booster, batch 1000", f"{limit['booster_rows_per_s']:,.0f} rows/s", "-"),
        ("limit: pure core, no Kafka", f"{limit['core_rows_per_s']:,.0f} rows/s", "-"),
        ("baseline: confluent-kafka loop", f"{base['tx_per_s']:,.0f} tx/s", lat(base["latency"])),
        ("worker: Faust, end to end", f"{work['tx_per_s']:,.0f} tx/s", lat(work["latency"])),
        ("worker at 200/s", "-", lat(work["latency_at_low_rate"])),
        ("bare Faust agent, no work", f"{bare['msg_per_s']:,.0f} msg/s", "-"),
        (
            "bare Faust, the worker's transport",
            f"{bare['worker_transport_best_msg_per_s']:,.0f} msg/s",
            "-",
        ),
        (
            f"POST /predict, {conc['clients']} clients",
            f"{conc['req_per_s']:,.0f} req/s",
            f"{lat(conc)} (closed loop)",
        ),
        *(
            [
                (
                    f"POST /predict, {pred['predict_wrk']['clients']} clients (wrk)",
                    f"{pred['predict_wrk']['req_per_s']:,.0f} req/s",
                    f"{lat(pred['predict_wrk'])} (closed loop)",
                )
            ]
            if "predict_wrk" in pred
            else []
        ),
        (
            f"POST /predict at {fixed['rate']:,.0f}/s",
            f"{fixed['achieved_req_per_s']:,.0f} req/s",
            lat(fixed),
        ),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines.append("")
    lines.append(report(result["goals"], COMPARE_GOALS))
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--transactions", type=int, default=200_000, help="backlog per leg")
    parser.add_argument("--rate", type=float, default=2_000, help="fixed rate, tx/s")
    parser.add_argument("--seconds", type=float, default=20, help="duration at the fixed rate")
    parser.add_argument("--core-rows", type=int, default=50_000, help="rows for the no-Kafka leg")
    parser.add_argument("--repeat", type=int, default=3, help="no-Kafka runs, best counts")
    parser.add_argument("--clients", type=int, default=32, help="concurrent /predict clients")
    parser.add_argument("--predict-requests", type=int, default=20_000)
    parser.add_argument("--bare-messages", type=int, default=200_000, help="bare Faust backlog")
    parser.add_argument("--bare-runs", type=int, default=3, help="bare Faust runs per transport")
    parser.add_argument("--predict-rate", type=float, default=2_000, help="/predict req/s")
    parser.add_argument("--model", type=Path, default=benchkit.DEFAULT_MODEL)
    parser.add_argument("--port", type=int, default=6098, help="the worker's web port")
    parser.add_argument("--output", type=Path, help="also write the JSON here")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.transactions, args.seconds, args.core_rows = 30_000, 5, 10_000
        args.predict_requests, args.repeat = 3_000, 1
        args.bare_messages, args.bare_runs = 20_000, 1
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    result = run(args)
    document = json.dumps(result, indent=2)
    if args.output:
        args.output.write_text(document + "\n")
    print(document)
    print(table(result))


if __name__ == "__main__":
    main()
