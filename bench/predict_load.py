"""``POST /predict`` under load: a closed loop of keep-alive clients and an open loop at a fixed
rate, one transaction per request. The /predict leg of bench/bench_compare.py; apart because it
is an HTTP load generator, not a Kafka leg.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
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
    return {
        "predict_concurrent": asyncio.run(closed_loop(url, bodies, clients, requests)),
        "predict_fixed_rate": asyncio.run(open_loop(url, bodies, rate, seconds)),
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
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return {
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
