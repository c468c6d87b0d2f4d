"""Hot model swap: a good version is handed over once, every bad one leaves the old model serving.

Bundles are tiny boosters trained on the real feature layout and saved as local folders; the
registry is faked behind the ``ModelSource`` protocol (the real one is in the integration test).
Most tests run the loader inline (``InlineExecutor``); the threading tests use real threads and
wait on the swapper's own futures, never on sleeps.
"""

from __future__ import annotations

import logging
import os
import pickle
import platform
import threading
import warnings
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import ParamSpec, TypeVar

import numpy as np
import numpy.typing as npt
import pytest
from prometheus_client import CollectorRegistry

from stream_app.features import FEATURE_NAMES
from stream_app.model import ModelBundle, ModelLoadError
from stream_app.model_store import (
    MLFLOW_PICKLE_SWITCH,
    ModelStore,
    RegistryRef,
    UnsafeArtifactError,
    load_folder,
    parse_model_uri,
)
from stream_app.schemas import ModelUpdate
from stream_app.worker.model_checks import (
    CANARY_ROWS,
    FAILURE_REASONS,
    canary_problem,
    score_correlation,
    synthetic_canary,
)
from stream_app.worker.model_swap import (
    SWAP_RESULTS,
    FailureStreak,
    ModelSwapper,
    create_swap_metrics,
)
from tests.factories import SIGNAL, quantile_model, saved
from tests.factories import SWAP_MODEL_NAME as NAME

WAIT_SECONDS = 30.0
P = ParamSpec("P")
T = TypeVar("T")


@pytest.fixture(autouse=True)
def _swap_logs_at_info(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="stream_app.worker.model_swap")


@pytest.fixture(scope="module")
def bundles() -> dict[str, ModelBundle]:
    renamed = (*FEATURE_NAMES[:-1], "merchant_chargeback_rate_90d")
    reordered = (FEATURE_NAMES[1], FEATURE_NAMES[0], *FEATURE_NAMES[2:])
    return {
        "serving": quantile_model("1"),
        "good": quantile_model("2", quantile=0.8),
        "other_features": quantile_model("2", names=renamed),
        "reordered_features": quantile_model("2", names=reordered),
        "constant_scores": quantile_model("2", min_child_weight=1e9),
        "scores_outside_unit_interval": quantile_model(
            "2", objective="reg:squarederror", label_scale=5.0
        ),
    }


class InlineExecutor(Executor):
    """Runs each job inside ``submit``: the loader's outcome is known when ``request`` returns."""

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


