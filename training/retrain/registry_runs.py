"""MLflow: training with the request id on the run, and finding a run from before a crash.

Step 2 of :mod:`training.retrain` (a FINISHED run with this request id means a previous attempt
trained and gated, then died before writing the ledger) reads back what step 4 writes here.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from stream_app.schemas import RetrainRequest
from training.dataset import dataset_splits
from training.registry import PublishResult, aliases
from training.retrain.handler import DatasetNotReady, PreviousRun
from training.retrain.job import TrainingJob, train_and_publish

REQUEST_PARAM = "retrain_request_id"


class RegistryTrainer:
    """Dataset, train, publish; the request's id and window are logged as run parameters."""

    def __init__(self, client: Any, job: TrainingJob) -> None:
        self.client = client
        self.job = job

    def __call__(
        self,
        request: RetrainRequest,
        transactions: pd.DataFrame,
        labels: pd.DataFrame,
        as_of: pd.Timestamp,
    ) -> PublishResult:
        try:
            splits = dataset_splits(transactions, labels, as_of, self.job.plan)
        except ValueError as error:
            raise DatasetNotReady(str(error)) from error
        params = {
            REQUEST_PARAM: request.request_id,
            "retrain_window_start": request.window_start.isoformat(),
            "retrain_window_end": request.window_end.isoformat(),
        }
        return train_and_publish(self.client, self.job, splits, as_of, params).result


def _filter_literal(text: str) -> str | None:
    """MLflow filter strings have no escapes: quote with a character the text does not hold."""
    for mark in ("'", '"'):
        if mark not in text:
            return f"{mark}{text}{mark}"
    return None


def finished_run_id(client: Any, experiment: str, request_id: str) -> str | None:
    found = client.get_experiment_by_name(experiment)
    literal = _filter_literal(request_id)
    if found is None or literal is None:
        return None
    runs = client.search_runs(
        [found.experiment_id],
        filter_string=f"params.{REQUEST_PARAM} = {literal} and attributes.status = 'FINISHED'",
        max_results=1,
    )
    return str(runs[0].info.run_id) if runs else None


def _tag_number(tags: dict[str, str], key: str) -> float | None:
    value = tags.get(key)
    return float(value) if value else None


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else value


def registered_result(client: Any, name: str, alias: str, run_id: str) -> PublishResult | None:
    """The gate's result for a run's version, as the registry has it; ``promoted`` means the
    version holds the alias now (so announcing it again is right, and harmless)."""
    versions = [v for v in client.search_model_versions(f"run_id = '{run_id}'") if v.name == name]
    if not versions:
        return None
    version, tags = str(versions[0].version), dict(versions[0].tags)
    return PublishResult(
        run_id=run_id,
        version=version,
        promoted=aliases(client, name).get(alias) == version,
        candidate_score=_or_nan(_tag_number(tags, "holdout_average_precision")),
        champion_version=tags.get("champion_version_at_gate") or None,
        champion_score=_tag_number(tags, "champion_holdout_average_precision"),
    )


def previous_run_finder(client: Any, job: TrainingJob) -> PreviousRun:
    def find(request_id: str) -> PublishResult | None:
        run_id = finished_run_id(client, job.experiment, request_id)
        if run_id is None:
            return None
        return registered_result(client, job.model_name, job.policy.champion_alias, run_id)

    return find
