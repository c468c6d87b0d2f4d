"""``POST /predict`` answered by the worker that owns the customer's partition.

Each worker holds the state of its own partitions only, so a request about a customer another
worker owns would otherwise be scored against an empty history. The owner is found from the
group assignment Faust already shares between the workers (``app.router.table_metadata``: which
worker's web address holds which partitions of the customer-state changelog, the partitions of
``transactions`` itself), and the request is forwarded there over its web port, body and all
(Faust's own ``route_req`` forwards neither the body nor a POST's content).

The partition of a customer is the Java client's default partitioner (murmur2 of the key), the
one Faust, kafka-console-producer and the project's own producers (``partitioner`` in
``stream_app.kafka.producer_config``) use. A producer that partitions differently (kcat's
default, for one) splits a customer's state across workers, whatever /predict does; the README
says to pass ``-X partitioner=murmur2_random`` to kcat.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import aiohttp
from aiokafka.partitioner import murmur2

log = logging.getLogger(__name__)

# Set on a forwarded request: its receiver answers from its own state, never forwards again
# (during a rebalance two workers could otherwise pass a request back and forth).
FORWARDED_HEADER = "X-Fraudstream-Forwarded-By"


def partition_for(customer_id: str, partitions: int) -> int:
    """The partition the Java client's default partitioner puts the key ``customer_id`` in."""
    hashed: int = murmur2(customer_id.encode())
    return (hashed & 0x7FFFFFFF) % partitions


def owner_of(
    distribution: Mapping[str, Mapping[str, Sequence[int]]], topic: str, partition: int
) -> str | None:
    """The web address of the worker that holds ``partition`` of ``topic``, if any does."""
    for url, topics in distribution.items():
        if partition in topics.get(topic, ()):
            return url
    return None


@dataclass(frozen=True)
class Forwarded:
    """The owner's answer, passed on unchanged."""

    status: int
    body: bytes
    content_type: str


@dataclass(frozen=True)
class Unavailable:
    """No answer from the owner: the 503 body says why."""

    reason: str  # owner_unknown | owner_unreachable
    error: str


async def forward(
    session: aiohttp.ClientSession, owner_url: str, body: bytes, me: str, timeout_s: float
) -> Forwarded | Unavailable:
    """POST the request's body to the owner's /predict and return its answer as it came."""
    url = owner_url.rstrip("/") + "/predict"
    try:
        async with session.post(
            url,
            data=body,
            headers={FORWARDED_HEADER: me, "Content-Type": "application/json"},
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as response:
            payload = await response.read()
            return Forwarded(response.status, payload, response.content_type)
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        log.warning("/predict: the owner %s did not answer: %r", owner_url, exc)
        return Unavailable("owner_unreachable", f"{owner_url} did not answer: {exc!r}")
