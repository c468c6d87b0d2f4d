"""Kafka helpers for tests: where the broker is, fresh topics, and consuming with a deadline."""

from __future__ import annotations

import logging
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, cast

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from stream_app.settings import TopicNames
from tests.processes import free_port

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
BROKER_SCRIPT = REPO_ROOT / "deploy" / "kafka" / "broker.sh"
LOCAL_BOOTSTRAP = "127.0.0.1:9092"
TEST_BOOTSTRAP_ENV = "FRAUDSTREAM_TEST_BOOTSTRAP"


BROKER_IMAGE = "localhost/fraudstream-kafka:local"  # make broker-image
BROKER_START_TIMEOUT = 120.0  # seconds; a loaded 2-core machine starts the JVM slowly
BrokerSource = Literal["configured", "container", "local"]


def docker_engine_reachable() -> bool:
    """True when a Docker API answers: a Docker engine, or podman's (DOCKER_HOST)."""
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
    except Exception:  # any failure means "no usable engine", whatever the client raised
        return False
    return True


def broker_image_present(image: str = BROKER_IMAGE) -> bool:
    """True when the engine behind the Docker API holds the project's broker image."""
    try:
        import docker

        docker.from_env(timeout=3).images.get(image)
    except Exception:  # not found, or the engine went away: either way, not usable
        return False
    return True


def pick_broker(
    configured: str | None,
    engine_answers: Callable[[], bool],
    image_present: Callable[[], bool],
) -> BrokerSource:
    """Which broker a test session uses; the checks are callables, so each runs only if needed.

    An address in FRAUDSTREAM_TEST_BOOTSTRAP wins; else the broker image through testcontainers
    when a Docker API answers and holds it (podman's: deploy/containers/podman-service.sh); else
    the project's own broker from deploy/kafka.
    """
    if configured:
        return "configured"
    if engine_answers() and image_present():
        return "container"
    return "local"


def broker_answers(bootstrap: str, timeout: float = 5.0) -> bool:
    try:
        AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=timeout)
    except KafkaException:
        return False
    return True


def start_local_broker() -> str:
    """Start (idempotently) the project's own Apache Kafka broker and return its address."""
    subprocess.run(["bash", str(BROKER_SCRIPT), "start"], check=True, cwd=REPO_ROOT)
    return LOCAL_BOOTSTRAP


@contextmanager
def container_broker(
    image: str = BROKER_IMAGE, start_timeout: float = BROKER_START_TIMEOUT
) -> Iterator[str]:
    """The broker image in a container started by testcontainers; removed on the way out.

    A Kafka client connects to the address the broker advertises, so the host port is chosen
    first (a free one on 127.0.0.1) and advertised, rather than left to the engine. Ryuk,
    testcontainers' reaper, is off (its image cannot be pulled here): the finally clause removes
    the container. Ready means a client gets metadata, not a log line; then the project's topics
    are created, as deploy/kafka/broker.sh start does.
    """
    from testcontainers.core.config import testcontainers_config
    from testcontainers.core.container import DockerContainer

    testcontainers_config.ryuk_disabled = True
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    container = DockerContainer(image).with_env(
        "KAFKA_ADVERTISED_LISTENERS", f"PLAINTEXT://{bootstrap}"
    )
    # Published on 127.0.0.1 only; with_bind_ports would publish on every address.
    container.ports = cast(dict[str, int | None], {"9092/tcp": ("127.0.0.1", port)})
    container.start()
    try:
        wait_until(lambda: broker_answers(bootstrap, 2.0), start_timeout, f"broker on {bootstrap}")
        create_topics(bootstrap, TopicNames())
        yield bootstrap
    finally:
        container.stop()


@contextmanager
def session_broker() -> Iterator[tuple[BrokerSource, str]]:
    """The broker for a test session, as pick_broker chooses it: (where it comes from, address)."""
    configured = os.environ.get(TEST_BOOTSTRAP_ENV)
    source = pick_broker(configured, docker_engine_reachable, broker_image_present)
    if configured:
        yield source, configured
    elif source == "container":
        with container_broker() as bootstrap:
            yield source, bootstrap
    else:
        yield source, LOCAL_BOOTSTRAP if broker_answers(LOCAL_BOOTSTRAP) else start_local_broker()


def unique_topics(prefix: str) -> TopicNames:
    """A fresh set of topic names, so tests never see each other's messages."""
    suffix = f"{prefix}-{uuid.uuid4().hex[:8]}"
    return TopicNames(
        **{field: f"{name}-{suffix}" for field, name in TopicNames().model_dump().items()}
    )


def create_topics(bootstrap: str, topics: TopicNames, partitions: int = 3) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    compacted = set(topics.compacted())
    futures = admin.create_topics(
        [
            NewTopic(
                name,
                num_partitions=partitions,
                replication_factor=1,
                config={"cleanup.policy": "compact"} if name in compacted else {},
            )
            for name in topics.all()
        ]
    )
    for future in futures.values():
        future.result(timeout=30)


def delete_topics(bootstrap: str, topics: TopicNames) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.delete_topics(topics.all()).values():
        try:
            future.result(timeout=30)
        except KafkaException as exc:  # cleanup only: a leftover topic harms no later test
            log.warning("could not delete topic: %s", exc)


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.2
) -> None:
    """Poll ``condition`` until it holds; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def consume_all(
    bootstrap: str,
    topic: str,
    until: Callable[[list[Message]], bool],
    timeout: float,
    partitions: int = 3,
    settle_seconds: float = 1.0,
) -> list[Message]:
    """Read ``topic`` from the beginning until ``until(messages)`` holds, with a deadline.

    After the condition holds, keep reading for ``settle_seconds`` so that extra messages
    (duplicates) that would break an exact count are seen too.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    messages: list[Message] = []
    deadline = time.monotonic() + timeout
    settle_until: float | None = None
    try:
        while time.monotonic() < (settle_until or deadline):
            for message in consumer.consume(num_messages=1000, timeout=0.2):
                if message.error() is None:
                    messages.append(message)
            if settle_until is None and until(messages):
                settle_until = time.monotonic() + settle_seconds
    finally:
        consumer.close()
    if settle_until is None:
        raise AssertionError(
            f"timed out after {timeout}s reading {topic}: {len(messages)} messages"
        )
    return messages
