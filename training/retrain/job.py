"""The retraining job: everything that decides how a model is trained and gated, and the run.

``fraudstream-train train`` runs :func:`train_and_publish` once by hand; the retrain consumer
runs it per request with the request's id on the run. One function, so both train alike.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import pandas as pd

from stream_app.model import ModelBundle
from stream_app.settings import Settings
from training.dataset import Split, SplitPlan, Splits
from training.evaluate import CostModel
from training.registry import PromotionPolicy, PublishResult, publish
from training.train import TrainConfig, train_model
from training.tuning import TuneConfig, TuningResult, tune_on_training_days

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
    # A hyper-parameter search on the train split's last days first (training.tuning); None: off.
    tune: TuneConfig | None = None

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


TRIALS_ARTIFACT = "tuning/trials.json"


def search_train_split(config: TrainConfig, tune: TuneConfig, train: Split) -> TuningResult:
    """The search on the train split alone: validation and test splits are never handed to it
    (they stop the boosting, pick the thresholds and gate the model).

    Its trials train on the split's first days and are scored on its last ``validation_days``,
    ``delay_days`` apart (``train`` sets them to the plan's ``gap_days``). The targets are the
    split's own, those known at its cut-off: the gap stands in for the labels that would not
    have arrived by the scored days' start, as it does between the splits themselves.
    """
    period = (train.start, train.end)
    return tune_on_training_days(train.frame, train.feature_names, period, config, tune)


def tuning_params(tune: TuneConfig, result: TuningResult) -> dict[str, Any]:
    """Run parameters: the chosen values as ``tuned.<name>``, and how the search ran."""
    return {
        **{f"tuned.{name}": value for name, value in result.chosen.items()},
        **{f"tuning.{name}": value for name, value in asdict(tune).items()},
        "tuning.best_average_precision": result.best_average_precision,
        "tuning.validation_start": result.validation_start,
    }


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
    """Tune if the job says so, train on ``splits``, log and register the run, gate it."""
    documents: dict[str, Any] = {}
    if job.tune is not None:
        step(f"tuning: {job.tune.trials} trials on the train split's last days")
        tuning = search_train_split(job.config, job.tune, splits.train)
        extra_params = {**tuning_params(job.tune, tuning), **(extra_params or {})}
        documents[TRIALS_ARTIFACT] = tuning.to_json()
        job = replace(job, config=tuning.chosen_config(job.config))
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
        documents=documents,
    )
    return TrainedRun(bundle, result)
