"""The local processes of the demo: start them, wait until they serve, stop every one of them.

Each service is the project's own command (``python -m <module> ...``) in its own process and
session, with its output in a log file. Its own session means the terminal's Ctrl-C reaches the
demo only; the demo then stops the services itself, in reverse order of start, with the signal
each one handles cleanly (SIGTERM for the services, SIGINT for the generator, which flushes on
it), and kills whatever is still running after a timeout. :class:`Stack` guarantees that on any
exit, including an exception or KeyboardInterrupt.

Also here: the MLflow server command (SQLite backend and a local artifact folder, proxied, as
``tests/integration/mlflow_server.py`` runs it), readiness probes, and resetting the demo's
topics on a local broker.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from stream_app.settings import KafkaSettings

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
DEFAULT_STOP_SECONDS = 30.0
POLL_SECONDS = 0.25


class StackError(RuntimeError):
    """A service did not start, did not become ready, or exited when it should not have."""


def python_command(module: str, *args: str) -> list[str]:
    """``python -m module args``: the interpreter running the demo, so the same virtualenv."""
    return [sys.executable, "-m", module, *args]


def mlflow_server_command(root: Path, host: str, port: int) -> list[str]:
    """``mlflow server`` on SQLite with proxied local artifacts: clients talk HTTP only."""
    return python_command(
        "mlflow",
        "server",
        "--backend-store-uri",
        f"sqlite:///{(root / 'mlflow.db').resolve()}",
        "--artifacts-destination",
        str((root / "artifacts").resolve()),
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    )


def loopback_address(url: str) -> tuple[str, int] | None:
    """(host, port) of an http URL on this machine, or None (a server the demo cannot start)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in LOOPBACK_HOSTS:
        return None
    return parts.hostname, parts.port or 80


