"""The worker's start-up refuses a champion trained on another feature list and skips such a shadow.

The booster checks only the number of columns, so without these checks a model of an older
release (one feature fewer, or the same count in another order) would score every transaction
on the wrong columns. A hot swap to such a model is refused by the swapper
(tests/unit/test_model_swap.py, ``feature_mismatch``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from stream_app.features import FEATURE_NAMES
from stream_app.model import ModelBundle
from stream_app.settings import Settings
from stream_app.worker import main as worker_main
from stream_app.worker.model_checks import synthetic_canary
from tests.factories import SIGNAL, booster, bundle, quantile_model, saved

NEW_FEATURE = "seconds_since_device_first_seen"


def _previous_release_model() -> ModelBundle:
    """A sound booster on the feature list before ``seconds_since_device_first_seen``."""
    names = tuple(name for name in FEATURE_NAMES if name != NEW_FEATURE)
    full = synthetic_canary(rows=600, seed=100)
    matrix = np.delete(full, FEATURE_NAMES.index(NEW_FEATURE), axis=1)
    labels = full[:, SIGNAL] > np.median(full[:, SIGNAL])
    return bundle(booster(matrix, labels, names, seed=0, rounds=8), "fraudstream-xgb", "3", names)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """main() sets MLflow's retry variables with setdefault; these undo it after the test."""
    for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.setenv(name, "1")


def test_a_champion_of_another_feature_list_stops_the_start_with_exit_code_2(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = saved(_previous_release_model(), tmp_path / "model")

    with (
        caplog.at_level(logging.ERROR, logger="stream_app.worker.main"),
        pytest.raises(SystemExit) as exited,
    ):
        worker_main.main(["--model", str(folder)])

    assert exited.value.code == 2
    refusals = [r.getMessage() for r in caplog.records if "model refused" in r.getMessage()]
    assert refusals == [
        "model refused: model=fraudstream-xgb version=3 feature list differs: "
        f"missing=['{NEW_FEATURE}'] unexpected=[] (retrain it with this release)"
    ]
    assert capsys.readouterr().err == (
        "fraudstream-worker: model fraudstream-xgb v3: feature list differs: "
        f"missing=['{NEW_FEATURE}'] unexpected=[]; retrain it with this release\n"
    )


def test_a_champion_with_the_features_in_another_order_is_refused_too(tmp_path: Path) -> None:
    reordered = (FEATURE_NAMES[1], FEATURE_NAMES[0], *FEATURE_NAMES[2:])
    folder = saved(quantile_model("4", names=reordered), tmp_path / "model")

    with pytest.raises(SystemExit) as exited:
        worker_main.main(["--model", str(folder)])

    assert exited.value.code == 2


def test_a_shadow_of_another_feature_list_is_skipped_with_a_log_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = saved(_previous_release_model(), tmp_path / "shadow")
    settings = Settings()
    settings.worker.shadow_model_path = folder

    with caplog.at_level(logging.ERROR, logger="stream_app.worker.main"):
        shadow = worker_main._load_shadow(settings)

    assert shadow is None
    assert [r.getMessage() for r in caplog.records] == [
        f"shadow model not loaded path={folder} error=feature list differs: "
        f"missing=['{NEW_FEATURE}'] unexpected=[]"
    ]


def test_a_shadow_of_the_same_feature_list_is_loaded(tmp_path: Path) -> None:
    folder = saved(quantile_model("5"), tmp_path / "shadow")
    settings = Settings()
    settings.worker.shadow_model_path = folder

    shadow = worker_main._load_shadow(settings)

    assert shadow is not None
    assert shadow.metadata.version == "5"
    assert shadow.metadata.feature_names == FEATURE_NAMES
