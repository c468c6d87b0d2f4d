"""Prometheus and Grafana config under deploy/: consistent with the code.

The pure checks read the files; tests/integration/test_promtool.py runs Prometheus' own parser
and the alert rules' unit tests on them.
"""

from __future__ import annotations

import re

from stream_app.settings import DriftSettings, WorkerSettings
from tests.observability import (
    DASHBOARD_PROVIDERS,
    DATASOURCES,
    DRIFT_JOB,
    DRIFT_MONITOR_METRICS,
    WORKER_JOB,
    alert_rules,
    dashboard_expressions,
    dashboard_panels,
    load_dashboard,
    load_yaml,
    metric_names,
    rule_expressions,
    scrape_jobs,
)


def test_the_alert_rules_are_the_ones_operations_asked_for() -> None:
    rules = alert_rules()
    assert {rule["alert"] for rule in rules} == {
        "FraudstreamWorkerDown",
        "FraudstreamConsumerLagGrowing",
        "FraudstreamDeadLetterRate",
        "FraudstreamLatencyP99OverBudget",
        "FraudstreamModelSwapFailed",
        "FraudstreamDriftMonitorDown",
        "FraudstreamDriftDetected",
    }
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


def test_drift_alert_fires_above_the_monitors_own_threshold() -> None:
    (rule,) = (rule for rule in alert_rules() if rule["alert"] == "FraudstreamDriftDetected")
    assert rule["expr"].strip().endswith(f"> {DriftSettings().drift_share_threshold}")


def test_latency_alert_budget_is_a_bucket_boundary_of_the_worker_histogram() -> None:
    from stream_app.metrics import LATENCY_BUCKETS

    (rule,) = (r for r in alert_rules() if r["alert"] == "FraudstreamLatencyP99OverBudget")
    budget = float(rule["expr"].rsplit(">", 1)[1])
    assert budget == 0.05
    assert budget in LATENCY_BUCKETS  # else the quantile at the budget is an interpolation


def test_jobs_in_alert_rules_are_scraped_at_the_default_ports() -> None:
    jobs = scrape_jobs()
    assert jobs == {
        WORKER_JOB: [f"127.0.0.1:{WorkerSettings().web_port}"],
        DRIFT_JOB: [f"127.0.0.1:{DriftSettings().web_port}"],
    }
    referenced = {job for expr in rule_expressions() for job in re.findall(r'job="([^"]+)"', expr)}
    assert referenced == set(jobs)


def test_every_drift_monitor_metric_listed_is_used_by_the_dashboard_or_rules() -> None:
    used = metric_names(dashboard_expressions()) | metric_names(rule_expressions())
    assert used >= DRIFT_MONITOR_METRICS, "stale names in DRIFT_MONITOR_METRICS"


def test_dashboard_shows_every_view_operations_asked_for() -> None:
    expressions = dashboard_expressions()
    used = metric_names(expressions)
    assert {
        "fraudstream_transactions_scored_total",
        "fraudstream_decisions_total",
        "fraudstream_dead_letters_total",
        "fraudstream_drift_share",
        "fraudstream_model_info",
        "fraudstream_model_swaps_total",
        "fraudstream_consumer_lag",
    } <= used
    latency = [e for e in expressions if "fraudstream_end_to_end_latency_seconds_bucket" in e]
    for quantile in ("0.5", "0.99"):
        assert any(e.startswith(f"histogram_quantile({quantile},") for e in latency), quantile


def test_dashboard_panels_have_unique_ids_and_do_not_overlap() -> None:
    panels = load_dashboard()["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    occupied: dict[tuple[int, int], str] = {}
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in occupied, f"{panel['title']} overlaps {occupied[(x, y)]}"
                occupied[(x, y)] = panel["title"]


def test_every_panel_queries_the_dashboards_prometheus_variable() -> None:
    variables = {v["name"]: v for v in load_dashboard()["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    for panel in dashboard_panels():
        assert panel["targets"], panel["title"]
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])
        for target in [panel, *panel["targets"]]:
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_grafana_provisioning_gives_the_dashboard_a_default_prometheus() -> None:
    (datasource,) = load_yaml(DATASOURCES)["datasources"]
    assert (datasource["type"], datasource["isDefault"]) == ("prometheus", True)
    (provider,) = load_yaml(DASHBOARD_PROVIDERS)["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"]
