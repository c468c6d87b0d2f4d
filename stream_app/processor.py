"""The worker's pure core: one batch of raw records in, verdicts and dead letters out.

No Kafka client and no event loop here, so the Faust agent, the plain-Kafka baseline benchmark
and the tests all drive the same code. Per-entity state is a :class:`stream_app.state.EntityState`,
whose customer store is a Faust table's in the worker and a plain dict in tests.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import numpy as np
import numpy.typing as npt

from stream_app import features
from stream_app.metrics import WorkerMetrics, observe_many
from stream_app.model import ModelBundle
from stream_app.rules import RuleSet, evaluate
from stream_app.schemas import DeadLetter, Label, Reason, Transaction, Verdict
from stream_app.scoring import Thresholds, top_reasons
from stream_app.state import ChangelogRecord, EntityState, remember_transaction
from stream_app.validation import RawRecord, Rejection, dead_letter, parse_transactions
from stream_app.verdicts import VerdictRow


@dataclass(frozen=True)
class BatchResult:
    verdicts: list[VerdictRow]
    dead_letters: list[DeadLetter]
    state_changes: list[ChangelogRecord] = field(default_factory=list)


class MerchantVolumeFeed(Protocol):
    """Merchant volume counted from every partition (the worker's
    :class:`~stream_app.worker.merchant_volume_reader.MerchantVolumeReader`)."""

    def wait_until(self, as_of_us: int, timeout_seconds: float) -> bool: ...

    def drain(self) -> list[tuple[str | None, int]]: ...


def duplicate_rejection(transaction: Transaction) -> Rejection:
    return Rejection(
        "duplicate_transaction_id",
        f"customer {transaction.customer_id!r} already had transaction "
        f"{transaction.transaction_id!r}",
    )


class BatchScorer:
    """Validates, featurises and scores batches with the model it currently holds."""

    def __init__(
        self,
        model: ModelBundle,
        thresholds: Thresholds,
        metrics: WorkerMetrics,
        state: EntityState | None = None,
        rules: RuleSet | None = None,
        shadow: ModelBundle | None = None,
    ) -> None:
        self.model = model
        self.thresholds = thresholds
        self.metrics = metrics
        self.state = state if state is not None else EntityState()
        self.state.on_unreadable = metrics.unreadable_states.inc
        self.rules = rules if rules is not None else RuleSet()  # replaced between batches
        self.shadow = shadow
        # None: merchant volume counts the scored transactions themselves (tests, benchmarks,
        # one worker on every partition); set by the worker to count every partition's.
        self.volume: MerchantVolumeFeed | None = None
        self.volume_wait_seconds = 5.0
        # Per partition scored: the newest event time scored. The partitions of one worker can
        # be days apart in a replay, so volume is kept back to the laggard's window.
        self._scored_until: dict[int, int] = {}
        metrics.model_info.labels(model.metadata.name, model.metadata.version).set(1)

    def swap_model(self, model: ModelBundle, thresholds: Thresholds) -> None:
        """Serve ``model`` from the next batch on (call between batches only)."""
        old = self.model.metadata
        self.metrics.model_info.labels(old.name, old.version).set(0)
        self.model, self.thresholds = model, thresholds
        self.metrics.model_info.labels(model.metadata.name, model.metadata.version).set(1)

    def apply_labels(self, labels: Sequence[Label]) -> None:
        """Fold matured ground truth into merchant risk; labels name their merchant."""
        for label in labels:
            if label.merchant_id is None:
                self.metrics.labels_rejected.labels("no_merchant_id").inc()
                continue
            features.observe_label(self.state.merchant(label.merchant_id), label)
            self.metrics.labels_applied.inc()

    def apply_volume(self) -> None:
        """Count the transactions the all-partitions reader has read towards merchant volume."""
        if self.volume is not None:
            merchant = self.state.merchant
            scored = self._scored_until
            keep_after = min(scored.values()) - features.VOLUME_KEPT_US if scored else None
            for merchant_id, t_us in self.volume.drain():
                state = merchant(merchant_id)
                features.count_merchant_volume(state, t_us)
                if keep_after is not None:
                    features.expire_merchant_volume(state, keep_after)

    def _note_scored(self, times: list[int], sources: list[RawRecord]) -> None:
        scored = self._scored_until
        for t_us, source in zip(times, sources, strict=True):
            if t_us > scored.get(source.partition, t_us - 1):
                scored[source.partition] = t_us

    def score_batch(self, records: Sequence[RawRecord]) -> BatchResult:
        started = time.perf_counter()
        received_at = datetime.now(UTC)
        transactions, sources, dead_letters = self._validate(records, received_at)
        if self.volume is not None and transactions:
            # Every partition read past the batch's latest as-of time, then counted: each
            # transaction's merchant volume (as of t - L) is complete, whatever the batch order.
            times = [features.to_micros(transaction.timestamp) for transaction in transactions]
            self.volume.wait_until(max(times) - features.VOLUME_LAG_US, self.volume_wait_seconds)
            self.apply_volume()
            self._note_scored(times, sources)
        verdicts = self._score(transactions, sources) if transactions else []
        self._count(len(records), verdicts, dead_letters, time.perf_counter() - started)
        return BatchResult(verdicts, dead_letters, self.state.take_changes())

    def _validate(
        self, records: Sequence[RawRecord], now: datetime
    ) -> tuple[list[Transaction], list[RawRecord], list[DeadLetter]]:
        """The batch's transactions (and their records) to score, and a dead letter for every
        other record. A new message with an id its customer already had is not scored again. A
        record replayed after a crash (at or below the offset last folded into the customer's
        state) is no new message: it is scored again, as at-least-once delivery requires."""
        transactions: list[Transaction] = []
        sources: list[RawRecord] = []
        dead_letters: list[DeadLetter] = []
        # ids accepted earlier in this batch: folded into the state only by _featurise, later
        accepted: set[tuple[str, str]] = set()
        # One loop, the duplicate check inline with bound methods: a method call per message
        # was a tenth of this stage (bench/bench_validation.py).
        already_observed, is_duplicate = self.state.already_observed, self.state.is_duplicate
        outcomes = parse_transactions([record.value for record in records], now)
        for record, outcome in zip(records, outcomes, strict=True):
            if isinstance(outcome, Rejection):
                dead_letters.append(dead_letter(record, outcome, now))
                continue
            customer_id = outcome.customer_id
            if not already_observed(customer_id, record.offset):
                key = (customer_id, outcome.transaction_id)
                if key in accepted or is_duplicate(*key):
                    dead_letters.append(dead_letter(record, duplicate_rejection(outcome), now))
                    continue
                accepted.add(key)
            transactions.append(outcome)
            sources.append(record)
        return transactions, sources, dead_letters

    def _featurise(
        self, transactions: list[Transaction], sources: list[RawRecord]
    ) -> npt.NDArray[np.float32]:
        # Sequential on purpose: a customer seen twice in one batch must see its first
        # transaction in the features of the second, exactly as the offline features do. The
        # bookkeeping (which rows fold into the state, the changelog) is done in one pass here,
        # the features and state updates in one call over the batch.
        state = self.state
        customers, merchants, observe = [], [], []
        for transaction, source in zip(transactions, sources, strict=True):
            customer_id = transaction.customer_id
            customer = state.customer(customer_id)
            customers.append(customer)
            merchants.append(state.merchant(transaction.merchant_id))
            folds = not state.already_observed(customer_id, source.offset)
            observe.append(folds)
            if folds:
                # No feature reads the remembered ids, so remembering before featurising is safe.
                remember_transaction(customer, transaction.transaction_id)
                state.record_change(customer_id, source.partition, source.offset)
        return features.online_features_batch(
            transactions, customers, merchants, observe, count_volume=self.volume is None
        )

    def predict(self, transaction: Transaction) -> Verdict | Rejection:
        """Score one transaction for ``POST /predict``: the same features and model as the
        stream, from the customer's current state, which the request leaves unchanged (the
        transaction is not known to have happened, and if it also arrives on the topic it
        must not be counted twice). An id the customer already had is refused, as on the
        stream."""
        (answer,) = self.predict_many([transaction])
        return answer

    def predict_many(self, transactions: Sequence[Transaction]) -> list[Verdict | Rejection]:
        """:meth:`predict` for several requests at once, with one booster call for all of them
        (for one row the call's own overhead was most of a request's cost). Each answer is the
        one :meth:`predict` gives alone: rows are featurised from their own state and a
        booster's prediction for a row does not depend on the other rows."""
        requested_ms = time.time() * 1000
        answers: list[Verdict | Rejection | None] = []
        scored: list[Transaction] = []
        rows: list[npt.NDArray[np.float32]] = []
        for transaction in transactions:
            if self.state.is_duplicate(transaction.customer_id, transaction.transaction_id):
                answers.append(duplicate_rejection(transaction))
                continue
            customer = self.state.peek_customer(transaction.customer_id)
            merchant_key = features.merchant_key(transaction.merchant_id)
            merchant = self.state.merchants.get(merchant_key, features.MerchantState())
            rows.append(features.online_features(transaction, customer, merchant))
            scored.append(transaction)
            answers.append(None)
        if scored:
            verdicts = iter(self._verdicts(scored, np.vstack(rows), [requested_ms] * len(scored)))
            answers = [next(verdicts).to_model() if a is None else a for a in answers]
        return [answer for answer in answers if answer is not None]

    def _score(self, transactions: list[Transaction], sources: list[RawRecord]) -> list[VerdictRow]:
        now_ms = time.time() * 1000
        produced_ms = [now_ms if s.timestamp_ms is None else s.timestamp_ms for s in sources]
        return self._verdicts(transactions, self._featurise(transactions, sources), produced_ms)

    def _verdicts(
        self,
        transactions: list[Transaction],
        matrix: npt.NDArray[np.float32],
        produced_ms: list[float],
    ) -> list[VerdictRow]:
        scores = self.model.predict(matrix)
        ruled = evaluate(self.rules, transactions, matrix, scores, self.thresholds)
        decisions = ruled.model_decisions
        flagged = [index for index, decision in enumerate(decisions) if decision != "approve"]
        reasons: dict[int, tuple[Reason, ...]] = dict(
            zip(flagged, top_reasons(self.model, matrix[flagged]), strict=True)
        )
        scored_at = datetime.now(UTC)
        scored_ms = scored_at.timestamp() * 1000
        rows = len(transactions)
        # Column by column, then one VerdictRow per row from the columns: no per-row Python
        # beyond the row's own construction. np.clip and np.maximum give the values min/max
        # gave (the same float64 arithmetic; float32 scores widen exactly in tolist).
        model_reasons = [
            (rule_reasons + reasons[index]) if index in reasons else rule_reasons
            for index, rule_reasons in enumerate(ruled.reasons)
        ]
        if self.shadow is not None:
            shadow_scores: list[float | None] = np.clip(self.shadow.predict(matrix), 0, 1).tolist()
            shadow_version: str | None = self.shadow.metadata.version
        else:
            shadow_scores, shadow_version = [None] * rows, None
        latencies = np.maximum(scored_ms - np.asarray(produced_ms, dtype=np.float64), 0.0)
        # A plain row, not a pydantic Verdict: stream_app.verdicts writes the model's bytes.
        return list(
            map(
                VerdictRow,
                [transaction.transaction_id for transaction in transactions],
                [transaction.customer_id for transaction in transactions],
                np.clip(scores, 0, 1).tolist(),
                ruled.decisions,
                [self.model.metadata.name] * rows,
                [self.model.metadata.version] * rows,
                model_reasons,
                [transaction.timestamp for transaction in transactions],
                [scored_at] * rows,
                latencies.tolist(),
                # Python floats of the exact float32 values, as features.feature_vector_to_dict
                # gives them, in one call for the matrix.
                matrix.tolist(),
                shadow_scores,
                [shadow_version] * rows,
                [self.rules.version] * rows,
                ruled.shadow_hits,
            )
        )

    def _count(
        self,
        batch_size: int,
        verdicts: list[VerdictRow],
        dead_letters: list[DeadLetter],
        elapsed_seconds: float,
    ) -> None:
        metrics = self.metrics
        metrics.batch_size.observe(batch_size)
        metrics.scoring_latency.observe(elapsed_seconds)
        metrics.scored.inc(len(verdicts))
        # One metric update per label value and histogram per batch, not per verdict.
        for decision, count in Counter(verdict.decision for verdict in verdicts).items():
            metrics.decisions.labels(decision).inc(count)
        observe_many(metrics.scores, [verdict.score for verdict in verdicts])
        latencies = [verdict.latency_ms / 1000 for verdict in verdicts]
        observe_many(metrics.end_to_end_latency, latencies)
        for reason, count in Counter(letter.reason for letter in dead_letters).items():
            metrics.dead_letters.labels(reason).inc(count)
