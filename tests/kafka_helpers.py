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

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from stream_app.settings import TopicNames

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
BROKER_SCRIPT = REPO_ROOT / "deploy" / "kafka" / "broker.sh"
LOCAL_BOOTSTRAP = "127.0.0.1:9092"
TEST_BOOTSTRAP_ENV = "FRAUDSTREAM_TEST_BOOTSTRAP"


def docker_engine_reachable() -> bool:
    """True when a Docker engine answers; then testcontainers can start the broker."""
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
    except Exception:  # any failure means "no usable engine", whatever the client raised
        return False
    return True


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
def testcontainers_broker() -> Iterator[str]:
    from testcontainers.community.kafka import KafkaContainer

    with KafkaContainer().with_kraft() as container:
        yield container.get_bootstrap_server()


@contextmanager
def session_broker() -> Iterator[str]:
    """The broker for a test session.

    An explicitly configured address wins; else testcontainers when a Docker engine is
    reachable; else the local Apache Kafka broker from deploy/kafka (started if needed).
    """
    configured = os.environ.get(TEST_BOOTSTRAP_ENV)
    if configured:
        yield configured
    elif docker_engine_reachable():
        with testcontainers_broker() as bootstrap:
            yield bootstrap
    else:
        yield LOCAL_BOOTSTRAP if broker_answers(LOCAL_BOOTSTRAP) else start_local_broker()


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
