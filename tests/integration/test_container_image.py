"""The project image (deploy/Dockerfile), run for real with the engine deploy/containers/engine
picks.

`make test` builds the image first (`make image`); where it is missing the module builds it. The
containers use the host network, so they reach the session's broker at its own address, and
each test's topics are fresh (the ``topics`` fixture). Skipped only where no engine can run a
container here. docs/containers.md describes the image and how it is built.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from stream_app.schemas import Verdict
from stream_app.settings import TopicNames
from tests.engines import CONTAINERS, engine_env, run_engine, why_engine_cannot_run
from tests.factories import simulated_transactions
from tests.integration.worker_helpers import produce
from tests.kafka_helpers import consume_all, wait_until
from tests.processes import free_port
from tests.workers import settings_env

IMAGE = os.environ.get("FRAUDSTREAM_TEST_IMAGE", "fraudstream:local")
IMAGE_USER_ID = "10001"


def _engine_name() -> str:
    return subprocess.run(
        [str(CONTAINERS / "engine")], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture(scope="module")
def engine() -> str:
    name = _engine_name()
    reason = why_engine_cannot_run(name)
    if reason:
        pytest.skip(reason)
    has_image = subprocess.run(
        [name, "image", "inspect", IMAGE], env=engine_env(), capture_output=True, check=False
    )
    if has_image.returncode != 0:  # `make test` builds it first; a direct pytest run may not have
        subprocess.run(
            ["bash", str(CONTAINERS / "build-image.sh"), IMAGE], env=engine_env(), check=True
        )
    return name


def run_in_image(
    engine: str, command: list[str], env: dict[str, str] | None = None, *mounts: str
) -> subprocess.CompletedProcess[str]:
    """``command`` in a throw-away container of the image, on the host network."""
    options = ["run", "--rm", "--network=host"]
    for key, value in (env or {}).items():
        options += ["-e", f"{key}={value}"]
    for mount in mounts:
        options += ["-v", mount]
    return run_engine(engine, *options, IMAGE, *command)


def fraudstream_env(bootstrap: str, topics: TopicNames, **worker: str) -> dict[str, str]:
    """Only the FRAUDSTREAM_* settings: the host's environment stays out of the container."""
    env = settings_env(bootstrap, topics, **worker)
    return {k: v for k, v in env.items() if k.startswith("FRAUDSTREAM_") and "__" in k}


def world_writable(folder: Path) -> Path:
    """A host folder the image's non-root user can write through a bind mount."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o777)
    return folder


@pytest.fixture
def worker_container(
    engine: str, kafka_bootstrap: str, topics: TopicNames, trained_model_dir: Path
) -> Iterator[tuple[str, int]]:
    """The image's default command (the worker), detached; its name and web port."""
    name, port = f"fraudstream-test-{uuid.uuid4().hex[:8]}", free_port()
    # data_dir is left at its default (.local/worker): the image must let Faust create it.
    env = fraudstream_env(
        kafka_bootstrap,
        topics,
        app_id=f"test-container-{uuid.uuid4().hex[:8]}",
        web_port=str(port),
        model_path="/models/champion",
        model_poll_seconds="0",
    )
    options = ["run", "-d", "--name", name, "--network=host"]
    for key, value in env.items():
        options += ["-e", f"{key}={value}"]
    started = run_engine(engine, *options, "-v", f"{trained_model_dir}:/models/champion:ro", IMAGE)
    assert started.returncode == 0, started.stderr
    yield name, port
    logs = run_engine(engine, "logs", "--tail", "30", name).stdout
    run_engine(engine, "rm", "-f", "-t", "5", name)
    print(logs)  # noqa: T201  # shown by pytest only when the test failed


def healthy(engine: str, name: str) -> bool:
    """The image's own HEALTHCHECK, run now (podman runs it on demand; docker on its timer)."""
    running = run_engine(engine, "inspect", "--format", "{{.State.Running}}", name)
    assert running.stdout.strip() == "true", (
        f"worker container exited: {run_engine(engine, 'logs', name)}"
    )
    if engine == "podman":
        return run_engine(engine, "healthcheck", "run", name, timeout=60).returncode == 0
    status = run_engine(engine, "inspect", "--format", "{{.State.Health.Status}}", name)
    return status.stdout.strip() == "healthy"


