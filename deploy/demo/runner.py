"""The run: MLflow, the first champion, the services, the stream and the drain."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from rich.console import Console

from deploy.demo.dashboard import Display, phase_of, step
from deploy.demo.observer import Event, Observer, Tally, utc_now
from deploy.demo.planner import (
    BASELINE_TAG,
    DRAIN_SECONDS,
    HISTORY_DAYS,
    MALFORMED,
    MLFLOW_STARTUP_SECONDS,
    WORKER_STARTUP_SECONDS,
    Plan,
    Population,
    make_plan,
)
from deploy.demo.runs import (
    RunPaths,
    baseline_command,
    export_version,
    find_baseline,
    newest_version,
    restore_champion,
    write_history,
)
from deploy.demo.shadow import DEMO_SHADOW_RULES, put_command, write_rules_file
from deploy.stack import (
    Service,
    Stack,
    StackError,
    loopback_address,
    mlflow_healthy,
    mlflow_server_command,
    python_command,
    reset_topics,
    wait_until,
    worker_ready,
)
from stream_app.model_store import client_for
from stream_app.settings import Settings
from stream_app.store import LocalStore

log = logging.getLogger("demo")


@dataclass
class Demo:
    args: argparse.Namespace
    settings: Settings
    console: Console
    paths: RunPaths
    started: datetime
    stack: Stack
    plan: Plan | None = None
    observer: Observer | None = None

    @property
    def headless(self) -> bool:
        return bool(self.args.headless)

    def step(self, description: str) -> Any:
        return step(self.console, self.headless, description)

    def mark(self, tally: Tally | None, name: str, detail: str = "") -> None:
        if tally is not None:
            tally.note(name, Event(utc_now(), None, detail))

    # -- infrastructure ------------------------------------------------------------------

    def ensure_mlflow(self) -> None:
        uri = self.settings.mlflow.tracking_uri
        if mlflow_healthy(uri):
            log.info("an MLflow server already answers at %s: using it", uri)
            return
        address = loopback_address(uri)
        if address is None:
            raise StackError(f"MLflow at {uri} does not answer and is not local to start")
        root = self.args.mlflow_dir.resolve()
        root.mkdir(parents=True, exist_ok=True)
        with self.step(f"starting the MLflow server at {uri} ({root})"):
            command = mlflow_server_command(root, *address)
            server = self.stack.start("mlflow", command, cwd=root, stop_last=True)
            wait_until(lambda: mlflow_healthy(uri), MLFLOW_STARTUP_SECONDS, "MLflow", [server])

    def champion_for(self, plan: Plan, env: dict[str, str]) -> str:
        """The population's first champion (trained now if it has none), made champion again
        and exported to the worker's model folder."""
        client = client_for(self.settings.mlflow.tracking_uri)
        name, key = self.settings.mlflow.model_name, plan.population.key()
        version = find_baseline(client, name, key)
        if version is None:
            with self.step("training the first champion on the simulated history (~1 min)"):
                self.run_once("first-champion", baseline_command(plan), env)
                version = newest_version(client, name)
                client.set_model_version_tag(name, version, BASELINE_TAG, key)
        restore_champion(client, self.settings, version)
        export_version(client, name, version, self.args.model)
        return version

    def run_once(self, name: str, command: list[str], env: dict[str, str]) -> None:
        service = self.stack.start(name, command, env=env)
        code = service.process.wait()
        if code != 0:
            raise StackError(f"{name} failed with code {code}:\n{service.log_tail()}")

    def start_services(self, env: dict[str, str]) -> Service:
        worker = self.stack.start("worker", python_command("stream_app.worker"), env=env)
        self.stack.start("lake-writer", python_command("training.cli", "lake-writer"), env=env)
        self.stack.start(
            "trainer",
            python_command("training.cli", "retrain-consumer"),
            env=env,
            stop_seconds=20,
        )
        url = f"http://{self.settings.worker.web_host}:{self.settings.worker.web_port}"
        with self.step("starting the worker, the lake writer and the training consumer"):
            wait_until(lambda: worker_ready(url), WORKER_STARTUP_SECONDS, "the worker", [worker])
        return worker

    def put_shadow_rules(self, env: dict[str, str]) -> None:
        """The demo's shadow rule on fraud-rules before the worker starts (it reads the topic
        to its end before it reports ready), with the rules CLI as a person would put one."""
        ids = ", ".join(str(rule["rule_id"]) for rule in DEMO_SHADOW_RULES)
        with self.step(f"putting the shadow rule {ids} on fraud-rules (fraudstream-rules put)"):
            rules_file = write_rules_file(self.paths.root / "shadow-rules.jsonl")
            self.run_once("rules-put", put_command(rules_file), env)

    def send_malformed(self) -> None:
        """Three bad messages, to show the dead-letter path."""
        producer = Producer(self.settings.kafka.confluent_config())
        for value in MALFORMED:
            producer.produce(self.settings.kafka.topics.transactions, value, b"demo")
        producer.flush(10)

    # -- the live part -------------------------------------------------------------------

    def stream(self, plan: Plan, env: dict[str, str], observer: Observer) -> None:
        tally, display = observer.tally, Display(self.console, self.headless)
        generator = self.stack.start(
            "generator", plan.stream_command(), env=env, stop_signal=signal.SIGINT
        )
        self.mark(tally, "stream_started")
        drift_monitor: Service | None = None
        with display.running():
            while generator.running:
                observer.poll()
                offsets = observer.live_offsets
                if drift_monitor is None and offsets is not None:
                    drift_monitor = self.start_drift_monitor(env, offsets)
                if tally.verdicts >= plan.warmup_transactions:
                    self.mark(tally, "warmup_scored", f"{tally.verdicts:,} verdicts")
                self.stack.check_alive(["worker", "lake-writer", "trainer", "drift"])
                display.update(tally, plan, phase_of(tally, plan), self.elapsed())
            if generator.returncode != 0:
                raise StackError(f"the generator failed:\n{generator.log_tail()}")
            self.mark(tally, "stream_ended")
            self.drain(observer, display, plan)

    def start_drift_monitor(self, env: dict[str, str], offsets: list[TopicPartition]) -> Service:
        """The monitor's group starts at the first live verdicts scored in time. Before them:
        the warm-up, scored from a state still filling up (30-day features), and the backlog,
        where the partitions are scored far apart in event time, so merchant volumes (counted
        across partitions) are not what a live worker sees."""
        group = env["FRAUDSTREAM_DRIFT__APP_ID"]
        committer = Consumer({**self.settings.kafka.confluent_config(), "group.id": group})
        try:
            committer.commit(offsets=offsets, asynchronous=False)
        finally:
            committer.close()
        log.info("drift group=%s starts at %s", group, [(o.partition, o.offset) for o in offsets])
        return self.stack.start("drift", python_command("drift.cli", "monitor"), env=env)

    def drain(self, observer: Observer, display: Display, plan: Plan) -> None:
        """Until every produced transaction is answered (or the deadline): then the counts are
        final, as far as the worker is concerned."""
        deadline = time.monotonic() + DRAIN_SECONDS
        tally = observer.tally
        while time.monotonic() < deadline:
            if observer.poll() == 0 and tally.unanswered == 0:
                break
            self.stack.check_alive(["worker"])
            display.update(tally, plan, "draining", self.elapsed())
        observer.scan_store()
        self.mark(tally, "drained", f"{tally.unanswered} unanswered")

    def elapsed(self) -> float:
        return (utc_now() - self.started).total_seconds()


