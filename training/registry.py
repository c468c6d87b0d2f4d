"""MLflow tracking and registry: log a trained bundle, register it, gate it, load the champion.

What a run holds (all plain files, no pickle anywhere):
- ``model/model.ubj`` + ``model/metadata.json``: the bundle in XGBoost's native format, the
  registered version's source; ``metadata.json`` carries the feature list, thresholds, metrics
  and the registry version number;
- ``evaluation/``: metrics, thresholds, feature list, ROC and PR curves as JSON and PNG;
- ``reference/reference.parquet``: validation features + scores, the drift checks' reference.

Promotion: every run registers a new version. It takes the ``champion`` alias only if its
average precision on the test holdout beats the current champion's on the same rows by more than
``PromotionPolicy.margin`` (default 0.0, i.e. strictly better; a tie keeps the incumbent, which
avoids churn). Otherwise it takes ``challenger``. Every alias move is recorded twice: version tags
``<alias>_from`` / ``<alias>_until`` (ISO-8601 UTC) and a JSON list under the registered model's
``alias_history`` tag, so "which version was champion at time t" has an answer.

Loading (``load_version``, ``load_champion``) and the no-pickle file check live in
:mod:`stream_app.model_store`, because the worker loads models too and must not import training;
they are re-exported here under their old names.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from mlflow.entities import Metric, Param

from stream_app import model_store
from stream_app.model import ModelBundle
from training.dataset import Split, Splits
from training.evaluate import average_precision, pr_curve_points, roc_curve_points
from training.train import predict

logger = logging.getLogger(__name__)

# Loading moved to stream_app.model_store (the worker loads models and must not import training);
# these names keep training's API as it was.
MODEL_SUFFIXES = model_store.MODEL_SUFFIXES
PICKLE_MAGIC = model_store.PICKLE_MAGIC
UnsafeArtifactError = model_store.UnsafeArtifactError
check_safe_files = model_store.check_safe_files
client_for = model_store.client_for
load_version = model_store.load_version
load_champion = model_store.load_champion

MODEL_ARTIFACT_PATH = "model"
REFERENCE_ARTIFACT = "reference/reference.parquet"
REFERENCE_ROWS = 5_000
HISTORY_TAG = "alias_history"
HISTORY_LIMIT = 500  # moves kept in the tag; about 100 bytes each, far below MLflow's tag limit
# What a run may contain besides the model folder's .ubj/.json; never a pickle.
RUN_SUFFIXES = MODEL_SUFFIXES | {".parquet", ".png"}


@dataclass(frozen=True)
class PromotionPolicy:
    metric: str = "average_precision"
    margin: float = 0.0
    champion_alias: str = "champion"
    challenger_alias: str = "challenger"


@dataclass(frozen=True)
class PublishResult:
    run_id: str
    version: str
    promoted: bool
    candidate_score: float
    champion_version: str | None
    champion_score: float | None


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


# ---------------------------------------------------------------------------------------------
# Files written for a run


def reference_sample(
    split: Split, scores: np.ndarray[Any, Any], rows: int, seed: int
) -> pd.DataFrame:
    """Up to ``rows`` validation rows (features + score), sampled with a seed, in time order."""
    frame = split.frame[list(split.feature_names)].assign(score=scores.astype(np.float32))
    if len(frame) > rows:
        frame = frame.sample(n=rows, random_state=seed).sort_index()
    return frame.reset_index(drop=True)


def _plot(path: Path, x: list[float], y: list[float], labels: tuple[str, str, str]) -> None:
    """A curve as PNG, through the object API so no global pyplot state or backend is touched."""
    figure = Figure(figsize=(5, 4))
    axes = figure.subplots()
    axes.plot(x, y)
    axes.set(xlabel=labels[0], ylabel=labels[1], title=labels[2], xlim=(0, 1), ylim=(0, 1.02))
    axes.grid(alpha=0.3)
    figure.savefig(path, dpi=100)


def write_evaluation(folder: Path, bundle: ModelBundle, test: Split) -> None:
    """Metrics, thresholds, feature list and test-split curves, as JSON and PNG."""
    folder.mkdir(parents=True, exist_ok=True)
    metadata = bundle.metadata
    scores, target = predict(bundle.booster, test), test.target()
    roc, pr = roc_curve_points(target, scores), pr_curve_points(target, scores)
    documents: dict[str, Any] = {
        "metrics.json": metadata.metrics,
        "thresholds.json": {
            "review": metadata.review_threshold,
            "block": metadata.block_threshold,
        },
        "feature_names.json": list(metadata.feature_names),
        "roc_curve.json": roc,
        "pr_curve.json": pr,
    }
    for name, document in documents.items():
        (folder / name).write_text(json.dumps(document, indent=2))
    _plot(folder / "roc_curve.png", roc["fpr"], roc["tpr"], ("FPR", "TPR", "ROC (test)"))
    _plot(folder / "pr_curve.png", pr["recall"], pr["precision"], ("recall", "precision", "PR"))


def write_documents(folder: Path, documents: dict[str, Any]) -> None:
    for name, document in documents.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=2))


def write_run_files(folder: Path, bundle: ModelBundle, splits: Splits, seed: int) -> None:
    """Everything but the model: evaluation and the drift reference sample."""
    write_evaluation(folder / "evaluation", bundle, splits.test)
    reference = reference_sample(
        splits.validation, predict(bundle.booster, splits.validation), REFERENCE_ROWS, seed
    )
    (folder / REFERENCE_ARTIFACT).parent.mkdir(parents=True, exist_ok=True)
    reference.to_parquet(folder / REFERENCE_ARTIFACT, index=False)


# ---------------------------------------------------------------------------------------------
# Tracking


def ensure_experiment(client: Any, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    return str(experiment.experiment_id if experiment else client.create_experiment(name))


def _params(bundle: ModelBundle, splits: Splits, params: dict[str, Any]) -> list[Any]:
    windows = {
        f"{split.name}_{key}": value
        for split in splits.all()
        for key, value in (
            ("start", split.start.isoformat()),
            ("end", split.end.isoformat()),
            ("rows", split.rows),
        )
    }
    merged = {
        **params,
        **windows,
        "feature_count": len(bundle.metadata.feature_names),
        "review_threshold": bundle.metadata.review_threshold,
        "block_threshold": bundle.metadata.block_threshold,
    }
    return [Param(key, str(value)) for key, value in sorted(merged.items())]


def _metrics(values: dict[str, float], timestamp_ms: int) -> list[Any]:
    return [Metric(key, float(value), timestamp_ms, 0) for key, value in sorted(values.items())]


def log_run(
    client: Any,
    run_id: str,
    *,
    bundle: ModelBundle,
    splits: Splits,
    params: dict[str, Any],
    seed: int,
    documents: dict[str, Any] | None = None,
) -> None:
    """Params, metrics, evaluation files and the drift reference sample, into an open run.

    ``documents`` are extra JSON artifacts by their path in the run (``tuning/trials.json``).
    """
    stamp = int(datetime.now(UTC).timestamp() * 1000)
    client.log_batch(
        run_id,
        metrics=_metrics(bundle.metadata.metrics, stamp),
        params=_params(bundle, splits, params),
    )
    with tempfile.TemporaryDirectory() as tmp:
        write_run_files(Path(tmp), bundle, splits, seed)
        write_documents(Path(tmp), documents or {})
        check_safe_files(Path(tmp), RUN_SUFFIXES)
        client.log_artifacts(run_id, tmp)
    logger.info("logged run_id=%s", run_id)


# ---------------------------------------------------------------------------------------------
# Registry


def register_version(client: Any, name: str, run_id: str, bundle: ModelBundle) -> ModelBundle:
    """Register the run's ``model/`` folder as a new version, then upload the bundle into it.

    The version number is only known once registered, and ``metadata.json`` should carry it, so
    the files go up after registration; if the upload fails the empty version is deleted.
    """
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        client.create_registered_model(name)
    artifact_uri = client.get_run(run_id).info.artifact_uri
    version = client.create_model_version(
        name, source=f"{artifact_uri}/{MODEL_ARTIFACT_PATH}", run_id=run_id
    )
    numbered = ModelBundle(
        booster=bundle.booster,
        metadata=bundle.metadata.model_copy(update={"name": name, "version": str(version.version)}),
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            numbered.save(Path(tmp))
            check_safe_files(Path(tmp), MODEL_SUFFIXES)
            client.log_artifacts(run_id, tmp, MODEL_ARTIFACT_PATH)
    except Exception:
        client.delete_model_version(name, version.version)
        raise
    logger.info("registered model=%s version=%s run_id=%s", name, version.version, run_id)
    return numbered


def aliases(client: Any, name: str) -> dict[str, str]:
    model = client.get_registered_model(name)
    return {str(alias): str(version) for alias, version in model.aliases.items()}


# ---------------------------------------------------------------------------------------------
# Promotion


@dataclass(frozen=True)
class AliasMove:
    alias: str
    version: str
    previous: str | None
    at: str
    reason: str


def alias_history(client: Any, name: str) -> list[AliasMove]:
    raw = client.get_registered_model(name).tags.get(HISTORY_TAG, "[]")
    return [AliasMove(**move) for move in json.loads(raw)]


def version_with_alias_at(history: list[AliasMove], alias: str, when: datetime) -> str | None:
    """Which version held ``alias`` at ``when`` (None before the first move)."""
    holder = None
    for move in history:
        if move.alias == alias and datetime.fromisoformat(move.at) <= when:
            holder = move.version
    return holder


def move_alias(client: Any, name: str, alias: str, version: str, reason: str) -> None:
    """Point ``alias`` at ``version`` and record the move in tags (no-op if already there)."""
    previous = aliases(client, name).get(alias)
    if previous == version:
        return
    at = now_iso()
    if previous is not None:
        client.set_model_version_tag(name, previous, f"{alias}_until", at)
    client.set_registered_model_alias(name, alias, version)
    client.set_model_version_tag(name, version, f"{alias}_from", at)
    history = [*alias_history(client, name), AliasMove(alias, version, previous, at, reason)]
    moves = json.dumps([asdict(move) for move in history[-HISTORY_LIMIT:]])
    client.set_registered_model_tag(name, HISTORY_TAG, moves)
    logger.info("alias=%s model=%s version=%s previous=%s", alias, name, version, previous)


def holdout_score(bundle: ModelBundle, holdout: Split) -> float | None:
    """Average precision of ``bundle`` on the holdout; None if it needs columns we lack."""
    missing = set(bundle.metadata.feature_names) - set(holdout.frame.columns)
    if missing:
        logger.warning("champion needs features the holdout lacks: %s", sorted(missing))
        return None
    rows = holdout.frame[list(bundle.metadata.feature_names)].to_numpy(dtype=np.float32)
    return average_precision(holdout.target(), bundle.predict(rows))


def _champion_score(
    client: Any, name: str, holdout: Split, policy: PromotionPolicy
) -> tuple[str | None, float | None]:
    version = aliases(client, name).get(policy.champion_alias)
    if version is None:
        return None, None
    return version, holdout_score(load_version(client, name, version), holdout)


def promotion_reason(candidate: float, champion: float | None, margin: float) -> str | None:
    """Why the candidate should become champion, or None if it should not."""
    if champion is None:
        return "no comparable champion"
    if candidate > champion + margin:
        return f"average_precision {candidate:.6f} > champion {champion:.6f} + margin {margin}"
    return None


def gate(
    client: Any, name: str, candidate: ModelBundle, holdout: Split, policy: PromotionPolicy
) -> PublishResult:
    """Champion if better than the incumbent by more than the margin, challenger otherwise."""
    version = candidate.metadata.version
    candidate_score = holdout_score(candidate, holdout)
    if candidate_score is None:
        raise ValueError("the candidate cannot score its own holdout")
    champion_version, champion_score = _champion_score(client, name, holdout, policy)
    reason = promotion_reason(candidate_score, champion_score, policy.margin)
    promoted = reason is not None
    if reason is not None:
        move_alias(client, name, policy.champion_alias, version, reason)
    else:
        reason = f"average_precision {candidate_score:.6f} not above champion {champion_score}"
        move_alias(client, name, policy.challenger_alias, version, reason)
    tags = {
        "holdout_average_precision": candidate_score,
        "champion_version_at_gate": champion_version,
        "champion_holdout_average_precision": champion_score,
        "gate_decision": reason,
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, "" if value is None else str(value))
    return PublishResult("", version, promoted, candidate_score, champion_version, champion_score)


def publish(
    client: Any,
    *,
    experiment: str,
    name: str,
    bundle: ModelBundle,
    splits: Splits,
    params: dict[str, Any],
    policy: PromotionPolicy | None = None,
    seed: int = 0,
    documents: dict[str, Any] | None = None,
) -> PublishResult:
    """Log the run, register a version, and gate it against the champion on the test split.

    The run ends FINISHED only if all of it worked; otherwise FAILED, and the error propagates.
    """
    experiment_id = ensure_experiment(client, experiment)
    run = client.create_run(experiment_id, tags={"mlflow.source.name": "fraudstream-train"})
    run_id = str(run.info.run_id)
    try:
        log_run(
            client,
            run_id,
            bundle=bundle,
            splits=splits,
            params=params,
            seed=seed,
            documents=documents,
        )
        registered = register_version(client, name, run_id, bundle)
        result = gate(client, name, registered, splits.test, policy or PromotionPolicy())
    except Exception:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return replace(result, run_id=run_id)
