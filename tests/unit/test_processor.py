"""The pure batch core: every record becomes one verdict or one dead letter, counted exactly."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import get_args

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry

from stream_app.features import FEATURE_NAMES, offline_features
from stream_app.metrics import create_worker_metrics
from stream_app.model import ModelBundle
from stream_app.processor import BatchScorer
from stream_app.schemas import DeadLetter, Transaction, Verdict
from stream_app.scoring import Thresholds
from stream_app.state import EntityState
from stream_app.validation import DeadLetterReason, RawRecord, Rejection
from stream_app.verdicts import VerdictRow
from tests.factories import amount_model, simulated_transactions, transaction
from tests.malformed_corpus import corpus
from tests.malformed_generator import collect_templates, render_stream

AMOUNT_INDEX = FEATURE_NAMES.index("amount")


def record(offset: int, value: bytes, key: bytes = b"c1") -> RawRecord:
    return RawRecord("transactions", offset % 3, offset, key, value, timestamp_ms=None)


@pytest.fixture
def scorer() -> BatchScorer:
    metrics = create_worker_metrics(CollectorRegistry())
    return BatchScorer(amount_model(), Thresholds(review=0.5, block=0.9), metrics)


def sample(scorer: BatchScorer, name: str, labels: dict[str, str] | None = None) -> float:
    value = scorer.metrics.registry.get_sample_value(name, labels or {})
    return 0.0 if value is None else value


def test_each_record_yields_exactly_one_output(scorer: BatchScorer) -> None:
    records = [
        record(0, transaction("t0", "c1", 20.0)),
        record(1, b"{not json"),
        record(2, transaction("t2", "c2", 1900.0)),
        record(3, b"\xff"),
        record(4, transaction("t4", "c1", 25.0, minutes=5)),
    ]
    result = scorer.score_batch(records)
    assert [v.transaction_id for v in result.verdicts] == ["t0", "t2", "t4"]
    assert [(d.offset, d.reason) for d in result.dead_letters] == [
        (1, "invalid_json"),
        (3, "invalid_encoding"),
    ]
    assert sample(scorer, "fraudstream_transactions_scored_total") == 3
    assert sample(scorer, "fraudstream_dead_letters_total", {"reason": "invalid_json"}) == 1
    assert sample(scorer, "fraudstream_dead_letters_total", {"reason": "invalid_encoding"}) == 1


def test_high_amount_is_blocked_with_amount_as_reason(scorer: BatchScorer) -> None:
    result = scorer.score_batch([record(0, transaction("big", "c9", 1900.0))])
    (verdict,) = result.verdicts
    assert verdict.decision == "block"
    assert verdict.reasons[0].code == "amount"
    assert verdict.model_name == "amount"
    assert verdict.model_version == "7"
    assert sample(scorer, "fraudstream_decisions_total", {"decision": "block"}) == 1


def test_approved_verdicts_carry_no_reasons(scorer: BatchScorer) -> None:
    (verdict,) = scorer.score_batch([record(0, transaction("small", "c8", 10.0))]).verdicts
    assert verdict.decision == "approve"
    assert verdict.reasons == ()


def test_second_transaction_of_a_customer_in_one_batch_sees_the_first(scorer: BatchScorer) -> None:
    records = [
        record(0, transaction("a", "c5", 40.0)),
        record(1, transaction("b", "c5", 60.0, minutes=10)),
    ]
    first, second = scorer.score_batch(records).verdicts
    assert first.features is not None
    assert second.features is not None
    assert first.features["cust_txn_count_1h"] == 0
    assert second.features["cust_txn_count_1h"] == 1
    # state keeps amounts in whole US cents
    assert second.features["cust_amount_sum_1h"] == pytest.approx(
        first.features["amount_usd"], abs=0.005
    )


def test_shadow_model_is_recorded_but_never_decides() -> None:
    metrics = create_worker_metrics(CollectorRegistry())
    champion = amount_model()
    # The challenger's scores are recorded under its own version; decisions stay the champion's.
    eager_metadata = champion.metadata.model_copy(update={"version": "shadow-1"})
    eager = ModelBundle(booster=champion.booster, metadata=eager_metadata)
    scorer = BatchScorer(champion, Thresholds(review=0.5, block=0.9), metrics, shadow=eager)
    plain = BatchScorer(
        champion, Thresholds(review=0.5, block=0.9), create_worker_metrics(CollectorRegistry())
    )
    records = [record(0, transaction("s1", "c1", 15.0)), record(1, transaction("s2", "c2", 1900.0))]
    with_shadow = scorer.score_batch(records).verdicts
    without = plain.score_batch(records).verdicts
    assert [v.decision for v in with_shadow] == [v.decision for v in without]
    assert [v.shadow_model_version for v in with_shadow] == ["shadow-1", "shadow-1"]
    assert [v.shadow_score for v in with_shadow] == [v.score for v in without]
    assert all(v.shadow_score is None for v in without)


# --- duplicates and malformed input


def fresh_scorer(state: EntityState | None = None) -> BatchScorer:
    metrics = create_worker_metrics(CollectorRegistry())
    return BatchScorer(amount_model(), Thresholds(review=0.5, block=0.9), metrics, state)


def test_a_resent_transaction_is_dead_lettered_and_changes_nothing(scorer: BatchScorer) -> None:
    first = scorer.score_batch([record(0, transaction("t0", "c1", 20.0))])
    before = scorer.state.customer("c1").to_dict()
    again = scorer.score_batch([record(1, transaction("t0", "c1", 20.0))])
    assert [v.transaction_id for v in first.verdicts] == ["t0"]
    assert again.verdicts == []
    assert [(d.offset, d.reason) for d in again.dead_letters] == [(1, "duplicate_transaction_id")]
    assert again.state_changes == []
    assert scorer.state.customer("c1").to_dict() == before
    reason = {"reason": "duplicate_transaction_id"}
    assert sample(scorer, "fraudstream_dead_letters_total", reason) == 1
    assert sample(scorer, "fraudstream_transactions_scored_total") == 1


def test_a_copy_in_the_same_batch_is_a_duplicate_but_other_customers_ids_are_not(
    scorer: BatchScorer,
) -> None:
    result = scorer.score_batch(
        [
            record(0, transaction("t0", "c1", 20.0)),
            record(1, transaction("t0", "c1", 20.0)),
            record(2, transaction("t0", "c2", 20.0)),  # ids are unique per customer
        ]
    )
    assert [(v.customer_id, v.transaction_id) for v in result.verdicts] == [
        ("c1", "t0"),
        ("c2", "t0"),
    ]
    assert [(d.offset, d.reason) for d in result.dead_letters] == [(1, "duplicate_transaction_id")]


def test_a_replay_after_a_crash_is_scored_again_and_a_later_copy_is_not() -> None:
    records = [record(0, transaction("t0", "c1", 20.0)), record(1, transaction("t1", "c1", 30.0))]
    crashed = fresh_scorer()
    (change,) = crashed.score_batch(records).state_changes  # written, offsets not committed

    # the restarted worker recovers the changelog and is handed the same records again
    recovered = fresh_scorer(EntityState(customers={"c1": change.value}))
    replay = recovered.score_batch(records)
    assert [v.transaction_id for v in replay.verdicts] == ["t0", "t1"]
    assert replay.dead_letters == []
    assert replay.state_changes == []  # not counted into the state twice

    resent = recovered.score_batch([record(2, transaction("t0", "c1", 20.0))])
    assert resent.verdicts == []
    assert [d.reason for d in resent.dead_letters] == ["duplicate_transaction_id"]


def test_predict_refuses_an_id_the_customer_already_had(scorer: BatchScorer) -> None:
    seen = Transaction.model_validate_json(transaction("t0", "c1", 20.0))
    scorer.score_batch([record(0, seen.to_bytes())])
    refused = scorer.predict(seen)
    assert isinstance(refused, Rejection)
    assert refused.reason == "duplicate_transaction_id"
    fresh = Transaction.model_validate_json(transaction("t1", "c1", 20.0))
    assert isinstance(scorer.predict(fresh), Verdict)
    other = Transaction.model_validate_json(transaction("t0", "c-new", 20.0))
    assert isinstance(scorer.predict(other), Verdict)
    assert "c-new" not in scorer.state.customers


def corpus_records(now: datetime) -> tuple[list[RawRecord], dict[int, str]]:
    """The corpus as a partition's records (a duplicate's original first), and the reason
    expected at each bad offset."""
    records: list[RawRecord] = []
    expected: dict[int, str] = {}
    for case in corpus(now):
        if case.original is not None:
            records.append(RawRecord("transactions", 0, len(records), case.key, case.original))
        expected[len(records)] = case.reason
        records.append(RawRecord("transactions", 0, len(records), case.key, case.value))
    return records, expected


def test_every_corpus_case_is_dead_lettered_with_its_reason_and_counted(
    scorer: BatchScorer,
) -> None:
    records, expected = corpus_records(datetime.now(UTC))
    result = scorer.score_batch(records)
    assert {d.offset: d.reason for d in result.dead_letters} == expected
    assert len(result.dead_letters) == len(expected)
    assert len(result.verdicts) == len(records) - len(expected)
    for reason, count in Counter(expected.values()).items():
        assert sample(scorer, "fraudstream_dead_letters_total", {"reason": reason}) == count


def test_generated_bad_input_in_batches_yields_one_output_per_record(scorer: BatchScorer) -> None:
    cases = render_stream(collect_templates(1500), datetime.now(UTC), "unit")
    records = [RawRecord("transactions", 0, i, c.key, c.value) for i, c in enumerate(cases)]
    verdicts: list[VerdictRow] = []
    letters: list[DeadLetter] = []
    for first in range(0, len(records), 100):
        result = scorer.score_batch(records[first : first + 100])
        verdicts += result.verdicts
        letters += result.dead_letters
    assert {d.offset: d.reason for d in letters} == {
        i: c.reason for i, c in enumerate(cases) if c.reason is not None
    }
    assert [v.transaction_id for v in verdicts] == [c.transaction_id for c in cases if not c.reason]
    expected = Counter(c.reason for c in cases if c.reason is not None)
    assert set(expected) == set(get_args(DeadLetterReason)), "every reason generated"
    for reason, count in expected.items():
        assert sample(scorer, "fraudstream_dead_letters_total", {"reason": reason}) == count


def test_the_scorers_features_over_batches_equal_the_offline_features() -> None:
    """Exact parity through the batch core: simulated traffic (customers recurring within and
    across batches) scored batch by batch gives, row for row and bit for bit, the offline
    features of the same transactions."""
    transactions = simulated_transactions(1200)
    now = max(txn.timestamp for txn in transactions)
    shifted = [  # the simulator's clock is its own: move the history to just before now
        txn.model_copy(update={"timestamp": txn.timestamp - now + datetime.now(UTC)})
        for txn in transactions
    ]
    scorer = fresh_scorer()
    verdicts = []
    for start in range(0, len(shifted), 250):
        batch = [
            RawRecord("transactions", 0, start + i, None, txn.to_bytes())
            for i, txn in enumerate(shifted[start : start + 250])
        ]
        result = scorer.score_batch(batch)
        assert result.dead_letters == []
        verdicts += result.verdicts
    online = np.array([v.feature_values for v in verdicts], dtype=np.float32)

    frame = pd.DataFrame([txn.model_dump() for txn in shifted])
    offline = offline_features(frame).to_numpy()

    assert online.tobytes() == offline.tobytes()
    assert len({txn.customer_id for txn in shifted}) < len(shifted)  # customers do recur


def test_predicting_many_at_once_answers_each_as_it_would_be_answered_alone(
    scorer: BatchScorer,
) -> None:
    # The /predict coalescer scores concurrent requests with one booster call: every answer
    # must be the one a request alone gets (features from its own state; no row affects
    # another), duplicates refused in place.
    history = simulated_transactions(600)
    scorer.score_batch(
        [record(i, t.to_bytes(), t.customer_id.encode()) for i, t in enumerate(history[:500])]
    )
    requests = [*history[500:], history[10]]  # the last one: an id its customer already had
    together = scorer.predict_many(requests)
    alone = [scorer.predict(request) for request in requests]

    def comparable(answer: Verdict | Rejection) -> object:
        if isinstance(answer, Rejection):
            return answer.reason
        return answer.model_dump(exclude={"scored_at", "latency_ms"})

    assert [comparable(a) for a in together] == [comparable(a) for a in alone]
    assert isinstance(together[-1], Rejection)
    assert sum(isinstance(a, Verdict) for a in together) == len(requests) - 1