class FakeRegistry:
    """A ``ModelSource``: local folders by path, ``models:/`` versions from a dict, and a
    champion alias; records every call. ``gate`` holds loads until the test opens it."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.folders: dict[str, Path] = {}
        self.champion: str | None = None
        self.gate = gate
        self.loads: list[str] = []
        self.alias_calls = 0
        self.load_threads: list[str] = []

    def load(self, uri: str) -> ModelBundle:
        self.loads.append(uri)
        self.load_threads.append(threading.current_thread().name)
        if self.gate is not None:
            assert self.gate.wait(WAIT_SECONDS)
        target = parse_model_uri(uri)
        if isinstance(target, RegistryRef):
            target = self.folders[str(target.version)]
        return load_folder(target)

    def alias_version(self, name: str, alias: str) -> str:
        self.alias_calls += 1
        if self.gate is not None:
            assert self.gate.wait(WAIT_SECONDS)
        if self.champion is None:
            raise ConnectionError("registry unreachable")
        return self.champion


class Rig:
    """A swapper serving version 1, with its own metrics registry."""

    def __init__(
        self,
        serving: ModelBundle,
        source: FakeRegistry | None = None,
        executor: Executor | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.registry = CollectorRegistry()
        self.source = source or FakeRegistry()
        self.now = 0.0  # the swapper's clock, moved by the test
        self.swapper = ModelSwapper(
            serving,
            self.source,
            create_swap_metrics(self.registry),
            registry_model=NAME,
            executor=executor if executor is not None else InlineExecutor(),
            poll_log_seconds=300.0,
            clock=clock or (lambda: self.now),
        )

    def count(self, result: str) -> float | None:
        return self.registry.get_sample_value("fraudstream_model_swaps_total", {"result": result})

    def counts(self) -> dict[str, float | None]:
        return {result: self.count(result) for result in SWAP_RESULTS}

    def failure_reasons(self) -> dict[str, float]:
        """The non-zero ``fraudstream_model_load_failures_total`` counts, by reason."""
        counts = {
            reason: self.registry.get_sample_value(
                "fraudstream_model_load_failures_total", {"reason": reason}
            )
            for reason in FAILURE_REASONS
        }
        assert None not in counts.values(), "every reason is exported from the start"
        return {reason: count for reason, count in counts.items() if count}


def update(version: str, uri: str | Path) -> ModelUpdate:
    return ModelUpdate(
        model_name=NAME,
        model_version=version,
        model_uri=str(uri),
        promoted_at=datetime(2025, 6, 1, tzinfo=UTC),
    )


def no_swaps() -> dict[str, float]:
    return dict.fromkeys(SWAP_RESULTS, 0.0)


# ---------------------------------------------------------------------------------------------
# The handover


def test_a_good_update_is_handed_over_exactly_once(
    bundles: dict[str, ModelBundle], tmp_path: Path
) -> None:
    rig = Rig(bundles["serving"])
    rig.swapper.request(update("2", saved(bundles["good"], tmp_path / "v2")))

    swapped = rig.swapper.take_ready()
    assert swapped is not None
    assert (swapped.metadata.name, swapped.metadata.version) == (NAME, "2")
    canary = synthetic_canary()
    assert np.array_equal(swapped.predict(canary), bundles["good"].predict(canary))
    assert rig.swapper.take_ready() is None
    assert rig.swapper.serving_version == (NAME, "2")
    assert rig.counts() == {**no_swaps(), "success": 1.0}
    assert rig.registry.get_sample_value("fraudstream_model_load_seconds_count") == 1.0


def test_nothing_is_ready_before_any_update(bundles: dict[str, ModelBundle]) -> None:
    rig = Rig(bundles["serving"])
    assert rig.swapper.take_ready() is None
    assert rig.counts() == no_swaps()


def _corrupt_model(folder: Path) -> None:
    (folder / "model.ubj").write_bytes(b"{this is not a booster")


def _drop_metadata(folder: Path) -> None:
    (folder / "metadata.json").unlink()


def _add_pickle(folder: Path) -> None:
    (folder / "model.pkl").write_bytes(b"\x80\x04\x95\x00")  # a pickle header, never loaded


def _pickle_named_json(folder: Path) -> None:
    (folder / "extra.json").write_bytes(b"\x80\x04\x95\x00")


def _keep(folder: Path) -> None:
    return None


@pytest.mark.parametrize(
    ("bundle", "damage", "result", "why", "detail"),
    [
        ("good", _corrupt_model, "load_failed", "corrupt_artifact", "cannot load model"),
        ("good", _drop_metadata, "load_failed", "corrupt_artifact", "metadata.json"),
        ("good", _add_pickle, "unsafe", "unsafe_artifact", "refusing model.pkl"),
        ("good", _pickle_named_json, "unsafe", "unsafe_artifact", "extra.json: it is a pickle"),
        (
            "other_features",
            _keep,
            "invalid",
            "feature_mismatch",
            "unexpected=['merchant_chargeback_rate_90d']",
        ),
        ("reordered_features", _keep, "invalid", "feature_mismatch", "different order"),
        ("constant_scores", _keep, "invalid", "bad_scores", "ignores its input"),
        ("scores_outside_unit_interval", _keep, "invalid", "bad_scores", "outside [0, 1]"),
    ],
)
def test_a_bad_version_keeps_the_old_model_and_is_counted(
    bundles: dict[str, ModelBundle],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    bundle: str,
    damage: Callable[[Path], None],
    result: str,
    why: str,
    detail: str,
) -> None:
    folder = saved(bundles[bundle], tmp_path / "v2")
    damage(folder)
    rig = Rig(bundles["serving"])

    rig.swapper.request(update("2", folder))

    assert rig.swapper.take_ready() is None
    assert rig.swapper.serving_version == (NAME, "1")
    assert rig.counts() == {**no_swaps(), result: 1.0}
    assert rig.failure_reasons() == {why: 1.0}
    (line,) = [
        record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING
    ]
    assert "keeping the serving model" in line
    assert f"model={NAME} version=2 result={result} reason={why}" in line
    assert detail in line
    assert "serving_version=1" in line


def test_a_missing_folder_is_a_load_failure(
    bundles: dict[str, ModelBundle], tmp_path: Path
) -> None:
    rig = Rig(bundles["serving"])
    rig.swapper.request(update("2", tmp_path / "nowhere"))
    assert rig.swapper.take_ready() is None
    assert rig.counts() == {**no_swaps(), "load_failed": 1.0}


def test_metadata_for_another_version_is_refused(
    bundles: dict[str, ModelBundle], tmp_path: Path
) -> None:
    """The update says version 3 but the folder holds version 2: reporting it as 3 would lie."""
    rig = Rig(bundles["serving"])
    rig.swapper.request(update("3", saved(bundles["good"], tmp_path / "v2")))
    assert rig.swapper.take_ready() is None
    assert rig.counts() == {**no_swaps(), "invalid": 1.0}


def test_after_a_failure_a_good_version_still_swaps(
    bundles: dict[str, ModelBundle], tmp_path: Path
) -> None:
    rig = Rig(bundles["serving"])
    rig.swapper.request(update("2", saved(bundles["other_features"], tmp_path / "bad")))
    rig.swapper.request(update("3", saved(quantile_model("3", quantile=0.7), tmp_path / "v3")))
    swapped = rig.swapper.take_ready()
    assert swapped is not None and swapped.metadata.version == "3"
    assert rig.counts() == {**no_swaps(), "invalid": 1.0, "success": 1.0}


# ---------------------------------------------------------------------------------------------
# What is not loaded


def test_requesting_the_serving_version_is_a_no_op(bundles: dict[str, ModelBundle]) -> None:
    rig = Rig(bundles["serving"])
    rig.swapper.request(update("1", "models:/fraudstream-xgb/1"))
    assert rig.source.loads == []
    assert rig.swapper.take_ready() is None
    assert rig.counts() == no_swaps()


def test_a_staged_or_taken_version_is_not_loaded_again(
    bundles: dict[str, ModelBundle], tmp_path: Path
) -> None:
    rig = Rig(bundles["serving"])
    good = update("2", saved(bundles["good"], tmp_path / "v2"))
    rig.swapper.request(good)
    rig.swapper.request(good)  # staged, not yet taken
    assert rig.swapper.take_ready() is not None
    rig.swapper.request(good)  # now serving
    assert rig.source.loads == [good.model_uri]
    assert rig.swapper.take_ready() is None


def test_concurrent_duplicate_requests_load_once(
    bundles: dict[str, ModelBundle], tmp_path: Path
) -> None:
    gate = threading.Event()
    source = FakeRegistry(gate)
    with ThreadPoolExecutor(4) as executor:
        rig = Rig(bundles["serving"], source, executor)
        good = update("2", saved(bundles["good"], tmp_path / "v2"))
        callers = 8
        barrier = threading.Barrier(callers)

        def call() -> None:
            barrier.wait(WAIT_SECONDS)
            rig.swapper.request(good)

        threads = [threading.Thread(target=call) for _ in range(callers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT_SECONDS)
        assert rig.swapper.take_ready() is None  # still loading: the gate is closed
        gate.set()
        assert rig.swapper.wait_idle(WAIT_SECONDS)

    assert source.loads == [good.model_uri]
    assert rig.swapper.take_ready() is not None
    assert rig.swapper.take_ready() is None
    assert rig.counts() == {**no_swaps(), "success": 1.0}


def test_the_default_loader_runs_off_the_calling_thread(
    bundles: dict[str, ModelBundle], tmp_path: Path
) -> None:
    source = FakeRegistry()
    swapper = ModelSwapper(bundles["serving"], source, create_swap_metrics())
    try:
        swapper.request(update("2", saved(bundles["good"], tmp_path / "v2")))
        assert swapper.wait_idle(WAIT_SECONDS)
        swapped = swapper.take_ready()
    finally:
        swapper.close()
    assert swapped is not None and swapped.metadata.version == "2"
    assert len(source.load_threads) == 1
    assert source.load_threads[0].startswith("model-swap")


def test_a_request_after_close_is_dropped_quietly(bundles: dict[str, ModelBundle]) -> None:
    swapper = ModelSwapper(bundles["serving"], FakeRegistry(), create_swap_metrics())
    swapper.close()
    swapper.request(update("2", "models:/fraudstream-xgb/2"))
    assert swapper.wait_idle(WAIT_SECONDS)
    assert swapper.take_ready() is None


# ---------------------------------------------------------------------------------------------
# Registry polling


@pytest.fixture
def registry(bundles: dict[str, ModelBundle], tmp_path: Path) -> FakeRegistry:
    source = FakeRegistry()
    source.folders = {
        "1": saved(bundles["serving"], tmp_path / "v1"),
        "2": saved(bundles["good"], tmp_path / "v2"),
        "3": saved(quantile_model("3", names=(*FEATURE_NAMES[:-1], "renamed")), tmp_path / "v3"),
    }
    return source


def test_poll_loads_the_champion_once_it_moves(
    bundles: dict[str, ModelBundle], registry: FakeRegistry
) -> None:
    rig = Rig(bundles["serving"], registry)
    registry.champion = "1"
    rig.swapper.poll_registry()
    assert registry.loads == []

    registry.champion = "2"
    rig.swapper.poll_registry()
    swapped = rig.swapper.take_ready()
    assert swapped is not None and swapped.metadata.version == "2"
    assert registry.loads == ["models:/fraudstream-xgb/2"]
    rig.swapper.poll_registry()
    assert registry.loads == ["models:/fraudstream-xgb/2"]
    assert rig.counts() == {**no_swaps(), "success": 1.0}


def _swap_lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno == level]


def test_an_unreachable_registry_keeps_the_model_counts_every_poll_and_logs_sparingly(
    bundles: dict[str, ModelBundle], registry: FakeRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    rig = Rig(bundles["serving"], registry)
    for second in range(0, 299, 10):  # champion None: the fake raises ConnectionError
        rig.now = float(second)
        rig.swapper.poll_registry()
    assert rig.swapper.take_ready() is None
    assert rig.counts() == {**no_swaps(), "load_failed": 30.0}
    assert rig.failure_reasons() == {"registry_error": 30.0}
    (first,) = _swap_lines(caplog, logging.WARNING)  # 30 failed polls, one line so far
    assert "version=@champion result=load_failed reason=registry_error" in first
    assert 'detail="ConnectionError: registry unreachable"' in first
    assert "serving_version=1 failed_polls=1 failed_since_last_line=1" in first

    rig.now = 300.0  # the interval has passed: the next failure is logged, with the tally
    rig.swapper.poll_registry()
    second_line = _swap_lines(caplog, logging.WARNING)[1]
    assert "failed_polls=31 failed_since_last_line=30" in second_line

    registry.champion = "1"  # the registry answers again: one line says so
    rig.swapper.poll_registry()
    assert "model registry answers again alias=champion failed_polls=31" in _swap_lines(
        caplog, logging.INFO
    )
    assert rig.swapper.serving_version == (NAME, "1")


def test_a_failure_streak_logs_first_then_at_most_once_per_interval() -> None:
    now = [0.0]
    streak = FailureStreak(interval=60.0, clock=lambda: now[0])
    reported = []
    for second in range(0, 200, 5):
        now[0] = float(second)
        reported.append((second, streak.failed()))
    assert [(second, count) for second, count in reported if count is not None] == [
        (0, 1),
        (60, 12),
        (120, 12),
        (180, 12),
    ]
    assert streak.succeeded() == 40
    assert streak.succeeded() == 0
    now[0] = 185.0
    assert streak.failed() == 1, "a new streak is logged at once"


def test_poll_does_not_retry_a_refused_version_but_a_request_does(
    bundles: dict[str, ModelBundle], registry: FakeRegistry
) -> None:
    rig = Rig(bundles["serving"], registry)
    registry.champion = "3"
    rig.swapper.poll_registry()
    rig.swapper.poll_registry()
    assert registry.loads == ["models:/fraudstream-xgb/3"]
    rig.swapper.request(update("3", "models:/fraudstream-xgb/3"))
    assert len(registry.loads) == 2
    assert rig.counts() == {**no_swaps(), "invalid": 2.0}


def test_overlapping_polls_resolve_the_alias_once(
    bundles: dict[str, ModelBundle], registry: FakeRegistry
) -> None:
    gate = threading.Event()
    registry.gate, registry.champion = gate, "1"
    with ThreadPoolExecutor(2) as executor:
        rig = Rig(bundles["serving"], registry, executor)
        rig.swapper.poll_registry()
        rig.swapper.poll_registry()  # the first is still waiting on the registry
        gate.set()
        assert rig.swapper.wait_idle(WAIT_SECONDS)
    assert registry.alias_calls == 1


def test_without_a_registry_model_polling_does_nothing(
    bundles: dict[str, ModelBundle], registry: FakeRegistry
) -> None:
    swapper = ModelSwapper(
        bundles["serving"], registry, create_swap_metrics(), executor=InlineExecutor()
    )
    swapper.poll_registry()
    assert registry.alias_calls == 0


# ---------------------------------------------------------------------------------------------
# Pure parts: canary checks and URIs


@pytest.mark.parametrize(
    ("scores", "problem"),
    [
        (np.array([0.1, 0.5, 0.9]), None),
        (np.array([0.0, 1.0, 1.0]), None),
        (np.array([0.2, 0.2, 0.2]), "all 0.2"),
        (np.array([0.1, np.nan, 0.9]), "not all finite"),
        (np.array([0.1, np.inf, 0.9]), "not all finite"),
        (np.array([-0.1, 0.5, 0.9]), "outside [0, 1]"),
        (np.array([0.1, 0.5, 1.5]), "outside [0, 1]"),
        (np.array([[0.1, 0.9], [0.5, 0.5], [0.9, 0.1]]), "shape (3, 2)"),
        (np.array([0.1, 0.9]), "shape (2,)"),
    ],
)
def test_canary_problem(scores: npt.NDArray[np.float64], problem: str | None) -> None:
    found = canary_problem(scores.astype(np.float32), rows=3)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_score_correlation() -> None:
    scores = np.array([0.1, 0.4, 0.2, 0.9], dtype=np.float32)
    assert score_correlation(scores, scores) == pytest.approx(1.0)
    assert score_correlation(scores, 1 - scores) == pytest.approx(-1.0)
    assert score_correlation(scores, np.full(4, 0.3, dtype=np.float32)) is None


def test_the_synthetic_canary_is_seeded_and_realistic() -> None:
    canary = synthetic_canary()
    assert canary.shape == (CANARY_ROWS, len(FEATURE_NAMES))
    assert canary.dtype == np.float32
    assert np.isfinite(canary).all()
    assert np.array_equal(canary, synthetic_canary())
    assert not np.array_equal(canary, synthetic_canary(seed=1))
    # Repeat customers: history features are populated, not just first-transaction defaults.
    assert (canary[:, FEATURE_NAMES.index("cust_txn_count_24h")] > 0).sum() > CANARY_ROWS // 2
    assert len(np.unique(canary[:, SIGNAL])) > CANARY_ROWS * 0.9


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("models:/fraudstream-xgb/12", RegistryRef("fraudstream-xgb", version="12")),
        ("models:/fraudstream-xgb@champion", RegistryRef("fraudstream-xgb", alias="champion")),
        ("models:/team/fraud@v2-candidate", RegistryRef("team/fraud", alias="v2-candidate")),
        ("/srv/models/champion", Path("/srv/models/champion")),
        ("relative/folder", Path("relative/folder")),
        ("file:///srv/models/a%20b", Path("/srv/models/a b")),
    ],
)
def test_parse_model_uri(uri: str, expected: RegistryRef | Path) -> None:
    assert parse_model_uri(uri) == expected


@pytest.mark.parametrize(
    "uri",
    [
        "models:/fraudstream-xgb",
        "models:/fraudstream-xgb/latest",
        "models:/@champion",
        "runs:/abc/model",
        "s3://bucket/model",
    ],
)
def test_unsupported_model_uris_are_refused(uri: str) -> None:
    with pytest.raises(ModelLoadError):
        parse_model_uri(uri)


def test_a_store_without_registry_refuses_registry_uris() -> None:
    with pytest.raises(ModelLoadError, match="no MLflow tracking URI"):
        ModelStore(None).load("models:/fraudstream-xgb/1")


# ---------------------------------------------------------------------------------------------
# Nothing is ever unpickled


class CreatesMarker:
    """A hostile pickle payload: unpickling it opens (so creates) ``marker``. A loader that ever
    unpickles a model file leaves the marker behind; one that never does, cannot."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def hostile_pickle(marker: Path, protocol: int) -> bytes:
    return pickle.dumps(CreatesMarker(marker), protocol=protocol)