def test_the_worker_image_scores_transactions_from_the_broker_and_passes_its_healthcheck(
    engine: str,
    kafka_bootstrap: str,
    topics: TopicNames,
    worker_container: tuple[str, int],
    tmp_path: Path,
) -> None:
    name, _ = worker_container
    wait_until(
        lambda: healthy(engine, name), timeout=180, what="worker container healthy", interval=2
    )

    transactions = simulated_transactions(300)
    produce(
        kafka_bootstrap,
        topics.transactions,
        [(t.customer_id.encode(), t.to_bytes()) for t in transactions],
    )
    raw = consume_all(kafka_bootstrap, topics.scores, lambda m: len(m) >= 300, timeout=180)
    verdicts = [Verdict.model_validate_json(m.value() or b"") for m in raw]
    assert len(verdicts) == 300
    assert {v.transaction_id for v in verdicts} == {t.transaction_id for t in transactions}

    # The drift command of the same image checks these verdicts' features (a real run).
    frame = pd.DataFrame([{**(v.features or {}), "score": v.score} for v in verdicts])
    data = world_writable(tmp_path / "drift")
    frame.to_parquet(data / "window.parquet")
    checked = run_in_image(
        engine,
        [
            *("fraudstream-drift", "check", "/data/window.parquet"),
            *("--reference", "/data/window.parquet", "--review-threshold", "0.5", "--no-reports"),
        ],
        None,
        f"{data}:/data",
    )
    assert checked.returncode == 0, checked.stderr
    result = json.loads(checked.stdout)
    assert result, "drift check printed no result"


def test_the_worker_container_runs_as_the_non_root_user(
    engine: str, worker_container: tuple[str, int]
) -> None:
    name, _ = worker_container
    wait_until(
        lambda: run_engine(engine, "exec", name, "true").returncode == 0,
        timeout=60,
        what="exec works",
    )
    user = run_engine(engine, "exec", name, "id", "-u")
    assert user.stdout.strip() == IMAGE_USER_ID
    # the worker process itself (PID 1 of the container) runs as that user too
    status = run_engine(engine, "exec", name, "cat", "/proc/1/status").stdout
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1:3] == [IMAGE_USER_ID, IMAGE_USER_ID]


def test_the_healthcheck_fails_while_the_worker_cannot_serve(engine: str) -> None:
    """The check is not a constant: with no worker serving, it fails."""
    name = f"fraudstream-test-{uuid.uuid4().hex[:8]}"
    port = str(free_port())
    started = run_engine(
        engine,
        *("run", "-d", "--name", name, "--network=host"),
        *("-e", f"FRAUDSTREAM_WORKER__WEB_PORT={port}", IMAGE, "sleep", "120"),
    )
    assert started.returncode == 0, started.stderr
    try:
        if engine == "podman":
            assert run_engine(engine, "healthcheck", "run", name, timeout=60).returncode != 0
        else:
            inspected = run_engine(
                engine, "inspect", "--format", "{{json .Config.Healthcheck}}", name
            )
            assert "/health" in inspected.stdout
    finally:
        run_engine(engine, "rm", "-f", "-t", "0", name)


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["fraudstream-worker", "--help"], "Score transactions from Kafka"),
        (["fraudstream-generate", "--help"], "stream"),
        (["fraudstream-train", "--help"], "first-model"),
        (["fraudstream-drift", "--help"], "drift monitor"),
    ],
)
def test_every_command_starts_from_the_image(
    engine: str, command: list[str], expected: str
) -> None:
    result = run_in_image(engine, command)
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout


def test_the_generator_streams_transactions_to_the_broker(
    engine: str, kafka_bootstrap: str, topics: TopicNames
) -> None:
    result = run_in_image(
        engine,
        ["fraudstream-generate", "stream", "--rate", "0", "--count", "50", "--warmup-days", "0"],
        fraudstream_env(kafka_bootstrap, topics),
    )
    assert result.returncode == 0, result.stderr
    messages = consume_all(kafka_bootstrap, topics.transactions, lambda m: len(m) >= 50, 120)
    assert len(messages) >= 50


def test_the_trainer_trains_a_first_model_into_a_mounted_folder(
    engine: str, tmp_path: Path
) -> None:
    models = world_writable(tmp_path / "models")
    result = run_in_image(
        engine,
        ["fraudstream-train", "first-model", "--out", "/models/champion", "--rounds", "10"],
        None,
        f"{models}:/models",
    )
    assert result.returncode == 0, result.stderr
    metadata = json.loads((models / "champion" / "metadata.json").read_text())
    assert metadata["version"]
    assert (models / "champion" / "model.ubj").stat().st_size > 0


def test_compose_yaml_passes_a_real_compose_config_check() -> None:
    checked = subprocess.run(
        ["bash", str(CONTAINERS / "check-compose.sh")],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stderr
    assert "passes" in checked.stdout
