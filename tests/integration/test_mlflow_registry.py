"""Registration, champion/challenger gating and native loading against a real ``mlflow server``."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from stream_app.features import FEATURE_NAMES
from tests.integration.mlflow_server import MlflowServer, running_mlflow_server
from tests.training_data import (
    EXPERIMENT,
    FAST,
    NAME,
    publish_model,
    synthetic_splits,
    with_shuffled_training_labels,
)
from training.registry import (
    HISTORY_TAG,
    MODEL_ARTIFACT_PATH,
    REFERENCE_ARTIFACT,
    RUN_SUFFIXES,
    UnsafeArtifactError,
    alias_history,
    aliases,
    client_for,
    load_champion,
    load_version,
    version_with_alias_at,
)
from training.train import train_model


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    with running_mlflow_server(tmp_path_factory.mktemp("mlflow")) as running:
        yield running


def test_champion_gate_history_and_native_round_trip(server: MlflowServer) -> None:
    client = client_for(server.tracking_uri)
    splits = synthetic_splits()
    good = train_model(splits, config=FAST, name=NAME)
    worse = train_model(with_shuffled_training_labels(splits), config=FAST, name=NAME)

    first = publish_model(client, good, splits)
    assert (first.version, first.promoted, first.champion_version) == ("1", True, None)

    second = publish_model(client, worse, splits)
    assert second.candidate_score < first.candidate_score
    assert (second.version, second.promoted, second.champion_version) == ("2", False, "1")
    assert second.champion_score == pytest.approx(first.candidate_score)

    # The same model again ties the champion: margin 0.0 means strictly better, so no move.
    third = publish_model(client, good, splits)
    assert (third.version, third.promoted) == ("3", False)
    assert aliases(client, NAME) == {"champion": "1", "challenger": "3"}

    champion = load_champion(server.tracking_uri, NAME)
    assert (champion.metadata.name, champion.metadata.version) == (NAME, "1")
    features = splits.test.features()
    assert np.array_equal(champion.predict(features), good.predict(features))
    assert champion.metadata.feature_names == FEATURE_NAMES
    assert (champion.metadata.review_threshold, champion.metadata.block_threshold) == (
        good.metadata.review_threshold,
        good.metadata.block_threshold,
    )

    history = alias_history(client, NAME)
    assert [(move.alias, move.version, move.previous) for move in history] == [
        ("champion", "1", None),
        ("challenger", "2", None),
        ("challenger", "3", "2"),
    ]
    tags = {v: client.get_model_version(NAME, v).tags for v in ("1", "2", "3")}
    assert "champion_from" in tags["1"] and "champion_until" not in tags["1"]
    assert tags["2"]["challenger_until"] == tags["3"]["challenger_from"]
    assert version_with_alias_at(history, "champion", datetime.now(UTC)) == "1"
    assert version_with_alias_at(history, "champion", datetime(2000, 1, 1, tzinfo=UTC)) is None
    assert json.loads(client.get_registered_model(NAME).tags[HISTORY_TAG])[0]["version"] == "1"

    run_files = run_artifacts(client, first.run_id)
    assert {f"{MODEL_ARTIFACT_PATH}/model.ubj", f"{MODEL_ARTIFACT_PATH}/metadata.json"} <= run_files
    assert {REFERENCE_ARTIFACT, "evaluation/pr_curve.png", "evaluation/roc_curve.json"} <= run_files
    reference = pd.read_parquet(client.download_artifacts(first.run_id, REFERENCE_ARTIFACT))
    assert list(reference.columns) == [*FEATURE_NAMES, "score"]
    assert len(reference) == min(5_000, splits.validation.rows)

    experiment_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
    assert_no_pickle_on_disk(server.artifacts / experiment_id)


def run_artifacts(client: Any, run_id: str, path: str | None = None) -> set[str]:
    files: set[str] = set()
    for info in client.list_artifacts(run_id, path):
        files |= run_artifacts(client, run_id, info.path) if info.is_dir else {info.path}
    return files


def assert_no_pickle_on_disk(root: Path) -> None:
    """Everything the server stored: only our plain formats, nothing that starts like a pickle."""
    stored = [path for path in root.rglob("*") if path.is_file()]
    assert stored
    assert {path.suffix for path in stored} <= RUN_SUFFIXES
    assert not [path for path in stored if path.read_bytes()[:1] == b"\x80"]


def test_a_version_with_a_pickle_is_refused(server: MlflowServer) -> None:
    client = client_for(server.tracking_uri)
    run_id = client.create_run(client.create_experiment("pickle-refusal")).info.run_id
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "model.pkl").write_bytes(b"\x80\x04\x95\x00")  # a pickle header, not loaded
        client.log_artifacts(run_id, tmp, "model")
    client.create_registered_model("pickled")
    source = f"{client.get_run(run_id).info.artifact_uri}/model"
    version = client.create_model_version("pickled", source=source, run_id=run_id)
    with pytest.raises(UnsafeArtifactError, match=r"model\.pkl"):
        load_version(client, "pickled", str(version.version))
