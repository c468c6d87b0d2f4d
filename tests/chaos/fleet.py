"""The workers and the broker the soak's faults strike, and the supervisor that restarts them.

Each worker slot keeps its data folder across restarts (as a container with a volume would); a
restart is a new process on the same slot. ``supervise`` plays the part of systemd or Kubernetes:
a worker that exits on its own (70: a bug or unconfirmed outputs, 75: the progress watchdog) is
started again, and its exit code is counted for the report.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from stream_app.settings import TopicNames
from tests.integration.fault_helpers import SeparateBroker
from tests.integration.worker_helpers import ready
from tests.kafka_helpers import REPO_ROOT
from tests.processes import free_port
from tests.workers import WorkerProcess, settings_env

# Loaded by each worker's interpreter (``sitecustomize`` on its PYTHONPATH), as the fault tests
# inject their bug: a batch raises when the soak has dropped a trigger file, and only the worker
# that claims the file (an atomic rename) raises, once per trigger.
SCORING_BUG_HOOK = """
import os, sys
sys.path.insert(0, os.environ["FAULT_REPO_ROOT"])
from stream_app.processor import BatchScorer

_score_batch = BatchScorer.score_batch
_triggers = os.environ["CHAOS_BUG_TRIGGERS"]

def score_batch(self, records):
    for name in os.listdir(_triggers):
        if name.endswith(".pending"):
            try:
                os.rename(os.path.join(_triggers, name), os.path.join(_triggers, name + ".taken"))
            except OSError:
                continue  # another worker claimed it first
            raise RuntimeError("injected bug while scoring (chaos soak)")
    return _score_batch(self, records)

BatchScorer.score_batch = score_batch
"""


@dataclass
class Slot:
    name: str
    data_dir: Path
    process: WorkerProcess | None = None
    started_at: float = 0.0
    incarnations: int = 0


@dataclass
class Fleet:
    """Worker processes of one consumer group on one broker."""

    folder: Path
    bootstrap: str
    topics: TopicNames
    model: Path
    worker_settings: dict[str, str]
    faust_env: dict[str, str]
    slots: dict[str, Slot] = field(default_factory=dict)
    own_exits: Counter[str] = field(default_factory=Counter)  # exits the soak caused
    unprompted_exits: Counter[int] = field(default_factory=Counter)  # exits the supervisor saw
    all_processes: list[WorkerProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.triggers = self.folder / "bug-triggers"
        self.triggers.mkdir(parents=True, exist_ok=True)
        hook = self.folder / "hook"
        hook.mkdir(exist_ok=True)
        (hook / "sitecustomize.py").write_text(SCORING_BUG_HOOK)
        self.hook_env = {
            "PYTHONPATH": str(hook),
            "FAULT_REPO_ROOT": str(REPO_ROOT),
            "CHAOS_BUG_TRIGGERS": str(self.triggers),
        }

    # --- starting and stopping ----------------------------------------------------------------

    def start(self, name: str) -> WorkerProcess:
        slot = self.slots.setdefault(name, Slot(name, self.folder / f"{name}-data"))
        port = free_port()
        options = {
            "data_dir": str(slot.data_dir),
            "web_port": str(port),
            "model_path": str(self.model),
            "model_poll_seconds": "0",
            **self.worker_settings,
        }
        env = {
            **settings_env(self.bootstrap, self.topics, **options),
            **self.faust_env,
            **self.hook_env,
        }
        log_path = self.folder / f"{name}-{slot.incarnations}.log"
        slot.process = WorkerProcess(env, port, log_path)
        slot.started_at, slot.incarnations = time.monotonic(), slot.incarnations + 1
        self.all_processes.append(slot.process)
        return slot.process

    def wait_ready(self, names: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for name in names:
            process = self.slots[name].process
            assert process is not None
            while not ready(process):
                assert time.monotonic() < deadline, f"{name} not ready after {timeout}s"
                time.sleep(0.2)

    def running(self) -> list[str]:
        return [n for n, s in self.slots.items() if s.process and s.process.process.poll() is None]

    def kill(self, name: str) -> None:
        """SIGKILL, then a new process on the slot at once (the supervisor's restart)."""
        process = self._process(name)
        process.process.send_signal(signal.SIGKILL)
        process.process.wait(30)
        process.stop()  # closes its log file; the process is gone already
        self.own_exits["sigkill"] += 1
        self.start(name)

    def terminate(self, name: str, restart: bool = True) -> int:
        """SIGTERM (a clean leave: the worker commits and leaves the group); its exit code."""
        code = self._process(name).stop(timeout=60)
        self.own_exits[f"sigterm exit {code}"] += 1
        if restart:
            self.start(name)
        else:
            self.slots[name].process = None
        return code

    def drop_bug_trigger(self, number: int) -> None:
        (self.triggers / f"bug-{number}.pending").write_text("raise once")

    def bugs_raised(self) -> int:
        return sum(name.endswith(".taken") for name in os.listdir(self.triggers))

    def supervise(self) -> None:
        """Restart every worker that exited on its own, counting its exit code."""
        for name, slot in self.slots.items():
            if slot.process is not None and slot.process.process.poll() is not None:
                self.unprompted_exits[slot.process.process.returncode] += 1
                slot.process.stop()
                self.start(name)

    def stop_all(self) -> None:
        for process in self.all_processes:
            process.stop(timeout=60)

    def _process(self, name: str) -> WorkerProcess:
        process = self.slots[name].process
        assert process is not None, f"{name} is not running"
        return process


def kill_and_restart_broker(broker: SeparateBroker, timeout: float = 60) -> None:
    """SIGKILL the broker JVM, wait until its port is closed, start it again.

    ``SeparateBroker.kill`` returns once the JVM's main thread is gone, but its other threads,
    and the listening socket with them, can take a moment longer: broker.sh then refuses to
    start ("port is taken"). Polled with a deadline."""
    broker.kill()
    host, port = broker.bootstrap.split(":")
    deadline = time.monotonic() + timeout
    while _port_open(host, int(port)):
        assert time.monotonic() < deadline, f"port {port} still open {timeout}s after SIGKILL"
        time.sleep(0.1)
    broker.start()


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def own_broker(folder: Path, port: int, controller_port: int) -> SeparateBroker:
    """The soak's broker: never the shared 9092, nor the fault tests' 19192, since it is killed."""
    return SeparateBroker(folder, port, controller_port)
