"""Real worker processes for the integration tests: their environment and how one is started.

The ``worker_factory`` fixture in tests/conftest.py starts them through ``start_worker`` and stops
them after the test; tests that manage a worker's life themselves use these pieces directly.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

from stream_app.settings import TopicNames
from tests.kafka_helpers import REPO_ROOT
from tests.processes import LoggedProcess, free_port


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


def start_worker(
    bootstrap: str,
    topics: TopicNames,
    model_path: Path,
    folder: Path,
    extra_env: dict[str, str] | None = None,
    **worker: str,
) -> WorkerProcess:
    """A worker on a free port with its own app id, keeping its data and log under ``folder``."""
    port = free_port()
    options = {
        "app_id": f"test-worker-{uuid.uuid4().hex[:8]}",
        "web_port": str(port),
        "data_dir": str(folder),
        "model_path": str(model_path),
        "model_poll_seconds": "0",  # no registry in these tests unless one asks for it
        **worker,
    }
    env = {**settings_env(bootstrap, topics, **options), **(extra_env or {})}
    return WorkerProcess(env, port, folder.with_suffix(".log"))
