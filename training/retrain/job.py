"""The retraining job: everything that decides how a model is trained and gated, and the run.

``fraudstream-train train`` runs :func:`train_and_publish` once by hand; the retrain consumer
runs it per request with the request's id on the run. One function, so both train alike.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from stream_app.model import ModelBundle
from stream_app.settings import Settings
from training.dataset import SplitPlan, Splits
from training.evaluate import CostModel
from training.registry import PromotionPolicy, PublishResult, publish
from training.train import TrainConfig, train_model

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingJob:
    """Everything that decides how a model is trained and gated, from flags or settings."""

    experiment: str
    model_name: str
    plan: SplitPlan
    config: TrainConfig
    policy: PromotionPolicy
    costs: CostModel = field(default_factory=CostModel)

    @classmethod
    def from_settings(cls, settings: Settings) -> TrainingJob:
        training = settings.training
        return cls(
            experiment=settings.mlflow.experiment,
            model_name=settings.mlflow.model_name,
            plan=SplitPlan(
                validation_days=training.validation_days,
                test_days=training.test_days,
                gap_days=training.gap_days,
            ),
            config=TrainConfig(
                seed=training.seed,
                nthread=training.nthread,
                num_boost_round=training.num_boost_round,
            ),
            policy=PromotionPolicy(
                margin=training.promotion_margin, champion_alias=settings.mlflow.champion_alias
            ),
        )


@dataclass(frozen=True)
class TrainedRun:
    bundle: ModelBundle
    result: PublishResult


def _quiet(step: str) -> None:
    logger.info("step=%s", step)


def train_and_publish(
    client: Any,
    job: TrainingJob,
    splits: Splits,
    as_of: pd.Timestamp,
    extra_params: dict[str, Any] | None = None,
    step: Callable[[str], None] = _quiet,
) -> TrainedRun:
    """Train on ``splits``, log and register the run, and gate it against the champion."""
    step("training")
    bundle = train_model(splits, config=job.config, costs=job.costs, name=job.model_name)
    step("logging the run, registering the version, gating it against the champion")
    params = {
        **job.config.as_params(),
        "as_of": as_of.isoformat(),
        "margin": job.policy.margin,
        **(extra_params or {}),
    }
    result = publish(
        client,
        experiment=job.experiment,
        name=job.model_name,
        bundle=bundle,
        splits=splits,
        params=params,
        policy=job.policy,
        seed=job.config.seed,
    )
    return TrainedRun(bundle, result)
