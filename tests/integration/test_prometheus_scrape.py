"""Observability against real processes: the worker's /metrics and Debian's Prometheus scraping it.

Prometheus must be installed (deploy/prometheus/install.sh, which CI runs): a missing binary fails
these tests with that instruction rather than skipping them.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from stream_app.settings import TopicNames
from tests.factories import simulated_transactions
from tests.integration.worker_helpers import metric, produce, started_worker
from tests.kafka_helpers import wait_until
from tests.observability import (
    DRIFT_MONITOR_METRICS,
    PROMETHEUS_CONFIG,
    RULES,
    WORKER_JOB,
    dashboard_expressions,
    load_yaml,
    metric_names,
    require_binary,
    rule_expressions,
)
from tests.processes import LoggedProcess, free_port
from tests.workers import WorkerFactory, WorkerProcess

SCRAPED_TRANSACTIONS = 500


class PrometheusServer(LoggedProcess):
    """Debian's ``prometheus`` on a free loopback port, with its storage in a test folder."""

    def __init__(self, binary: str, config: Path, folder: Path) -> None:
        self.port = free_port()
        folder.mkdir(parents=True)
        args = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        super().__init__(args, folder / "prometheus.log")

    def get(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310  # loopback
            return json.load(response)

    def api(self, path: str, **params: str) -> Any:
        """The ``data`` of a successful Prometheus HTTP API answer."""
        body = self.get(f"/api/v1/{path}", **params)
        assert body["status"] == "success", body
        return body["data"]

    def ready(self) -> bool:
        assert self.process.poll() is None, f"prometheus exited:\n{self.log_tail()}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2):
                return True
        except OSError:
            return False


@pytest.fixture
def prometheus_factory(tmp_path: Path) -> Iterator[Callable[[Path], PrometheusServer]]:
    binary = require_binary("prometheus")
    started: list[PrometheusServer] = []

    def start(config: Path) -> PrometheusServer:
        server = PrometheusServer(binary, config, tmp_path / f"prometheus-{len(started)}")
        started.append(server)
        wait_until(server.ready, timeout=60, what="prometheus ready")
        return server

    yield start
    for server in started:
        server.stop()


def scrape_config_for(worker: WorkerProcess, folder: Path) -> Path:
    """deploy/prometheus/prometheus.yml with only the worker job, aimed at ``worker``, every 1 s.

    The job name and the rule file are the real ones, so the alert rules see the same labels
    as in production. JSON is YAML, so the result is written with the standard library.
    """
    config = load_yaml(PROMETHEUS_CONFIG)
    (job,) = (job for job in config["scrape_configs"] if job["job_name"] == WORKER_JOB)
    job["static_configs"] = [{"targets": [f"127.0.0.1:{worker.port}"]}]
    config["scrape_configs"] = [job]
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(RULES)]
    path = folder / "prometheus-test.yml"
    path.write_text(json.dumps(config))
    return path


def worker_transactions(count: int) -> list[tuple[bytes | None, bytes]]:
    return [(t.customer_id.encode(), t.to_bytes()) for t in simulated_transactions(count)]


def served_sample_names(worker: WorkerProcess) -> tuple[set[str], set[str]]:
    """(sample names, family names) in the worker's /metrics right now."""
    with urllib.request.urlopen(f"{worker.url}/metrics", timeout=5) as response:  # noqa: S310
        families = list(text_string_to_metric_families(response.read().decode()))
    samples = {sample.name for family in families for sample in family.samples}
    return samples, {family.name for family in families}


def test_every_metric_in_the_dashboard_and_alert_rules_is_served_by_the_worker(
    kafka_bootstrap: str, topics: TopicNames, worker_factory: WorkerFactory, trained_model_dir: Path
) -> None:
    worker = started_worker(worker_factory, topics, trained_model_dir)
    # Labelled series appear with their first value: one verdict of each kind, one dead letter.
    produce(kafka_bootstrap, topics.transactions, [*worker_transactions(50), (b"bad", b"{nope")])
    wait_until(
        lambda: (
            metric(worker, "fraudstream_transactions_scored_total") == 50
            and metric(worker, "fraudstream_dead_letters_total") == 1
        ),
        timeout=90,
        what="50 verdicts and 1 dead letter counted",
    )
    samples, families = served_sample_names(worker)

    referenced = metric_names(dashboard_expressions()) | metric_names(rule_expressions())
    missing = referenced - DRIFT_MONITOR_METRICS - samples
    assert not missing, f"not in the worker's /metrics: {sorted(missing)}"
    # The exclusion list must not hide a name the worker does serve.
    assert not DRIFT_MONITOR_METRICS & (samples | families)


def test_prometheus_scrapes_the_worker_and_evaluates_the_alert_rules(
    kafka_bootstrap: str,
    topics: TopicNames,
    worker_factory: WorkerFactory,
    trained_model_dir: Path,
    prometheus_factory: Callable[[Path], PrometheusServer],
    tmp_path: Path,
) -> None:
    worker = started_worker(worker_factory, topics, trained_model_dir)
    prometheus = prometheus_factory(scrape_config_for(worker, tmp_path))
    instance = f"127.0.0.1:{worker.port}"

    def target_health() -> str | None:
        targets = prometheus.api("targets", state="active")["activeTargets"]
        return next((t["health"] for t in targets if t["labels"]["instance"] == instance), None)

    wait_until(lambda: target_health() == "up", timeout=30, what=f"target {instance} up")

    produce(kafka_bootstrap, topics.transactions, worker_transactions(SCRAPED_TRANSACTIONS))
    query = "fraudstream_transactions_scored_total"
    last: list[dict[str, Any]] = []

    def scraped_count_reached() -> bool:
        last[:] = prometheus.api("query", query=query)["result"]
        return len(last) == 1 and float(last[0]["value"][1]) >= SCRAPED_TRANSACTIONS

    wait_until(scraped_count_reached, timeout=120, what=f"{query} to reach the count produced")
    (series,) = last
    assert float(series["value"][1]) == SCRAPED_TRANSACTIONS
    assert (series["metric"]["job"], series["metric"]["instance"]) == (WORKER_JOB, instance)

    assert_alert_rules_evaluate(prometheus)
    assert "FraudstreamWorkerDown" not in alert_names(prometheus)

    worker.stop()
    wait_until(
        lambda: "FraudstreamWorkerDown" in alert_names(prometheus),
        timeout=30,
        what="FraudstreamWorkerDown pending after the worker stopped",
    )


def alert_names(prometheus: PrometheusServer) -> set[str]:
    return {alert["labels"]["alertname"] for alert in prometheus.api("alerts")["alerts"]}


def assert_alert_rules_evaluate(prometheus: PrometheusServer) -> None:
    """Every rule of rules.yml loaded and evaluated by the real engine without an error."""

    def rules() -> list[dict[str, Any]]:
        groups = prometheus.api("rules")["groups"]
        return [rule for group in groups for rule in group["rules"]]

    wait_until(
        lambda: all(rule["health"] != "unknown" for rule in rules()),
        timeout=30,
        what="every alert rule evaluated once",
    )
    evaluated = rules()
    assert len(evaluated) == len(rule_expressions())
    assert {rule["name"]: rule["health"] for rule in evaluated} == {
        rule["name"]: "ok" for rule in evaluated
    }, [rule.get("lastError") for rule in evaluated]
