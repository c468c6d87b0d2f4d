"""Prometheus and Grafana config under deploy/: consistent with the code, valid for promtool.

The pure checks read the files; the promtool checks (marked ``integration``: they need the
``promtool`` binary from deploy/prometheus/install.sh, not the network) run Prometheus' own
parser and the alert rules' unit tests in deploy/prometheus/rules_test.yml.

The helpers here are also used by tests/integration/test_prometheus_scrape.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from stream_app.settings import DriftSettings, WorkerSettings
from tests.kafka_helpers import REPO_ROOT

PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULES = PROMETHEUS_DIR / "rules.yml"
RULES_TESTS = PROMETHEUS_DIR / "rules_test.yml"
INSTALL_SCRIPT = PROMETHEUS_DIR / "install.sh"
GRAFANA_DIR = REPO_ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "fraudstream.json"
DATASOURCES = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = GRAFANA_DIR / "provisioning" / "dashboards" / "fraudstream.yml"

WORKER_JOB = "fraudstream-worker"
DRIFT_JOB = "fraudstream-drift"

# Served by the drift monitor (drift/), not the worker. The worker test excludes exactly these;
# once the drift monitor runs, a test of its /metrics must check this same list against it.
DRIFT_MONITOR_METRICS = frozenset(
    {
        "fraudstream_drift_share",
        "fraudstream_feature_drift_score",
        "fraudstream_drift_windows_checked_total",
        "fraudstream_drift_last_check_timestamp_seconds",
        "fraudstream_retrain_requests_total",
    }
)

METRIC_NAME = re.compile(r"\bfraudstream_[a-z0-9_]+")
# Grafana's variables, replaced by what Prometheus sees for them with every worker selected.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "1h", "$instance": ".*"}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def dashboard_panels() -> list[dict[str, Any]]:
    return [panel for panel in load_dashboard()["panels"] if panel["type"] != "row"]


def dashboard_expressions() -> list[str]:
    """Every PromQL expression Grafana sends: panel targets and variable queries, as written."""
    dashboard = load_dashboard()
    targets = [target["expr"] for panel in dashboard_panels() for target in panel["targets"]]
    variables = [
        variable["definition"]
        for variable in dashboard["templating"]["list"]
        if variable["type"] == "query"
    ]
    return targets + variables


def as_promql(grafana_expression: str) -> str:
    """A dashboard expression with Grafana's variables filled in, as Prometheus receives it."""
    for variable, value in GRAFANA_VARIABLES.items():
        grafana_expression = grafana_expression.replace(variable, value)
    return grafana_expression


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"]]


def rule_expressions() -> list[str]:
    return [str(rule["expr"]) for rule in alert_rules()]


def metric_names(expressions: list[str]) -> set[str]:
    """fraudstream metric names referenced by PromQL expressions (sample names, with suffixes)."""
    return {name for expression in expressions for name in METRIC_NAME.findall(expression)}


def scrape_jobs() -> dict[str, list[str]]:
    """Job name -> its static targets in deploy/prometheus/prometheus.yml."""
    return {
        job["job_name"]: [
            target for static in job["static_configs"] for target in static["targets"]
        ]
        for job in load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]
    }


def require_binary(name: str) -> str:
    """The path of a Prometheus binary; fails (never skips) with how to install it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"`{name}` is not installed: run `bash {INSTALL_SCRIPT.relative_to(REPO_ROOT)}`"
        )
    return path


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_binary("promtool"), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


# ---------------------------------------------------------------------------------------------
# Pure checks of the files


@pytest.mark.unit
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


@pytest.mark.unit
def test_drift_alert_fires_above_the_monitors_own_threshold() -> None:
    (rule,) = (rule for rule in alert_rules() if rule["alert"] == "FraudstreamDriftDetected")
    assert rule["expr"].strip().endswith(f"> {DriftSettings().drift_share_threshold}")


@pytest.mark.unit
def test_latency_alert_budget_is_a_bucket_boundary_of_the_worker_histogram() -> None:
    from stream_app.metrics import LATENCY_BUCKETS

    (rule,) = (r for r in alert_rules() if r["alert"] == "FraudstreamLatencyP99OverBudget")
    budget = float(rule["expr"].rsplit(">", 1)[1])
    assert budget == 0.05
    assert budget in LATENCY_BUCKETS  # else the quantile at the budget is an interpolation


@pytest.mark.unit
def test_jobs_in_alert_rules_are_scraped_at_the_default_ports() -> None:
    jobs = scrape_jobs()
    assert jobs == {
        WORKER_JOB: [f"127.0.0.1:{WorkerSettings().web_port}"],
        DRIFT_JOB: [f"127.0.0.1:{DriftSettings().web_port}"],
    }
    referenced = {job for expr in rule_expressions() for job in re.findall(r'job="([^"]+)"', expr)}
    assert referenced == set(jobs)


@pytest.mark.unit
def test_every_drift_monitor_metric_listed_is_used_by_the_dashboard_or_rules() -> None:
    used = metric_names(dashboard_expressions()) | metric_names(rule_expressions())
    assert used >= DRIFT_MONITOR_METRICS, "stale names in DRIFT_MONITOR_METRICS"


@pytest.mark.unit
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


@pytest.mark.unit
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


@pytest.mark.unit
def test_every_panel_queries_the_dashboards_prometheus_variable() -> None:
    variables = {v["name"]: v for v in load_dashboard()["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    for panel in dashboard_panels():
        assert panel["targets"], panel["title"]
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])
        for target in [panel, *panel["targets"]]:
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


@pytest.mark.unit
def test_grafana_provisioning_gives_the_dashboard_a_default_prometheus() -> None:
    (datasource,) = load_yaml(DATASOURCES)["datasources"]
    assert (datasource["type"], datasource["isDefault"]) == ("prometheus", True)
    (provider,) = load_yaml(DASHBOARD_PROVIDERS)["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"]


# ---------------------------------------------------------------------------------------------
# Prometheus' own tools


@pytest.mark.integration
def test_promtool_accepts_the_scrape_config_and_its_rule_file() -> None:
    result = promtool("check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


@pytest.mark.integration
def test_promtool_accepts_the_alert_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(alert_rules())} rules found" in result.stdout


@pytest.mark.integration
def test_alert_rules_pass_their_promtool_unit_tests() -> None:
    # rules_test.yml: each alert fires on its trouble, at the expected time, with its annotations.
    result = promtool("test", "rules", str(RULES_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.integration
def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    # promtool parses recording rules' expressions with Prometheus' own parser.
    rules = [
        {"record": f"dashboard:query_{index}", "expr": as_promql(expression)}
        for index, expression in enumerate(dashboard_expressions())
        if not expression.startswith("label_values(")  # Grafana's function, not PromQL
    ]
    rule_file = tmp_path / "dashboard_rules.yml"
    rule_file.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool("check", "rules", str(rule_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(rules)} rules found" in result.stdout
