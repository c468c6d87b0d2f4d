"""The drift monitor's Prometheus metrics, on a registry the caller owns.

The ``feature`` label takes its values from the fixed feature list, never from traffic.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

from drift.checks import DriftResult


@dataclass(frozen=True)
class DriftMetrics:
    registry: CollectorRegistry
    drift_share: Gauge
    feature_drift: Gauge
    prediction_drift: Gauge
    alert_rate: Gauge
    windows_checked: Counter
    last_check: Gauge
    check_duration: Gauge
    window_rows: Gauge
    drifted_streak: Gauge
    retrain_requests: Counter
    invalid_messages: Counter

    def record(self, result: DriftResult, seconds: float, streak: int) -> None:
        """Everything one checked window tells; the timestamp is the check's, in wall time."""
        self.drift_share.set(result.drift_share)
        for feature in result.features:
            self.feature_drift.labels(feature.name).set(feature.score)
        self.prediction_drift.set(result.prediction.score)
        rates = {"current": result.alert_rate.current, "reference": result.alert_rate.reference}
        for window, rate in rates.items():
            if rate is not None:
                self.alert_rate.labels(window).set(rate)
        self.windows_checked.inc()
        self.last_check.set_to_current_time()
        self.check_duration.set(seconds)
        self.window_rows.set(result.rows)
        self.drifted_streak.set(streak)


def create_drift_metrics(registry: CollectorRegistry | None = None) -> DriftMetrics:
    """Build the metric set on ``registry`` (a fresh one by default, so tests never collide)."""
    registry = registry if registry is not None else CollectorRegistry()

    def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, doc, labels, registry=registry)

    def counter(name: str, doc: str) -> Counter:
        return Counter(name, doc, registry=registry)

    return DriftMetrics(
        registry=registry,
        drift_share=gauge("fraudstream_drift_share", "Share of monitored features drifted."),
        feature_drift=gauge(
            "fraudstream_feature_drift_score", "PSI of a feature in the last window.", ("feature",)
        ),
        prediction_drift=gauge(
            "fraudstream_prediction_drift_score", "PSI of the model score in the last window."
        ),
        alert_rate=gauge(
            "fraudstream_alert_rate",
            "Share of review and block verdicts: last window, and reference.",
            ("window",),
        ),
        windows_checked=counter("fraudstream_drift_windows_checked", "Windows checked."),
        last_check=gauge(
            "fraudstream_drift_last_check_timestamp_seconds", "When the last check finished."
        ),
        check_duration=gauge(
            "fraudstream_drift_check_duration_seconds", "How long the last check took."
        ),
        window_rows=gauge("fraudstream_drift_window_rows", "Verdicts in the last window."),
        drifted_streak=gauge(
            "fraudstream_drift_consecutive_drifted_windows", "Drifted windows in a row."
        ),
        retrain_requests=counter("fraudstream_retrain_requests", "Retrain requests published."),
        invalid_messages=counter(
            "fraudstream_drift_invalid_messages", "fraud-scores messages the monitor could not use."
        ),
    )
