"""Readers of the Prometheus and Grafana files under deploy/, for the unit and integration tests."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

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
