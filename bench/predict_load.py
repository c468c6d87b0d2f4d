"""``POST /predict`` under load: a closed loop of keep-alive clients and an open loop at a fixed
rate, one transaction per request. The /predict leg of bench/bench_compare.py; apart because it
is an HTTP load generator, not a Kafka leg.

The closed loop runs twice: with this module's aiohttp client, and with wrk (C, one thread,
bench/predict_wrk.lua; `deploy/tools/install-wrk.sh`). On two cores the Python client's own CPU
(~300 us per request) is about what the worker spends on a request, so it caps what it can
measure; each leg reports its client's CPU as a share of the machine, and the /predict goal is
read from the wrk leg when wrk is installed (the server's rate, not the client's).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import benchkit


def predict_legs(
    port: int, clients: int, requests: int, rate: float, seconds: float
) -> dict[str, Any]:
    # Transactions the stream has not seen: /predict refuses an id the customer already had.
    count = max(requests, int(rate * seconds))
    bodies = [value for _, value in benchkit.payloads(count, seed=3)]
    url = f"http://127.0.0.1:{port}/predict"
    legs = {
        "predict_concurrent": asyncio.run(closed_loop(url, bodies, clients, requests)),
        "predict_fixed_rate": asyncio.run(open_loop(url, bodies, rate, seconds)),
    }
    if shutil.which("wrk") is not None:
        legs["predict_wrk"] = wrk_closed_loop(url, bodies, clients, seconds)
    return legs


def client_cpu_share(cpu_seconds: float, elapsed: float) -> float:
    """A load generator's CPU as a share of the whole machine's over the leg."""
    return cpu_seconds / (elapsed * (os.cpu_count() or 1))


def wrk_closed_loop(
    url: str, bodies: Sequence[bytes], clients: int, seconds: float
) -> dict[str, Any]:
    """``clients`` keep-alive connections from wrk, one thread, for ``seconds``."""
    script = Path(__file__).with_name("predict_wrk.lua")
    with tempfile.NamedTemporaryFile("wb", suffix=".jsonl") as body_file:
        body_file.write(b"\n".join(bodies) + b"\n")
        body_file.flush()
        command = ["wrk", "-t1", f"-c{clients}", f"-d{seconds:g}s", "--timeout", "5s"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(
            [*command, "-s", str(script), url, "--", body_file.name],
            capture_output=True,
            text=True,
            check=True,
        )
        elapsed = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "client": "wrk",
        "clients": clients,
        "requests": summary["requests"],
        "errors": summary["errors"],
        "req_per_s": summary["requests"] / (summary["duration_us"] / 1e6),
        "p50_ms": summary["p50_us"] / 1000,
        "p99_ms": summary["p99_us"] / 1000,
        "client_cpu_share": client_cpu_share(cpu, elapsed),
    }


async def closed_loop(
    url: str, bodies: Sequence[bytes], clients: int, requests: int
) -> dict[str, Any]:
    """``clients`` keep-alive connections, each sending its next request on the last answer."""
    latencies: list[float] = []
    errors = 0
    next_index = iter(range(requests))

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        for index in next_index:
            started = time.perf_counter()
            async with session.post(url, data=bodies[index % len(bodies)]) as response:
                await response.read()
                errors += response.status != 200
            latencies.append((time.perf_counter() - started) * 1000)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        started, cpu_started = time.perf_counter(), time.process_time()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {
        "client": "aiohttp",
        "client_cpu_share": client_cpu_share(cpu, elapsed),
        "clients": clients,
        "requests": requests,
        "errors": errors,
        "req_per_s": requests / elapsed,
        "p50_ms": benchkit.percentile(latencies, 0.5),
        "p99_ms": benchkit.percentile(latencies, 0.99),
    }


async def open_loop(
    url: str, bodies: Sequence[bytes], rate: float, seconds: float
) -> dict[str, Any]:
    """Requests start on a fixed schedule whatever the answers; latency counts from the
    scheduled start, so a server that falls behind shows it (no coordinated omission)."""
    total = int(rate * seconds)
    latencies: list[float] = []
    errors = 0

    async def one(session: aiohttp.ClientSession, index: int, scheduled: float) -> None:
        nonlocal errors
        async with session.post(url, data=bodies[index % len(bodies)]) as response:
            await response.read()
            errors += response.status != 200
        latencies.append((time.perf_counter() - scheduled) * 1000)

    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        tasks = []
        for index in range(total):
            scheduled = started + index / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(session, index, scheduled)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
    return {
        "rate": rate,
        "requests": total,
        "errors": errors,
        "achieved_req_per_s": total / elapsed,
        "p50_ms": benchkit.percentile(latencies, 0.5),
        "p99_ms": benchkit.percentile(latencies, 0.99),
    }