def test_the_hostile_payload_is_live(tmp_path: Path) -> None:
    """The control: the payload the tests below plant really runs when unpickled."""
    marker = tmp_path / "unpickled"
    pickle.loads(hostile_pickle(marker, protocol=4)).close()  # noqa: S301  # our own payload
    assert marker.exists()


# Where a hostile pickle can sit in a model folder: beside the bundle, or in place of either file
# (protocols 0 and 1 do not start with the 0x80 magic byte, so only the native loaders stop them).
PLACEMENTS = ("model.pkl", "model.ubj", "metadata.json", "nested/python_model.pkl")


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
@pytest.mark.parametrize("placement", PLACEMENTS)
def test_a_folder_holding_a_pickle_is_refused_and_never_unpickled(
    bundles: dict[str, ModelBundle], tmp_path: Path, placement: str, protocol: int
) -> None:
    folder = saved(bundles["good"], tmp_path / "model")
    marker = tmp_path / "unpickled"
    (folder / placement).parent.mkdir(parents=True, exist_ok=True)
    (folder / placement).write_bytes(hostile_pickle(marker, protocol))

    with pytest.raises(ModelLoadError):
        ModelStore(None).load(str(folder))
    rig = Rig(bundles["serving"])
    rig.swapper.request(update("2", folder))

    assert rig.swapper.take_ready() is None
    assert not marker.exists(), "a model file was unpickled"


