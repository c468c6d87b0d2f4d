"""Shared fixtures: one broker per session, fresh topics per test, worker processes on demand.

Only fixtures and the marker hook live here; how a worker process is built is in tests/workers.py.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
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
from tests.workers import WorkerFactory, WorkerProcess, start_worker

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
def kafka_bootstrap(request: pytest.FixtureRequest) -> Iterator[str]:
    with session_broker() as (source, bootstrap):
        show_on_terminal(request.config, f"test broker: {source}, {bootstrap}")
        yield bootstrap


def show_on_terminal(config: pytest.Config, line: str) -> None:
    """A line on the terminal even while output is captured: a CI log must show which path ran."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)


@pytest.fixture
def topics(kafka_bootstrap: str, request: pytest.FixtureRequest) -> Iterator[TopicNames]:
    names = unique_topics(request.node.name[:24].replace("[", "-").replace("]", ""))
    create_topics(kafka_bootstrap, names)
    yield names
    delete_topics(kafka_bootstrap, names)


@pytest.fixture
def worker_factory(kafka_bootstrap: str, tmp_path: Path) -> Iterator[WorkerFactory]:
    started: list[WorkerProcess] = []

    def start(
        topics: TopicNames,
        model_path: Path,
        extra_env: dict[str, str] | None = None,
        **worker: str,
    ) -> WorkerProcess:
        folder = tmp_path / f"worker-{len(started)}"
        process = start_worker(kafka_bootstrap, topics, model_path, folder, extra_env, **worker)
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
