"""Shared fixtures: one broker per session, fresh topics per test, worker processes on demand."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stream_app.settings import TopicNames
from tests.kafka_helpers import (
    REPO_ROOT,
    create_topics,
    delete_topics,
    session_broker,
    unique_topics,
)
from tests.processes import LoggedProcess, free_port


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    with session_broker() as bootstrap:
        yield bootstrap


@pytest.fixture
def topics(kafka_bootstrap: str, request: pytest.FixtureRequest) -> Iterator[TopicNames]:
    names = unique_topics(request.node.name[:24].replace("[", "-").replace("]", ""))
    create_topics(kafka_bootstrap, names)
    yield names
    delete_topics(kafka_bootstrap, names)


def settings_env(bootstrap: str, topics: TopicNames, **worker: str) -> dict[str, str]:
    """Environment variables that point a fraudstream process at a test's broker and topics."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("FRAUDSTREAM_") or key == "FRAUDSTREAM_TEST_BOOTSTRAP"
    }
    env["FRAUDSTREAM_KAFKA__BOOTSTRAP_SERVERS"] = bootstrap
    for field, name in topics.model_dump().items():
        env[f"FRAUDSTREAM_KAFKA__TOPICS__{field.upper()}"] = name
    for field, value in worker.items():
        env[f"FRAUDSTREAM_WORKER__{field.upper()}"] = value
    return env


class WorkerProcess(LoggedProcess):
    """A real ``fraudstream-worker`` process, as users run it."""

    def __init__(self, env: dict[str, str], port: int, log_path: Path) -> None:
        super().__init__([sys.executable, "-m", "stream_app.worker"], log_path, env, REPO_ROOT)
        self.port = port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


WorkerFactory = Callable[..., WorkerProcess]


@pytest.fixture
def worker_factory(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def start(
        topics: TopicNames,
        model_path: Path,
        extra_env: dict[str, str] | None = None,
        **worker: str,
    ) -> WorkerProcess:
        port = free_port()
        options = {
            "app_id": f"test-worker-{uuid.uuid4().hex[:8]}",
            "web_port": str(port),
            "data_dir": str(tmp_path / f"worker-{len(started)}"),
            "model_path": str(model_path),
            "model_poll_seconds": "0",  # no registry in these tests unless one asks for it
            **worker,
        }
        env = {**settings_env(kafka_bootstrap, topics, **options), **(extra_env or {})}
        process = WorkerProcess(env, port, tmp_path / f"worker-{len(started)}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real first model, trained once per session with the project's own command."""
    folder = tmp_path_factory.mktemp("model") / "champion"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "training.cli",
            "first-model",
            "--out",
            str(folder),
            "--rounds",
            "80",
        ],
        check=True,
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
    )
    return folder
