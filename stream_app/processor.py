"""The worker's pure core: one batch of raw records in, verdicts and dead letters out.

No Kafka client and no event loop here, so the Faust agent, the plain-Kafka baseline benchmark
and the tests all drive the same code. Per-entity state sits behind :class:`EntityState`, so the
in-memory store used here can be replaced by changelog-backed tables without touching scoring.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from stream_app import features
from stream_app.metrics import WorkerMetrics
from stream_app.model import ModelBundle
from stream_app.schemas import DeadLetter, Reason, Transaction, Verdict
from stream_app.scoring import Thresholds, decide, top_reasons
from stream_app.validation import RawRecord, Rejection, dead_letter, parse_transaction


@dataclass
class EntityState:
    """Per-customer and per-merchant feature state, in memory."""

    customers: dict[str, features.CustomerState] = field(default_factory=dict)
    merchants: dict[str, features.MerchantState] = field(default_factory=dict)

    def customer(self, customer_id: str) -> features.CustomerState:
        state = self.customers.get(customer_id)
        if state is None:
            state = self.customers[customer_id] = features.CustomerState()
        return state

    def merchant(self, merchant_id: str | None) -> features.MerchantState:
        key = features.merchant_key(merchant_id)
        state = self.merchants.get(key)
        if state is None:
            state = self.merchants[key] = features.MerchantState()
        return state


@dataclass(frozen=True)
class BatchResult:
    verdicts: list[Verdict]
    dead_letters: list[DeadLetter]


class BatchScorer:
    """Validates, featurises and scores batches with the model it currently holds."""

    def __init__(
        self,
        model: ModelBundle,
        thresholds: Thresholds,
        metrics: WorkerMetrics,
        state: EntityState | None = None,
    ) -> None:
        self.model = model
        self.thresholds = thresholds
        self.metrics = metrics
        self.state = state if state is not None else EntityState()
        metrics.model_info.labels(model.metadata.name, model.metadata.version).set(1)

    def score_batch(self, records: Sequence[RawRecord]) -> BatchResult:
        started = time.perf_counter()
        received_at = datetime.now(UTC)
        transactions, sources, dead_letters = self._validate(records, received_at)
        verdicts = self._score(transactions, sources) if transactions else []
        self._count(len(records), verdicts, dead_letters, time.perf_counter() - started)
        return BatchResult(verdicts=verdicts, dead_letters=dead_letters)

    def _validate(
        self, records: Sequence[RawRecord], now: datetime
    ) -> tuple[list[Transaction], list[RawRecord], list[DeadLetter]]:
        transactions: list[Transaction] = []
        sources: list[RawRecord] = []
        dead_letters: list[DeadLetter] = []
        for record in records:
            parsed = parse_transaction(record.value, now)
            if isinstance(parsed, Rejection):
                dead_letters.append(dead_letter(record, parsed, now))
            else:
                transactions.append(parsed)
                sources.append(record)
        return transactions, sources, dead_letters

    def _featurise(self, transactions: list[Transaction]) -> npt.NDArray[np.float32]:
        # Sequential on purpose: a customer seen twice in one batch must see its first
        # transaction in the features of the second, exactly as the offline features do.
        rows = np.empty((len(transactions), len(features.FEATURE_NAMES)), dtype=np.float32)
        for index, transaction in enumerate(transactions):
            customer = self.state.customer(transaction.customer_id)
            merchant = self.state.merchant(transaction.merchant_id)
            rows[index] = features.online_features(transaction, customer, merchant)
            features.observe_transaction(customer, merchant, transaction)
        return rows

    def predict(self, transaction: Transaction) -> Verdict:
        """Score one transaction for ``POST /predict``: the same features and model as the
        stream, from the customer's current state, which the request leaves unchanged (the
        transaction is not known to have happened, and if it also arrives on the topic it
        must not be counted twice)."""
        requested_ms = time.time() * 1000
        customer = self.state.customers.get(transaction.customer_id, features.CustomerState())
        merchant_key = features.merchant_key(transaction.merchant_id)
        merchant = self.state.merchants.get(merchant_key, features.MerchantState())
        row = features.online_features(transaction, customer, merchant)
        (verdict,) = self._verdicts([transaction], row.reshape(1, -1), [requested_ms])
        return verdict

    def _score(self, transactions: list[Transaction], sources: list[RawRecord]) -> list[Verdict]:
        now_ms = time.time() * 1000
        produced_ms = [now_ms if s.timestamp_ms is None else s.timestamp_ms for s in sources]
        return self._verdicts(transactions, self._featurise(transactions), produced_ms)

    def _verdicts(
        self,
        transactions: list[Transaction],
        matrix: npt.NDArray[np.float32],
        produced_ms: list[float],
    ) -> list[Verdict]:
        scores = self.model.predict(matrix)
        decisions = decide(scores, self.thresholds)
        flagged = [index for index, decision in enumerate(decisions) if decision != "approve"]
        reasons: dict[int, tuple[Reason, ...]] = dict(
            zip(flagged, top_reasons(self.model, matrix[flagged]), strict=True)
        )
        scored_at = datetime.now(UTC)
        latency_ms = [max(scored_at.timestamp() * 1000 - ms, 0.0) for ms in produced_ms]
        return [
            Verdict(
                transaction_id=transaction.transaction_id,
                customer_id=transaction.customer_id,
                score=min(max(float(score), 0.0), 1.0),
                decision=decision,
                model_name=self.model.metadata.name,
                model_version=self.model.metadata.version,
                reasons=reasons.get(index, ()),
                event_time=transaction.timestamp,
                scored_at=scored_at,
                latency_ms=latency,
                features=features.feature_vector_to_dict(row),
            )
            for index, (transaction, score, decision, row, latency) in enumerate(
                zip(transactions, scores, decisions, matrix, latency_ms, strict=True)
            )
        ]

    def _count(
        self,
        batch_size: int,
        verdicts: list[Verdict],
        dead_letters: list[DeadLetter],
        elapsed_seconds: float,
    ) -> None:
        metrics = self.metrics
        metrics.batch_size.observe(batch_size)
        metrics.scoring_latency.observe(elapsed_seconds)
        metrics.scored.inc(len(verdicts))
        for verdict in verdicts:
            metrics.decisions.labels(verdict.decision).inc()
            metrics.scores.observe(verdict.score)
            metrics.end_to_end_latency.observe(verdict.latency_ms / 1000)
        for letter in dead_letters:
            metrics.dead_letters.labels(letter.reason).inc()
