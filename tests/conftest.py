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

TESTS_DIR = Path(__file__).resolve().parent
# The folder a test module sits in is its layer; the layer is its marker (`pytest -m unit`).
LAYERS = ("unit", "agents", "integration")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects, so the folder's marker is what it sees
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    problems: list[str] = []
    for item in items:
        layer = layer_of(item.path)
        hand_set = sorted({mark.name for mark in item.iter_markers() if mark.name in LAYERS})
        if layer is None:
            problems.append(f"{item.nodeid}: test modules live in tests/{{{','.join(LAYERS)}}}/")
        elif hand_set:
            problems.append(f"{item.nodeid}: marked {hand_set} by hand; tests/{layer}/ sets it")
        else:
            item.add_marker(layer)
    if problems:
        raise pytest.UsageError("layer markers come from the folder:\n  " + "\n  ".join(problems))


def layer_of(path: Path) -> str | None:
    """The layer of a test module: the folder under tests/ it sits in, if it is one of LAYERS."""
    resolved = path.resolve()
    if not resolved.is_relative_to(TESTS_DIR):
        return None
    parts = resolved.relative_to(TESTS_DIR).parts
    return parts[0] if len(parts) > 1 and parts[0] in LAYERS else None


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
