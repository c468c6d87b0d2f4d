"""A scoring model as the worker holds it: an XGBoost booster plus the metadata it was trained with.

On disk a bundle is a folder with ``model.ubj`` (XGBoost's native binary format, never pickle) and
``metadata.json``. The same two files are logged as MLflow artifacts, so a bundle can be loaded
from a local folder or from a downloaded registry version alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import xgboost as xgb
from pydantic import BaseModel, Field, model_validator

MODEL_FILE = "model.ubj"
METADATA_FILE = "metadata.json"


class ModelMetadata(BaseModel):
    """What the worker must know to use a booster: its inputs, its name and where to cut scores."""

    name: str
    version: str
    feature_names: tuple[str, ...]
    review_threshold: float = Field(ge=0, le=1)
    block_threshold: float = Field(ge=0, le=1)
    trained_at: str | None = None
    metrics: dict[str, float] = {}

    @model_validator(mode="after")
    def _ordered_bands(self) -> ModelMetadata:
        if self.review_threshold > self.block_threshold:
            raise ValueError("review_threshold must not exceed block_threshold")
        return self


class ModelLoadError(RuntimeError):
    """A model folder is missing, unreadable or inconsistent; the caller keeps its old model."""


@dataclass(frozen=True)
class ModelBundle:
    booster: xgb.Booster
    metadata: ModelMetadata

    def predict(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Fraud probability per row; rows are ordered as ``metadata.feature_names``."""
        scores = self.booster.inplace_predict(features, validate_features=False)
        return np.asarray(scores, dtype=np.float32)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(folder / MODEL_FILE)
        (folder / METADATA_FILE).write_text(self.metadata.model_dump_json(indent=2))


def load_bundle(folder: Path, nthread: int = 1) -> ModelBundle:
    """Load a bundle written by :meth:`ModelBundle.save`, checking that its parts agree."""
    model_path, metadata_path = folder / MODEL_FILE, folder / METADATA_FILE
    try:
        metadata = ModelMetadata.model_validate(json.loads(metadata_path.read_text()))
        booster = xgb.Booster(params={"nthread": nthread}, model_file=str(model_path))
    except (OSError, ValueError, xgb.core.XGBoostError) as exc:
        raise ModelLoadError(f"cannot load model from {folder}: {exc}") from exc
    if booster.num_features() != len(metadata.feature_names):
        raise ModelLoadError(
            f"booster expects {booster.num_features()} features, "
            f"metadata lists {len(metadata.feature_names)}"
        )
    return ModelBundle(booster=booster, metadata=metadata)
