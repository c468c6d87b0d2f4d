"""The worker's Prometheus metrics, in one place, on a registry the caller owns.

Conventions: seconds for durations, ``_total`` for counters, and never a label whose values grow
with traffic (no customer or transaction ids): label values here come from small fixed sets.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from typing import get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from stream_app.rules.model import RuleRejectionReason
from stream_app.schemas import Decision
from stream_app.validation import DeadLetterReason

# Latency buckets from 1 ms to 10 s: the p99 budget is 50 ms, so resolution is finest there.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000)
SCORE_BUCKETS = (0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99)


@dataclass(frozen=True)
class WorkerMetrics:
    registry: CollectorRegistry
    scored: Counter
    decisions: Counter
    dead_letters: Counter
    scores: Histogram
    scoring_latency: Histogram
    end_to_end_latency: Histogram
    batch_size: Histogram
    model_info: Gauge
    predict_requests: Counter
    labels_applied: Counter
    labels_rejected: Counter
    consumer_lag: Gauge
    unreadable_states: Counter
    partition_stalls: Counter
    rules_applied: Counter
    rules_rejected: Counter
    rules_loaded: Gauge
    shadow_rule_hits: Counter


def create_worker_metrics(registry: CollectorRegistry | None = None) -> WorkerMetrics:
    """Build the metric set on ``registry`` (a fresh one by default, so tests never collide)."""
    metrics = _build(registry if registry is not None else CollectorRegistry())
    # Every known label value exported at zero from the start: rate() and increase() then see
    # the first dead letter (or block) of a kind, not only the second.
    for decision in get_args(Decision):
        metrics.decisions.labels(decision)
    for reason in get_args(DeadLetterReason):
        metrics.dead_letters.labels(reason)
    for reason in get_args(RuleRejectionReason):
        metrics.rules_rejected.labels(reason)
    for mode in ("active", "shadow"):
        metrics.rules_loaded.labels(mode)
    return metrics


def _build(registry: CollectorRegistry) -> WorkerMetrics:
    return WorkerMetrics(
        registry=registry,
        scored=Counter(
            "fraudstream_transactions_scored",
            "Transactions that received a verdict.",
            registry=registry,
        ),
        decisions=Counter(
            "fraudstream_decisions",
            "Verdicts by decision.",
            ["decision"],
            registry=registry,
        ),
        dead_letters=Counter(
            "fraudstream_dead_letters",
            "Messages sent to the dead-letter topic, by reason.",
            ["reason"],
            registry=registry,
        ),
        scores=Histogram(
            "fraudstream_score",
            "Distribution of model scores.",
            buckets=SCORE_BUCKETS,
            registry=registry,
        ),
        scoring_latency=Histogram(
            "fraudstream_batch_scoring_seconds",
            "Time to validate, featurise and score one batch.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        end_to_end_latency=Histogram(
            "fraudstream_end_to_end_latency_seconds",
            "Kafka record timestamp of a transaction to its verdict being produced.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
        batch_size=Histogram(
            "fraudstream_batch_size",
            "Messages per scoring batch.",
            buckets=BATCH_BUCKETS,
            registry=registry,
        ),
        model_info=Gauge(
            "fraudstream_model_info",
            "The model in service (value 1), by name and version.",
            ["model_name", "model_version"],
            registry=registry,
        ),
        predict_requests=Counter(
            "fraudstream_predict_requests",
            "POST /predict requests, by decision or rejection reason.",
            ["result"],
            registry=registry,
        ),
        labels_applied=Counter(
            "fraudstream_labels_applied",
            "Labels folded into merchant risk.",
            registry=registry,
        ),
        labels_rejected=Counter(
            "fraudstream_labels_rejected",
            "Labels not usable for merchant risk, by reason.",
            ["reason"],
            registry=registry,
        ),
        unreadable_states=Counter(
            "fraudstream_unreadable_customer_states",
            "Recovered customer states that could not be decoded (the customer started empty).",
            registry=registry,
        ),
        consumer_lag=Gauge(
            "fraudstream_consumer_lag",
            "Transactions not yet read, per partition of the transactions topic.",
            ["partition"],
            registry=registry,
        ),
        partition_stalls=Counter(
            "fraudstream_partition_stalls",
            "Assigned transactions partitions seen stalled: records to read, no progress.",
            registry=registry,
        ),
        # rule_id values are operators' rule ids: a small set growing with the rules written,
        # never with traffic.
        rules_applied=Counter(
            "fraudstream_rules_applied",
            "Rule records (puts and deletes) from fraud-rules applied to the rule set.",
            registry=registry,
        ),
        rules_rejected=Counter(
            "fraudstream_rules_rejected",
            "Rule records that failed validation (dead-lettered; the rule set kept), by reason.",
            ["reason"],
            registry=registry,
        ),
        rules_loaded=Gauge(
            "fraudstream_rules",
            "Rules in the rule set in service, by mode (active or shadow).",
            ["mode"],
            registry=registry,
        ),
        shadow_rule_hits=Counter(
            "fraudstream_shadow_rule_hits",
            "Transactions a shadow rule would have acted on, by rule id (never acted on).",
            ["rule_id"],
            registry=registry,
        ),
    )


def observe_many(histogram: Histogram, values: Sequence[float]) -> None:
    """``histogram.observe(v)`` for every value, with one update per bucket instead of per value.

    The worker observes a batch's scores and latencies together; prometheus_client has no bulk
    call, and a thousand single observations cost more than scoring's bookkeeping should. This
    fills the same buckets (the first whose upper bound is >= the value) and the same sum, via
    the unlabelled histogram's own value objects, which is all ``observe`` itself does. Those are
    private fields: tests/unit/test_metrics.py fails when the installed ``observe`` changes.
    """
    if not values:
        return
    bounds = histogram._upper_bounds  # sorted, the last is +Inf
    counts = [0] * len(bounds)
    for value in values:
        counts[bisect_left(bounds, value)] += 1
    for bucket, count in zip(histogram._buckets, counts, strict=True):
        if count:
            bucket.inc(count)
    histogram._sum.inc(sum(values))
