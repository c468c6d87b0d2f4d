"""A real ``mlflow server`` for tests: SQLite backend and a local artifact folder under a tmp dir.

Use :func:`running_mlflow_server` as a context manager, or the ``mlflow_server`` fixture factory
pattern in a conftest (``yield from`` it in a session fixture). The server proxies artifacts
(``--artifacts-destination``), so clients talk HTTP only, as they would in production.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.processes import free_port

STARTUP_TIMEOUT_SECONDS = 120.0
STOP_TIMEOUT_SECONDS = 15.0
POLL_SECONDS = 0.25


@dataclass(frozen=True)
class MlflowServer:
    tracking_uri: str
    artifacts: Path
    log: Path


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:  # noqa: S310 - http://127.0.0.1 only
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _wait_until_healthy(
    process: subprocess.Popen[bytes], url: str, log: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"mlflow server exited with {process.returncode}:\n{log.read_text()}"
            )
        if _healthy(url):
            return
        time.sleep(POLL_SECONDS)
    raise TimeoutError(
        f"mlflow server not healthy after {timeout:.0f}s:\n{log.read_text()[-4000:]}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group (it forks workers), then SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT_SECONDS)


def server_command(root: Path, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination",
        str(root / "artifacts"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]


@contextmanager
def running_mlflow_server(
    root: Path, startup_timeout: float = STARTUP_TIMEOUT_SECONDS
) -> Iterator[MlflowServer]:
    """Start ``mlflow server`` under ``root``, wait for /health, yield it, stop it."""
    root.mkdir(parents=True, exist_ok=True)
    port, log = free_port(), root / "server.log"
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": url}
    with log.open("wb") as output:
        process = subprocess.Popen(
            server_command(root, port),
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=root,
            env=env,
            start_new_session=True,  # own process group, so stopping it stops its workers
        )
        try:
            _wait_until_healthy(process, url, log, startup_timeout)
            yield MlflowServer(tracking_uri=url, artifacts=root / "artifacts", log=log)
        finally:
            _stop(process)