def http_get(url: str, timeout: float = 2.0) -> bytes | None:
    """The body of a 200 answer from a loopback URL, or None if nothing answers well."""
    if loopback_address(url) is None:
        raise ValueError(f"only loopback http URLs are probed: {url}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback http only
            body: bytes = response.read()
            return body if response.status == 200 else None
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return None


def worker_ready(base_url: str) -> bool:
    """The worker's /health says ready: partitions assigned and the labels reader caught up."""
    body = http_get(f"{base_url}/health")
    if body is None:
        return False
    try:
        return bool(json.loads(body).get("ready"))
    except ValueError:
        return False


def mlflow_healthy(tracking_uri: str) -> bool:
    return http_get(f"{tracking_uri.rstrip('/')}/health") is not None


@dataclass
class Service:
    """One running process of the stack, with its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    stop_signal: int = signal.SIGTERM
    stop_seconds: float = DEFAULT_STOP_SECONDS
    stop_last: bool = False  # a server the others use until they have stopped (MLflow)

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def signal_stop(self) -> None:
        """Ask the whole process group to stop (servers such as mlflow fork workers)."""
        if self.running:
            _signal_group(self.process.pid, self.stop_signal)

    def wait_stopped(self, deadline: float) -> int:
        """Wait until the process exits or ``deadline`` (monotonic) passes; then kill it."""
        try:
            self.process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            log.warning("service=%s did not stop in time: killed", self.name)
            _signal_group(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        return self.process.returncode

    def stop(self) -> int:
        self.signal_stop()
        return self.wait_stopped(time.monotonic() + self.stop_seconds)


def _signal_group(pid: int, number: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(pid, number)


@dataclass
class Stack:
    """Services started through it are stopped, in reverse order, when the ``with`` ends."""

    logs: Path
    env: dict[str, str]
    services: list[Service] = field(default_factory=list)

    def __enter__(self) -> Stack:
        self.logs.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop_all()

    def start(
        self,
        name: str,
        command: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        stop_signal: int = signal.SIGTERM,
        stop_seconds: float = DEFAULT_STOP_SECONDS,
        stop_last: bool = False,
        cwd: Path = REPO_ROOT,
    ) -> Service:
        log_path = self.logs / f"{name}.log"
        with log_path.open("ab") as output:
            process = subprocess.Popen(
                list(command),
                stdout=output,
                stderr=subprocess.STDOUT,
                env={**self.env, **(env or {})},
                cwd=cwd,
                start_new_session=True,  # Ctrl-C reaches the demo, which stops us in order
            )
        service = Service(name, process, log_path, stop_signal, stop_seconds, stop_last)
        self.services.append(service)
        log.info("started service=%s pid=%d log=%s", name, process.pid, log_path)
        return service

    def get(self, name: str) -> Service | None:
        return next((service for service in self.services if service.name == name), None)

    def stop(self, names: Iterable[str]) -> dict[str, int]:
        """Signal every named service at once, then wait for each: stopping takes the longest
        stop, not the sum of them."""
        chosen = [service for service in self.services if service.name in set(names)]
        for service in chosen:
            service.signal_stop()
        codes = {}
        for service in chosen:
            codes[service.name] = service.wait_stopped(time.monotonic() + service.stop_seconds)
            log.info("stopped service=%s code=%s", service.name, codes[service.name])
        return codes

    def stop_all(self) -> dict[str, int]:
        """Everything still running: the services together, then the servers they use (a
        trainer finishing its run still logs to MLflow)."""
        codes = {s.name: s.process.returncode for s in self.services if not s.running}
        for last in (False, True):
            names = [s.name for s in self.services if s.running and s.stop_last is last]
            codes.update(self.stop(names))
        return codes

    def check_alive(self, names: Iterable[str]) -> None:
        """Raise with the log tail if a service that should be running has exited."""
        for service in self.services:
            if service.name in set(names) and not service.running:
                raise StackError(
                    f"{service.name} exited with code {service.returncode}; "
                    f"last lines of {service.log_path}:\n{service.log_tail()}"
                )


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    services: Sequence[Service] = (),
    interval: float = POLL_SECONDS,
) -> None:
    """Poll ``condition`` until it holds; fail with ``what`` (and a log tail) at the deadline or
    as soon as one of ``services`` exits."""
    deadline = time.monotonic() + timeout
    while not condition():
        for service in services:
            if not service.running:
                raise StackError(
                    f"{service.name} exited with code {service.returncode} while waiting for "
                    f"{what}; last lines of {service.log_path}:\n{service.log_tail()}"
                )
        if time.monotonic() > deadline:
            tails = "".join(f"\n--- {s.log_path}:\n{s.log_tail(10)}" for s in services)
            raise StackError(f"timed out after {timeout:.0f} s waiting for {what}{tails}")
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# Topics


def require_local_broker(kafka: KafkaSettings) -> None:
    """Resetting topics deletes data: only ever on a broker on this machine."""
    hosts = [server.rsplit(":", 1)[0].strip("[]") for server in kafka.bootstrap_servers.split(",")]
    remote = [host for host in hosts if host not in LOOPBACK_HOSTS]
    if remote:
        raise StackError(
            f"the demo resets its topics and runs only against a local broker, not {remote}"
        )


def reset_topics(kafka: KafkaSettings, names: Sequence[str], timeout: float = 60.0) -> None:
    """Delete ``names`` if they exist and create them empty, with the project's partitioning.

    Topic deletion is asynchronous in Kafka: creation is retried until the old topic is gone.
    """
    require_local_broker(kafka)
    compacted = set(kafka.topics.compacted())
    admin = AdminClient(kafka.confluent_config())
    existing = set(admin.list_topics(timeout=10).topics)
    doomed = [name for name in names if name in existing]
    if doomed:
        _wait_futures(admin.delete_topics(doomed, operation_timeout=30), "delete")
    deadline = time.monotonic() + timeout
    missing = list(names)
    while missing:
        futures = admin.create_topics([_new_topic(kafka, name, compacted) for name in missing])
        missing = [name for name, future in futures.items() if not _created(future)]
        if missing and time.monotonic() > deadline:
            raise StackError(f"could not recreate topics {missing} within {timeout:.0f} s")
        if missing:
            time.sleep(0.5)


def _new_topic(kafka: KafkaSettings, name: str, compacted: set[str]) -> NewTopic:
    config = {"cleanup.policy": "compact"} if name in compacted else {}
    return NewTopic(name, kafka.partitions, kafka.replication_factor, config=config)


def delete_topics_with_prefix(kafka: KafkaSettings, prefix: str) -> list[str]:
    """Remove a finished run's internal topics (the worker's changelog); best effort."""
    admin = AdminClient(kafka.confluent_config())
    names = [name for name in admin.list_topics(timeout=10).topics if name.startswith(prefix)]
    if names:
        try:
            _wait_futures(admin.delete_topics(names, operation_timeout=30), "delete")
        except StackError as error:
            log.warning("could not delete topics %s: %s", names, error)
    return names


def delete_groups(kafka: KafkaSettings, groups: Sequence[str]) -> None:
    """Forget a finished run's consumer groups (their offsets point into deleted topics)."""
    admin = AdminClient(kafka.confluent_config())
    for group, future in admin.delete_consumer_groups(list(groups), request_timeout=15).items():
        try:
            future.result(timeout=30)
        except KafkaException as error:  # never created, or still draining: harmless
            log.info("consumer group %s not deleted: %s", group, error)


def _created(future: Any) -> bool:
    try:
        future.result(timeout=30)
    except KafkaException as error:
        code = error.args[0].code() if error.args else None
        if code == KafkaError.TOPIC_ALREADY_EXISTS:
            return False  # the deletion has not finished yet: try again
        raise StackError(f"could not create a topic: {error}") from error
    return True


def _wait_futures(futures: dict[str, Any], what: str) -> None:
    for name, future in futures.items():
        try:
            future.result(timeout=30)
        except KafkaException as error:
            raise StackError(f"could not {what} topic {name}: {error}") from error
