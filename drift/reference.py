"""The reference sample windows are compared with: the serving model's, or a local file.

Training logs with every run a sample of validation rows (features + score) at
``reference/reference.parquet``, and the model's thresholds in ``model/metadata.json``. The
monitor follows the model that scored each window: a window's verdicts name their model
version, and the reference comes from that version's run (cached per version), so after a
promotion windows are compared with the new champion's sample, not the old one. A version the
registry does not know (a worker serving a local model folder) falls back to the champion.

Without MLflow, ``--reference FILE`` (or ``FRAUDSTREAM_DRIFT__REFERENCE_PATH``) gives a fixed
sample for every window.

``mlflow`` is imported inside the functions that need it: it costs seconds and the file-only
monitor never needs it.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from drift.windows import DECISION_COLUMN
from stream_app import model_store
from stream_app.model import METADATA_FILE, ModelMetadata

log = logging.getLogger(__name__)

# Where training.registry logs them (REFERENCE_ARTIFACT, MODEL_ARTIFACT_PATH); drift may not
# import training, so the paths are repeated here and a unit test keeps them equal.
REFERENCE_ARTIFACT = "reference/reference.parquet"
METADATA_ARTIFACT = f"model/{METADATA_FILE}"
MIN_REFERENCE_ROWS = 100


class ReferenceLoadError(RuntimeError):
    """No usable reference sample: the monitor cannot check anything without one."""


@dataclass(frozen=True)
class Reference:
    frame: pd.DataFrame
    review_threshold: float | None
    source: str  # a path or models:/<name>/<version>, for logs
    model_version: str | None = None


def validated(frame: pd.DataFrame, columns: Sequence[str], source: str) -> pd.DataFrame:
    """The needed columns as float32, or a ReferenceLoadError that says what is wrong."""
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        raise ReferenceLoadError(f"reference {source} lacks columns {missing}")
    if len(frame) < MIN_REFERENCE_ROWS:
        raise ReferenceLoadError(
            f"reference {source} has {len(frame)} rows (< {MIN_REFERENCE_ROWS})"
        )
    has_decisions = DECISION_COLUMN in frame.columns
    kept = [*columns, DECISION_COLUMN] if has_decisions else list(columns)
    return frame[kept].astype(dict.fromkeys(columns, "float32")).reset_index(drop=True)


def load_reference_file(
    path: Path, columns: Sequence[str], review_threshold: float | None = None
) -> Reference:
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as error:
        raise ReferenceLoadError(f"cannot read reference {path}: {error}") from error
    return Reference(validated(frame, columns, str(path)), review_threshold, str(path))


def _download(client: Any, run_id: str, artifact: str, folder: str) -> Path:
    import mlflow.artifacts

    local = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path=artifact, dst_path=folder, tracking_uri=client.tracking_uri
    )
    return Path(local)


def load_run_reference(
    client: Any, model_name: str, version: str, columns: Sequence[str]
) -> Reference:
    """A registered version's sample and review threshold, from the run that produced it."""
    source = f"models:/{model_name}/{version} {REFERENCE_ARTIFACT}"
    with tempfile.TemporaryDirectory() as folder:
        try:
            run_id = str(client.get_model_version(model_name, version).run_id)
            frame = pd.read_parquet(_download(client, run_id, REFERENCE_ARTIFACT, folder))
            metadata = _download(client, run_id, METADATA_ARTIFACT, folder).read_text()
        except Exception as error:  # MLflow raises several unrelated types for "not there"
            raise ReferenceLoadError(f"cannot load {source}: {error}") from error
    threshold = ModelMetadata.model_validate_json(metadata).review_threshold
    return Reference(validated(frame, columns, source), threshold, source, version)


class ReferenceSource(Protocol):
    def for_version(self, model_version: str) -> Reference:
        """The reference for windows scored by ``model_version``."""

    def default(self) -> Reference:
        """The reference when no version is known (a one-off check): the champion's."""


@dataclass
class FixedReference:
    """One sample for every window (a local file: the no-MLflow case)."""

    reference: Reference

    def for_version(self, model_version: str) -> Reference:
        return self.reference

    def default(self) -> Reference:
        return self.reference


class RegistryReferences:
    """The reference of the model version that scored a window, cached per version."""

    def __init__(
        self,
        client: Any,
        model_name: str,
        champion_alias: str,
        columns: Sequence[str],
        review_override: float | None = None,
    ) -> None:
        self.client = client
        self.model_name = model_name
        self.champion_alias = champion_alias
        self.columns = tuple(columns)
        self.review_override = review_override
        self._cache: dict[str, Reference] = {}

    def champion(self) -> Reference:
        return self.for_version(self._champion_version())

    def default(self) -> Reference:
        return self.champion()

    def _champion_version(self) -> str:
        try:
            return model_store.alias_version(self.client, self.model_name, self.champion_alias)
        except Exception as error:  # unreachable server, unknown model or alias: all fatal here
            ref = f"models:/{self.model_name}@{self.champion_alias}"
            raise ReferenceLoadError(f"cannot resolve {ref}: {error}") from error

    def for_version(self, model_version: str) -> Reference:
        if model_version not in self._cache:
            self._cache[model_version] = self._load_or_champion(model_version)
        return self._cache[model_version]

    def _load_or_champion(self, model_version: str) -> Reference:
        try:
            reference = self._load(model_version)
        except ReferenceLoadError as error:
            champion = self._champion_version()
            if champion == model_version:
                raise
            log.warning(
                "version=%s has no reference (%s): using the champion's", model_version, error
            )
            return self.for_version(champion)
        return reference

    def _load(self, model_version: str) -> Reference:
        reference = load_run_reference(self.client, self.model_name, model_version, self.columns)
        log.info("reference version=%s rows=%d", model_version, len(reference.frame))
        if self.review_override is None:
            return reference
        return Reference(reference.frame, self.review_override, reference.source, model_version)
