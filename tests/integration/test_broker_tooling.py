"""The local broker tooling, deploy/kafka/broker.sh and deploy/bin/*, run for real.

A private broker on free ports in its own folder, so the team's broker on 9092 is never touched;
it shares the jar folder with it (KAFKA_LIBS) instead of downloading them again.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource

from stream_app.settings import TopicNames
from tests.processes import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
BROKER_SH = REPO_ROOT / "deploy" / "kafka" / "broker.sh"
BIN_DIR = REPO_ROOT / "deploy" / "bin"
# broker.sh waits up to 60 s for readiness itself; this only stops a hung script.
SCRIPT_TIMEOUT_S = 150


@dataclass(frozen=True)
class LocalBroker:
    """A broker started by broker.sh, and the environment that addresses it."""

    env: dict[str, str]
    state_dir: Path
    bootstrap: str

    def script(self, command: str) -> subprocess.CompletedProcess[str]:
        return self.tool(str(BROKER_SH), command)

    def tool(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args,
            input=stdin,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=SCRIPT_TIMEOUT_S,
            check=False,
        )

    def pid(self) -> int:
        return int((self.state_dir / "broker.pid").read_text().strip())


def _is_running(pid: int) -> bool:
    """False once the process is gone or a zombie: PID 1 in some containers never reaps orphans."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state != "Z"


def _broker_env(state_dir: Path, kafka_port: int, controller_port: int) -> dict[str, str]:
    # The topic layout must be the defaults this test expects, whatever the shell exports.
    env = {key: value for key, value in os.environ.items() if not key.startswith("FRAUDSTREAM_")}
    env.update(
        KAFKA_LOCAL=str(state_dir),
        KAFKA_LIBS=os.environ.get("KAFKA_LIBS", str(REPO_ROOT / ".local" / "kafka" / "libs")),
        KAFKA_PORT=str(kafka_port),
        CONTROLLER_PORT=str(controller_port),
    )
    return env


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    state_dir = tmp_path_factory.mktemp("kafka")
    kafka_port, controller_port = free_port(), free_port()
    local = LocalBroker(
        env=_broker_env(state_dir, kafka_port, controller_port),
        state_dir=state_dir,
        bootstrap=f"127.0.0.1:{kafka_port}",
    )
    started = local.script("start")
    assert started.returncode == 0, started.stderr
    yield local
    local.script("stop")


def test_second_start_keeps_the_running_broker(broker: LocalBroker) -> None:
    pid_before = broker.pid()

    again = broker.script("start")

    assert again.returncode == 0, again.stderr
    assert "already running" in again.stderr
    assert broker.pid() == pid_before
    assert _is_running(pid_before)


def test_start_creates_every_settings_topic_with_three_partitions(broker: LocalBroker) -> None:
    metadata = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=10)
    expected = TopicNames().all()

    partitions = {
        name: len(topic.partitions) for name, topic in metadata.topics.items() if name in expected
    }

    assert partitions == dict.fromkeys(expected, 3)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    policies = {
        name: future.result()["cleanup.policy"].value
        for resource, future in admin.describe_configs(
            [ConfigResource("topic", name) for name in expected]
        ).items()
        for name in [resource.name]
    }
    compacted = set(TopicNames().compacted())
    assert policies == {name: "compact" if name in compacted else "delete" for name in expected}


def test_console_producer_message_is_read_back_by_console_consumer(broker: LocalBroker) -> None:
    topic = f"roundtrip-{uuid.uuid4().hex[:8]}"
    line = f'cust-{uuid.uuid4().hex[:6]}|{{"transaction_id": "{uuid.uuid4()}", "amount": 12.5}}'
    # No --bootstrap-server: the wrapper must default to the broker on $KAFKA_PORT.
    created = broker.tool(str(BIN_DIR / "kafka-topics"), "--create", "--topic", topic)
    assert created.returncode == 0, created.stderr

    produced = broker.tool(
        *(str(BIN_DIR / "kafka-console-producer"), "--bootstrap-server", broker.bootstrap),
        *("--topic", topic, "--property", "parse.key=true", "--property", "key.separator=|"),
        stdin=line + "\n",
    )
    consumed = broker.tool(
        *(str(BIN_DIR / "kafka-console-consumer"), "--bootstrap-server", broker.bootstrap),
        *("--topic", topic, "--from-beginning", "--max-messages", "1", "--timeout-ms", "20000"),
        *("--property", "print.key=true", "--property", "key.separator=|"),
    )

    assert produced.returncode == 0, produced.stderr
    assert consumed.returncode == 0, consumed.stderr
    # Exactly the message on stdout: the quiet log4j config keeps log lines out of it.
    assert consumed.stdout == line + "\n"


# Ends the module's broker, so it stays the last test of the file.
def test_stop_ends_the_broker_and_a_second_stop_is_a_no_op(broker: LocalBroker) -> None:
    pid = broker.pid()

    stopped = broker.script("stop")
    stopped_again = broker.script("stop")

    assert stopped.returncode == 0, stopped.stderr
    assert not _is_running(pid)
    assert not (broker.state_dir / "broker.pid").exists()
    assert stopped_again.returncode == 0, stopped_again.stderr
    assert "not running" in stopped_again.stderr
