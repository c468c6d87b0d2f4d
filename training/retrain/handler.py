"""Handling one request: ledger, previous run, readiness, training, announcing, recording.

:class:`RetrainHandler` is steps 1-6 of :mod:`training.retrain` with every dependency injected
(a ledger, a lake, a trainer, an announcer, a clock), so its decisions are tested without Kafka,
MLflow or a store; :func:`matured_fraud_labels` is the readiness rule.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd

from stream_app.model_store import registry_uri
from stream_app.schemas import ModelUpdate, RetrainRequest
from training.dataset import TARGET, known_labels
from training.registry import PublishResult
from training.retrain.ledger import Ledger, RequestOutcome

logger = logging.getLogger(__name__)


def matured_fraud_labels(
    transactions: pd.DataFrame, labels: pd.DataFrame, since: pd.Timestamp, as_of: pd.Timestamp
) -> int:
    """Fraud labels known at ``as_of`` of transactions stamped in ``[since, as_of]``."""
    stamps = pd.to_datetime(transactions["timestamp"], utc=True)
    recent = transactions.loc[(stamps >= since) & (stamps <= as_of), "transaction_id"]
    known = known_labels(labels, as_of)
    return int((known[TARGET] & known["transaction_id"].isin(recent)).sum())


@dataclass(frozen=True)
class Handled:
    outcome: RequestOutcome
    duplicate: bool = False


@dataclass(frozen=True)
class NotReady:
    reason: str


class DatasetNotReady(Exception):
    """The lake cannot give a retrain what it needs yet; later it may."""


Lake = Callable[[pd.Timestamp], tuple[pd.DataFrame, pd.DataFrame]]
Trainer = Callable[[RetrainRequest, pd.DataFrame, pd.DataFrame, pd.Timestamp], PublishResult]
PreviousRun = Callable[[str], PublishResult | None]
Announcer = Callable[[ModelUpdate], None]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


def model_update(result: PublishResult, name: str, alias: str, now: datetime) -> ModelUpdate:
    return ModelUpdate(
        model_name=name,
        model_version=result.version,
        alias=alias,
        model_uri=registry_uri(name, result.version),
        promoted_at=now,
        run_id=result.run_id or None,
    )


@dataclass
class RetrainHandler:
    """Steps 1-6 of :mod:`training.retrain` for one request; every dependency is injected."""

    ledger: Ledger
    previous_run: PreviousRun
    lake: Lake
    trainer: Trainer
    announce: Announcer
    model_name: str
    champion_alias: str
    min_fraud_labels: int
    clock: Callable[[], datetime] = _utc_now

    def handle(self, request: RetrainRequest) -> Handled | NotReady:
        done = self.ledger.get(request.request_id)
        if done is not None:
            logger.info("retrain request=%s already handled: skipped", request.request_id)
            return Handled(done, duplicate=True)
        previous = self.previous_run(request.request_id)
        if previous is not None:
            logger.info("retrain request=%s found run_id=%s", request.request_id, previous.run_id)
            return self._finish(request, previous, fraud_labels=None, recovered=True)
        try:
            return self._train_when_ready(request, pd.Timestamp(self.clock()))
        except DatasetNotReady as reason:
            return NotReady(str(reason))

    def _train_when_ready(self, request: RetrainRequest, as_of: pd.Timestamp) -> Handled:
        try:
            transactions, labels = self.lake(as_of)
        except ValueError as error:  # no partitions in the window yet
            raise DatasetNotReady(str(error)) from error
        since = pd.Timestamp(request.window_start)
        frauds = matured_fraud_labels(transactions, labels, since, as_of)
        if frauds < self.min_fraud_labels:
            raise DatasetNotReady(
                f"{frauds} fraud labels for transactions since {since.isoformat()}, "
                f"{self.min_fraud_labels} needed"
            )
        result = self.trainer(request, transactions, labels, as_of)
        return self._finish(request, result, fraud_labels=frauds, recovered=False)

    def _finish(
        self,
        request: RetrainRequest,
        result: PublishResult,
        fraud_labels: int | None,
        recovered: bool,
    ) -> Handled:
        if result.promoted:
            self.announce(model_update(result, self.model_name, self.champion_alias, self.clock()))
        outcome = RequestOutcome(
            request_id=request.request_id,
            handled_at=self.clock(),
            run_id=result.run_id,
            model_name=self.model_name,
            model_version=result.version,
            promoted=result.promoted,
            candidate_score=_finite(result.candidate_score),
            champion_version=result.champion_version,
            champion_score=_finite(result.champion_score),
            fraud_labels=fraud_labels,
            model_update_sent=result.promoted,
            recovered=recovered,
        )
        self.ledger.record(outcome)
        logger.info(
            "retrain request=%s version=%s promoted=%s recovered=%s",
            request.request_id,
            result.version,
            result.promoted,
            recovered,
        )
        return Handled(outcome)
