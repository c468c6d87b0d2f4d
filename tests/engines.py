"""The container engine for tests: its environment, one command through it, whether it runs here.

Shared by the container tests (the project image, the broker image, the local compose stack).
podman needs the project's containers.conf (deploy/containers/env.sh sets the same for the
scripts): without it runc fails here with "error setting rlimit type 6".
"""

from __future__ import annotations

import os
import subprocess

from tests.kafka_helpers import REPO_ROOT

CONTAINERS = REPO_ROOT / "deploy" / "containers"


def engine_env(**extra: str) -> dict[str, str]:
    """The host's environment with the project's engine configuration (and ``extra``)."""
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS / "containers.conf"), **extra}


def run_engine(engine: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``engine args...`` with the project's configuration; never raises on a non-zero exit."""
    return subprocess.run(
        [engine, *args],
        check=False,
        env=engine_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def why_engine_cannot_run(engine: str) -> str | None:
    """None when ``engine`` can run a container here, else why not (a skip reason)."""
    try:
        probe = run_engine(engine, "info", timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"no container engine: {engine} info failed ({error}; make engine installs podman)"
    if probe.returncode != 0:
        return f"{engine} cannot run containers here: {probe.stderr.strip()[-300:]}"
    return None
