"""observe_many fills a histogram exactly as one observe per value would."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from stream_app.metrics import observe_many

pytestmark = pytest.mark.unit

BUCKETS = (0.005, 0.01, 0.1, 1.0)
# On a bound, between bounds, below the first, above the last, and repeats.
VALUES = [0.005, 0.0051, 0.0, 0.01, 0.5, 1.0, 7.0, 7.0, 0.1, 0.00001]


def exposition(fill: str) -> bytes:
    registry = CollectorRegistry()
    histogram = Histogram("latency_seconds", "test", buckets=BUCKETS, registry=registry)
    if fill == "one by one":
        for value in VALUES:
            histogram.observe(value)
    else:
        observe_many(histogram, VALUES)
    lines = generate_latest(registry).splitlines(keepends=True)
    return b"".join(line for line in lines if b"_created" not in line)  # creation time differs


def test_bulk_observation_equals_single_observations() -> None:
    bulk = exposition("bulk")
    assert bulk == exposition("one by one")
    assert b'latency_seconds_bucket{le="0.005"} 3.0' in bulk  # 0.0, 0.00001 and 0.005 itself
    assert b'latency_seconds_bucket{le="+Inf"} 10.0' in bulk


def test_no_values_changes_nothing() -> None:
    registry = CollectorRegistry()
    histogram = Histogram("empty_seconds", "test", buckets=BUCKETS, registry=registry)
    observe_many(histogram, [])
    assert b"empty_seconds_count 0.0" in generate_latest(registry)
