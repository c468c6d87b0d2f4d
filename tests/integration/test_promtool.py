"""Prometheus' own tools on the config under deploy/: promtool parses it and runs the alert rules'
unit tests in deploy/prometheus/rules_test.yml. Integration: they need the ``promtool`` binary from
deploy/prometheus/install.sh (not the network).
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.observability import (
    PROMETHEUS_CONFIG,
    RULES,
    RULES_TESTS,
    alert_rules,
    as_promql,
    dashboard_expressions,
    promtool,
)


def test_promtool_accepts_the_scrape_config_and_its_rule_file() -> None:
    result = promtool("check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


def test_promtool_accepts_the_alert_rules() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(alert_rules())} rules found" in result.stdout


def test_alert_rules_pass_their_promtool_unit_tests() -> None:
    # rules_test.yml: each alert fires on its trouble, at the expected time, with its annotations.
    result = promtool("test", "rules", str(RULES_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


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