def run_demo(demo: Demo) -> None:
    """Everything up to the drained stream; the caller stops the stack and summarises."""
    args, settings = demo.args, demo.settings
    population = Population.sized_for(args)
    with demo.step(f"planning the simulated timeline ({population.key()})"):
        plan = make_plan(population, args.rate, args.duration, args.drift_at_count, utc_now())
    log.info("plan %s", json.dumps(plan.describe()))
    demo.plan = plan
    if plan.ready_day - plan.drift_day < 3 or plan.live_days < 8:
        demo.console.print(
            f"[yellow]the live part spans {plan.live_days:.1f} simulated days: too short for the "
            "retrain to see enough of the drifted world; give a longer DURATION or RATE[/yellow]"
        )
    env = {**demo.stack.env, **demo.paths.identity_env(args.model), **plan.service_env()}
    demo.ensure_mlflow()
    with demo.step("recreating the topics empty"):
        reset_topics(settings.kafka, settings.kafka.topics.all())
    demo.put_shadow_rules(env)  # here, not after the re-plan below: it takes a few seconds
    with demo.step(f"writing {HISTORY_DAYS} days of history to {demo.paths.store}"):
        write_history(plan, LocalStore(demo.paths.store))
    version = demo.champion_for(plan, env)
    log.info("champion version=%s exported to %s", version, args.model)
    # Re-planned now that the slow steps are done: the generator's clock is ours within seconds.
    demo.plan = plan = make_plan(
        population, args.rate, args.duration, args.drift_at_count, utc_now()
    )
    log.info("plan %s", json.dumps(plan.describe()))
    env.update(plan.service_env())
    demo.start_services(env)
    demo.observer = Observer(settings, LocalStore(demo.paths.store), plan)
    for rule in DEMO_SHADOW_RULES:  # listed from the start, with no hit yet
        demo.observer.tally.shadow_hits.setdefault(str(rule["rule_id"]), set())
    demo.send_malformed()
    demo.stream(plan, env, demo.observer)
