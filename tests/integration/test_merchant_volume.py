"""Merchant volume does not depend on the partitioning: two workers of one group, a replayed
history, and every verdict's features (merchant volume included) equal the offline features."""

from __future__ import annotations

import uuid
from collections.abc import Hashable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from producers.simulator import SimulatorConfig, generate_history
from stream_app.features import FEATURE_NAMES, offline_features
from stream_app.schemas import Transaction, Verdict
from stream_app.settings import TopicNames
from tests.integration.worker_helpers import health, metric, produce
from tests.kafka_helpers import consume_all, wait_until
from tests.workers import WorkerFactory

MIN_TRANSACTIONS = 20_000


def replayed_history() -> tuple[pd.DataFrame, list[Transaction]]:
    config = SimulatorConfig(
        seed=41, n_customers=1000, n_merchants=450, start=datetime(2026, 1, 5, tzinfo=UTC)
    )
    history, _ = generate_history(config, days=21)
    columns = [name for name in Transaction.model_fields if name in history.columns]
    rows: list[dict[Hashable, Any]] = history[columns].to_dict(orient="records")
    return history, [Transaction.model_validate(row) for row in rows]


def test_two_workers_give_every_verdict_the_offline_features(
    kafka_bootstrap: str, topics: TopicNames, worker_factory: WorkerFactory, trained_model_dir: Path
) -> None:
    history, transactions = replayed_history()
    assert len(transactions) >= MIN_TRANSACTIONS
    # A group of its own: a changelog left by an earlier run would hold these customers.
    group = {"app_id": f"merchant-volume-{uuid.uuid4().hex[:8]}", "session_timeout_seconds": "20"}
    workers = [worker_factory(topics, trained_model_dir, **group) for _ in range(2)]

    def both_own_a_share() -> bool:
        shares = [health(worker).get("transactions_partitions", []) for worker in workers]
        return sorted(map(len, shares)) == [1, 2]

    wait_until(both_own_a_share, timeout=120, what="two workers sharing the three partitions")
    # The history replayed at full speed, in time order, while both score their share.
    produce(
        kafka_bootstrap,
        topics.transactions,
        [(t.customer_id.encode(), t.to_bytes()) for t in transactions],
    )

    def all_scored() -> bool:
        for worker in workers:
            assert worker.process.poll() is None, f"worker exited:\n{worker.log_tail()}"
        try:
            scored = [metric(w, "fraudstream_transactions_scored_total") for w in workers]
        except OSError:
            return False
        return sum(scored) >= len(transactions)

    wait_until(all_scored, timeout=300, what="the history scored by the two workers")
    scored = [metric(w, "fraudstream_transactions_scored_total") for w in workers]
    assert min(scored) > 0, f"both workers scored a share: {scored}"
    late = sum(metric(w, "fraudstream_merchant_volume_late_records_total") for w in workers)
    timeouts = sum(metric(w, "fraudstream_merchant_volume_wait_timeouts_total") for w in workers)
    assert (late, timeouts) == (0, 0)

    messages = consume_all(
        kafka_bootstrap,
        topics.scores,
        lambda found: len(found) >= sum(scored),
        timeout=120,
    )
    verdicts = [Verdict.model_validate_json(m.value() or b"") for m in messages]
    assert {v.transaction_id for v in verdicts} == {t.transaction_id for t in transactions}
    expected = offline_features(history)
    offline = {
        t.transaction_id: list(row)
        for t, row in zip(transactions, expected.itertuples(index=False), strict=True)
    }
    merchant_volume_seen = 0
    # Every verdict, a second one for a transaction rescored after a rebalance included.
    for verdict in verdicts:
        assert verdict.features is not None
        online = [verdict.features[name] for name in FEATURE_NAMES]
        assert online == offline[verdict.transaction_id], verdict.transaction_id
        merchant_volume_seen += verdict.features["merchant_txn_count_24h"] > 0
    # The merchant volume compared is not trivially zero.
    assert merchant_volume_seen > len(transactions) // 2
