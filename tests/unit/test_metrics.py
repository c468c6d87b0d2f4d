"""observe_many fills a histogram exactly as one observe per value would."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from stream_app.metrics import observe_many

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


# The hash of prometheus_client's Histogram.observe, whose bucket and sum updates observe_many
# repeats in bulk through the histogram's private fields (_upper_bounds, _buckets, _sum).
# Measured reason (prometheus_client 0.26.0, 1,000 values, 15 buckets): 0.14 ms in bulk against
# 1.25 ms for one observe per value, twice per batch on the worker's hot path.
COPIED_HISTOGRAM_OBSERVE_SHA256 = "38beca3be1d1595b61a274180f55537000e15133ead54fa07e303a86d9ceca39"


def test_the_bulk_observe_still_matches_the_installed_prometheus_client() -> None:
    # An upgrade that changes how observe fills buckets (or renames the fields observe_many
    # writes) must be looked at, not silently run past.
    import hashlib
    import inspect

    from prometheus_client.metrics import Histogram as InstalledHistogram

    source = inspect.getsource(InstalledHistogram.observe)
    assert hashlib.sha256(source.encode()).hexdigest() == COPIED_HISTOGRAM_OBSERVE_SHA256, (
        "prometheus_client's Histogram.observe changed: re-check stream_app/metrics.py:observe_many"
    )