def _mlflow_sklearn_flavor(folder: Path, payload: bytes) -> Path:
    """The layout ``mlflow.sklearn.save_model`` writes: an MLmodel file and a pickled model."""
    folder.mkdir(parents=True)
    (folder / "MLmodel").write_text(
        "flavors:\n"
        "  python_function:\n"
        "    loader_module: mlflow.sklearn\n"
        "    model_path: model.pkl\n"
        f"    python_version: {platform.python_version()}\n"
        "  sklearn:\n"
        "    pickled_model: model.pkl\n"
        "    serialization_format: cloudpickle\n"
    )
    (folder / "model.pkl").write_bytes(payload)
    return folder


def _load_with_mlflow(folder: Path) -> object:
    with warnings.catch_warnings():  # importing mlflow.pyfunc warns about its own type hints
        warnings.simplefilter("ignore")
        import mlflow.pyfunc
    return mlflow.pyfunc.load_model(str(folder))


def test_using_the_model_store_switches_mlflow_pickle_loading_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.exceptions import MlflowException

    marker = tmp_path / "unpickled"
    flavor = _mlflow_sklearn_flavor(tmp_path / "sklearn", hostile_pickle(marker, protocol=4))
    # An operator (or a library default: MLflow 3 defaults to true) allows pickles...
    monkeypatch.setenv(MLFLOW_PICKLE_SWITCH, "true")
    # ...and the first registry use switches them off, before any model is loaded.
    ModelStore("http://127.0.0.1:9").client()

    assert os.environ[MLFLOW_PICKLE_SWITCH] == "false"
    with pytest.raises(MlflowException, match=MLFLOW_PICKLE_SWITCH):
        _load_with_mlflow(flavor)
    assert not marker.exists(), "MLflow unpickled the model"
    with pytest.raises(UnsafeArtifactError):
        load_folder(flavor)
    assert not marker.exists()

    # The control: with the switch on, the same folder does run the payload.
    monkeypatch.setenv(MLFLOW_PICKLE_SWITCH, "true")
    _load_with_mlflow(flavor)
    assert marker.exists()
