"""``fraudstream-train train --tune N``: the search on the train split only, logged to MLflow.

MLflow is a real client on a local file store under the test's tmp dir: no server, no network.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from stream_app.settings import Settings
from tests.training_data import EXPERIMENT, FAST, NAME, synthetic_splits
from training.cli import build_parser
from training.cli.model_commands import training_job
from training.dataset import SplitPlan
from training.registry import PromotionPolicy
from training.retrain.job import (
    TRIALS_ARTIFACT,
    TrainingJob,
    search_train_split,
    train_and_publish,
)
from training.tuning import SEARCH_SPACE, TuneConfig

TUNE = TuneConfig(trials=3, validation_days=2, delay_days=1, seed=1)
JOB = TrainingJob(
    experiment=EXPERIMENT,
    model_name=NAME,
    plan=SplitPlan(),
    config=FAST,
    policy=PromotionPolicy(),
    tune=TUNE,
)


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    # MLflow 3 refuses its file store unless asked: it is enough here (runs, artifacts, registry).
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    uri = f"file://{tmp_path / 'mlruns'}"
    # Something on MLflow 3's registry path still opens its default ./mlflow.db (sqlite) in
    # the working directory: keep that in the test's tmp dir too.
    monkeypatch.chdir(tmp_path)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _run(client: MlflowClient, job: TrainingJob) -> tuple[dict[str, str], list[str], str]:
    splits = synthetic_splits()
    result = train_and_publish(client, job, splits, pd.Timestamp("2025-03-13", tz="UTC")).result
    run = client.get_run(result.run_id)
    listed = [item.path for item in client.list_artifacts(result.run_id, "tuning")]
    return run.data.params, listed, result.run_id


def test_train_logs_the_chosen_params_and_trains_with_them(
    client: MlflowClient, tmp_path: Path
) -> None:
    splits = synthetic_splits()
    expected = search_train_split(FAST, TUNE, splits.train)  # same seed: the same search
    params, listed, run_id = _run(client, JOB)
    assert {name: params[f"tuned.{name}"] for name in SEARCH_SPACE} == {
        name: str(value) for name, value in expected.chosen.items()
    }
    # the model itself was trained with the chosen values, logged under their plain names too
    assert {name: params[name] for name in SEARCH_SPACE} == {
        name: str(value) for name, value in expected.chosen.items()
    }
    assert params["tuning.trials"] == "3" and params["tuning.seed"] == "1"
    assert float(params["tuning.best_average_precision"]) == expected.best_average_precision
    assert listed == [TRIALS_ARTIFACT]
    local = client.download_artifacts(run_id, TRIALS_ARTIFACT, str(tmp_path))
    trials = json.loads(Path(local).read_text())
    assert trials == json.loads(json.dumps(expected.to_json()))
    assert [trial["index"] for trial in trials["trials"]] == [0, 1, 2]


def test_the_search_is_scored_on_the_train_split_last_days_only() -> None:
    splits = synthetic_splits()
    result = search_train_split(FAST, TUNE, splits.train)
    train_end = splits.train.end
    assert result.validation_end == train_end.isoformat()
    assert result.validation_start == (train_end - pd.Timedelta(days=2)).isoformat()
    assert result.inner_train_end == (train_end - pd.Timedelta(days=3)).isoformat()
    assert pd.Timestamp(result.validation_end) <= splits.validation.start


def test_train_without_tune_logs_no_tuning(client: MlflowClient) -> None:
    params, listed, _ = _run(client, replace(JOB, tune=None))
    assert not [name for name in params if name.startswith(("tuned.", "tuning."))]
    assert params["max_depth"] == str(FAST.max_depth)
    assert listed == []


def test_train_tune_flags_default_the_delay_to_the_gap_days() -> None:
    args = build_parser().parse_args(["train", "--tune", "6", "--gap-days", "2"])
    assert training_job(args, Settings()).tune == TuneConfig(6, 2.0, 2.0, 0)
    assert training_job(build_parser().parse_args(["train"]), Settings()).tune is None
