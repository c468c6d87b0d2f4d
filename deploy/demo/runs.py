"""Where a run keeps its state, the lake history it starts from and its first champion."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from deploy.demo.planner import (
    BASELINE_TAG,
    DAY,
    HISTORY_DAYS,
    KEPT_RUNS,
    LABEL_DELAY,
    LAUNCH_ROUNDS,
    Plan,
)
from deploy.stack import python_command
from producers.simulator import (
    Simulator,
)
from producers.sinks import LakeSink
from stream_app.model_store import load_version
from stream_app.settings import Settings
from stream_app.store import ObjectStore

# ---------------------------------------------------------------------------------------------
# Where a run keeps its state


@dataclass(frozen=True)
class RunPaths:
    run_id: str
    root: Path

    @classmethod
    def create(cls, home: Path, now: datetime) -> RunPaths:
        run_id = now.strftime("%Y%m%d-%H%M%S")
        root = (home / "runs" / run_id).resolve()
        root.mkdir(parents=True, exist_ok=False)
        prune_runs(home / "runs", keep=KEPT_RUNS)
        return cls(run_id, root)

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def store(self) -> Path:
        return self.root / "store"

    @property
    def group_prefix(self) -> str:
        """Consumer groups and the worker's app id: never shared with an earlier run."""
        return f"fraudstream-demo-{self.run_id}"

    def groups(self) -> list[str]:
        return [f"{self.group_prefix}-{name}" for name in ("worker", "drift", "trainer")] + [
            f"{self.group_prefix}-lake-writer"
        ]

    def identity_env(self, model_dir: Path) -> dict[str, str]:
        prefix = self.group_prefix
        return {
            "FRAUDSTREAM_STORE__URI": str(self.store),
            "FRAUDSTREAM_WORKER__APP_ID": f"{prefix}-worker",
            "FRAUDSTREAM_WORKER__DATA_DIR": str(self.root / "worker"),
            "FRAUDSTREAM_WORKER__MODEL_PATH": str(model_dir.resolve()),
            "FRAUDSTREAM_WORKER__MODEL_POLL_SECONDS": "5",
            "FRAUDSTREAM_DRIFT__APP_ID": f"{prefix}-drift",
            "FRAUDSTREAM_TRAINING__APP_ID": f"{prefix}-trainer",
            "FRAUDSTREAM_TRAINING__LAKE_WRITER_APP_ID": f"{prefix}-lake-writer",
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        }


def prune_runs(runs: Path, keep: int) -> None:
    for old in sorted(path for path in runs.iterdir() if path.is_dir())[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# History and the first champion


def write_history(plan: Plan, store: ObjectStore) -> int:
    """HISTORY_DAYS days before the stream's first day into the lake, same world as the stream.

    A simulator run's days are seeded by their position in the run, so the history comes from
    a run that starts earlier and is written from the day after the stream's last position on:
    its days are other draws than the stream's (no repeated transaction ids) in the same world.
    """
    stream_days = (plan.schedule.live_until or plan.schedule.live_from) - plan.schedule.start
    offset = stream_days // DAY + 2
    first_day = plan.schedule.start - HISTORY_DAYS * DAY
    config = plan.population.config(first_day - offset * DAY)
    sink = LakeSink(store, part="history")
    for batch in Simulator(config).iter_days(offset + HISTORY_DAYS):
        if batch.day >= offset:
            sink.write_day(batch)
    return sink.transactions_written


def find_baseline(client: Any, name: str, key: str) -> str | None:
    """The newest version tagged as this population's first champion."""
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        return None
    versions = client.search_model_versions(f"name = '{name}'")
    tagged = [int(v.version) for v in versions if dict(v.tags).get(BASELINE_TAG) == key]
    return str(max(tagged)) if tagged else None


def newest_version(client: Any, name: str) -> str:
    return str(max(int(v.version) for v in client.search_model_versions(f"name = '{name}'")))


def restore_champion(client: Any, settings: Settings, version: str) -> None:
    """Every run starts from the first champion; the move is recorded like any other."""
    from training.registry import move_alias

    alias = settings.mlflow.champion_alias
    move_alias(client, settings.mlflow.model_name, alias, version, "demo run starts")


def export_version(client: Any, name: str, version: str, folder: Path) -> None:
    bundle = load_version(client, name, version)
    if folder.exists():
        shutil.rmtree(folder)
    bundle.save(folder)


def baseline_command(plan: Plan) -> list[str]:
    return python_command(
        "training.cli",
        "train",
        "--as-of",
        plan.schedule.start.isoformat(),
        "--history-days",
        str(HISTORY_DAYS),
        "--gap-days",
        str(LABEL_DELAY[1] / DAY),
        "--seed",
        str(plan.population.seed),
        "--rounds",
        str(LAUNCH_ROUNDS),
    )
