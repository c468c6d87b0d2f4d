"""The broker image (make broker-image) through testcontainers and podman's Docker-compatible API.

The module uses the Docker API DOCKER_HOST names when one answers; else it starts podman's
(deploy/containers/podman-service.sh, on a socket of its own) and stops it afterwards. It builds
the image when missing. Skipped, with the reason, only where podman cannot run a container.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator

import docker
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from tests.engines import CONTAINERS, engine_env, why_engine_cannot_run
from tests.integration.worker_helpers import produce
from tests.kafka_helpers import (
    BROKER_IMAGE,
    broker_image_present,
    consume_all,
    container_broker,
    docker_engine_reachable,
)

ENGINE_ENV = engine_env()


@pytest.fixture(scope="module")
def docker_api() -> Iterator[None]:
    """A Docker API holding the broker image, named by DOCKER_HOST for the module's tests."""
    if docker_engine_reachable():
        started = None
    else:
        reason = why_engine_cannot_run("podman")
        if reason:
            pytest.skip(reason)
        # A short path: a unix socket's path is limited to 108 bytes.
        started = tempfile.mkdtemp(prefix="fs-podman-")
        service = {**ENGINE_ENV, "PODMAN_SOCKET": f"{started}/podman.sock"}
        subprocess.run(
            ["bash", str(CONTAINERS / "podman-service.sh"), "start"], env=service, check=True
        )
        previous = os.environ.get("DOCKER_HOST")
        os.environ["DOCKER_HOST"] = f"unix://{started}/podman.sock"
    try:
        if not broker_image_present():
            subprocess.run(
                ["bash", str(CONTAINERS / "broker-image.sh")], env=ENGINE_ENV, check=True
            )
        yield
    finally:
        if started:
            subprocess.run(
                ["bash", str(CONTAINERS / "podman-service.sh"), "stop"], env=service, check=False
            )
            shutil.rmtree(started, ignore_errors=True)
            if previous is None:
                os.environ.pop("DOCKER_HOST", None)
            else:
                os.environ["DOCKER_HOST"] = previous


def _broker_containers() -> set[str]:
    """Ids of every container (running or not) made from the broker image."""
    client = docker.from_env(timeout=10)
    return {c.id for c in client.containers.list(all=True, filters={"ancestor": BROKER_IMAGE})}


@pytest.mark.usefixtures("docker_api")
def test_the_broker_image_serves_a_round_trip_and_is_removed_after() -> None:
    before = _broker_containers()
    topic = f"container-broker-{uuid.uuid4().hex[:8]}"
    with container_broker() as bootstrap:
        ours = _broker_containers() - before
        assert len(ours) == 1, f"expected one new broker container, found {ours}"
        # The project's topics exist, as after deploy/kafka/broker.sh start.
        admin = AdminClient({"bootstrap.servers": bootstrap})
        assert "transactions" in admin.list_topics(timeout=10).topics
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[
            topic
        ].result(30)
        produce(bootstrap, topic, [(b"key", b"through podman")])
        messages = consume_all(
            bootstrap, topic, lambda got: len(got) >= 1, timeout=30, partitions=1
        )
        assert [(m.key(), m.value()) for m in messages] == [(b"key", b"through podman")]
    assert not (_broker_containers() & ours), "the broker container outlived its fixture"
