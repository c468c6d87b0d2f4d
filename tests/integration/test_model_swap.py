"""Hot model swap against a real ``mlflow server`` (no Kafka): alias polling, ``models:/`` URIs
from model updates, a pickle in a registered version, and an unreachable registry."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from stream_app.model import ModelBundle
from stream_app.model_store import ModelStore, client_for, load_champion
from stream_app.schemas import ModelUpdate
from stream_app.worker.model_checks import synthetic_canary
from stream_app.worker.model_swap import SWAP_RESULTS, ModelSwapper, create_swap_metrics
from tests.factories import quantile_model
from tests.integration.mlflow_server import MlflowServer, running_mlflow_server
from tests.processes import free_port
from training.registry import ensure_experiment, move_alias, register_version

NAME = "fraudstream-swap"
WAIT_SECONDS = 60.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    with running_mlflow_server(tmp_path_factory.mktemp("mlflow")) as running:
        yield running


@pytest.fixture(scope="module")
def published(server: MlflowServer) -> dict[str, ModelBundle]:
    """Versions 1 and 2 of NAME, registered as training registers them; champion is 1."""
    client = client_for(server.tracking_uri)
    experiment = ensure_experiment(client, "swap-test")
    versions = {}
    for quantile in (0.5, 0.8):
        run_id = client.create_run(experiment).info.run_id
        registered = register_version(client, NAME, run_id, quantile_model("0", quantile=quantile))
        client.set_terminated(run_id, "FINISHED")
        versions[registered.metadata.version] = registered
    assert sorted(versions) == ["1", "2"]
    move_alias(client, NAME, "champion", "1", "first model")
    return versions


class Rig:
    def __init__(self, serving: ModelBundle, tracking_uri: str) -> None:
        self.registry = CollectorRegistry()
        self.swapper = ModelSwapper(
            serving,
            ModelStore(tracking_uri),
            create_swap_metrics(self.registry),
            registry_model=NAME,
        )

    def settle(self) -> ModelBundle | None:
        """Wait for the loader thread, then do what the agent does at the next batch."""
        assert self.swapper.wait_idle(WAIT_SECONDS)
        return self.swapper.take_ready()

    def counts(self) -> dict[str, float | None]:
        return {
            result: self.registry.get_sample_value(
                "fraudstream_model_swaps_total", {"result": result}
            )
            for result in SWAP_RESULTS
        }


@pytest.fixture
def rig(server: MlflowServer, published: dict[str, ModelBundle]) -> Iterator[Rig]:
    """A swapper serving the registry's version 1, with the champion alias back on 1."""
    move_alias(client_for(server.tracking_uri), NAME, "champion", "1", "test reset")
    rig = Rig(load_champion(server.tracking_uri, NAME), server.tracking_uri)
    yield rig
    rig.swapper.close()


def update(version: str, uri: str) -> ModelUpdate:
    return ModelUpdate(
        model_name=NAME, model_version=version, model_uri=uri, promoted_at=datetime.now(UTC)
    )


def counts(**moved: float) -> dict[str, float]:
    return {**dict.fromkeys(SWAP_RESULTS, 0.0), **moved}


def assert_same_model(bundle: ModelBundle | None, expected: ModelBundle) -> None:
    assert bundle is not None
    assert bundle.metadata == expected.metadata
    canary = synthetic_canary()
    assert np.array_equal(bundle.predict(canary), expected.predict(canary))
    generic = json.loads(bundle.booster.save_config())["learner"]["generic_param"]
    assert generic["nthread"] == "1"


def test_poll_follows_the_champion_alias(
    server: MlflowServer, published: dict[str, ModelBundle], rig: Rig
) -> None:
    rig.swapper.poll_registry()
    assert rig.settle() is None  # champion is the serving version

    move_alias(client_for(server.tracking_uri), NAME, "champion", "2", "retrained")
    rig.swapper.poll_registry()
    assert_same_model(rig.settle(), published["2"])
    assert rig.swapper.serving_version == (NAME, "2")
    rig.swapper.poll_registry()
    assert rig.settle() is None
    assert rig.counts() == counts(success=1)


def test_model_update_uris_load(
    server: MlflowServer, published: dict[str, ModelBundle], rig: Rig
) -> None:
    rig.swapper.request(update("2", f"models:/{NAME}/2"))
    assert_same_model(rig.settle(), published["2"])

    rig.swapper.request(update("1", f"models:/{NAME}@champion"))  # a rollback, by alias
    assert_same_model(rig.settle(), published["1"])
    assert rig.counts() == counts(success=2)


def test_a_registered_pickle_is_refused(server: MlflowServer, rig: Rig) -> None:
    client = client_for(server.tracking_uri)
    run_id = client.create_run(ensure_experiment(client, "swap-pickle")).info.run_id
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "model.pkl").write_bytes(b"\x80\x04\x95\x00")  # a pickle header, not loaded
        client.log_artifacts(run_id, tmp, "model")
    source = f"{client.get_run(run_id).info.artifact_uri}/model"
    version = str(client.create_model_version(NAME, source=source, run_id=run_id).version)

    rig.swapper.request(update(version, f"models:/{NAME}/{version}"))
    assert rig.settle() is None
    assert rig.swapper.serving_version == (NAME, "1")
    assert rig.counts() == counts(unsafe=1)


def test_an_unreachable_registry_keeps_the_model(
    published: dict[str, ModelBundle], monkeypatch: pytest.MonkeyPatch
) -> None:
    # MLflow's own client settings: without them it retries for minutes before giving up.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    rig = Rig(published["1"], f"http://127.0.0.1:{free_port()}")
    try:
        rig.swapper.poll_registry()
        assert rig.settle() is None
        rig.swapper.request(update("2", f"models:/{NAME}/2"))
        assert rig.settle() is None
    finally:
        rig.swapper.close()
    assert rig.swapper.serving_version == (NAME, "1")
    assert rig.counts() == counts(load_failed=2)
