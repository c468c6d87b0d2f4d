"""Hot model swap on a real broker: mid-stream, at a batch boundary, none lost or doubled."""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from pathlib import Path

from stream_app.schemas import Verdict
from stream_app.settings import TopicNames
from tests.factories import simulated_transactions
from tests.integration.worker_helpers import (
    announce,
    produce,
    relabelled_copy,
    started_worker,
    swaps,
)
from tests.kafka_helpers import consume_all, wait_until
from tests.workers import WorkerFactory

TRANSACTIONS = 3000


def test_a_model_update_mid_stream_switches_versions_at_a_batch_boundary(
    kafka_bootstrap: str,
    topics: TopicNames,
    worker_factory: WorkerFactory,
    trained_model_dir: Path,
    tmp_path: Path,
) -> None:
    first_version = json.loads((trained_model_dir / "metadata.json").read_text())["version"]
    second = relabelled_copy(trained_model_dir, tmp_path / "second", "2")
    worker = started_worker(worker_factory, topics, trained_model_dir)
    transactions = simulated_transactions(TRANSACTIONS, seed=23)
    messages = [(t.customer_id.encode(), t.to_bytes()) for t in transactions]

    half = TRANSACTIONS // 2
    produce(kafka_bootstrap, topics.transactions, messages[:half])
    # The update lands while the second half streams in.
    sender = threading.Thread(
        target=produce, args=(kafka_bootstrap, topics.transactions, messages[half:])
    )
    sender.start()
    announce(kafka_bootstrap, topics, second, "2")
    sender.join(timeout=60)
    wait_until(lambda: swaps(worker, "success") == 1, timeout=60, what="the model swap")
    late = simulated_transactions(200, seed=29)
    produce(
        kafka_bootstrap, topics.transactions, [(t.customer_id.encode(), t.to_bytes()) for t in late]
    )

    expected = TRANSACTIONS + len(late)
    raw = consume_all(kafka_bootstrap, topics.scores, lambda m: len(m) >= expected, timeout=120)
    assert len(raw) == expected, "every transaction scored exactly once"
    by_partition: dict[int, list[str]] = defaultdict(list)
    ids = []
    for message in sorted(raw, key=lambda m: (m.partition(), m.offset())):
        verdict = Verdict.model_validate_json(message.value() or b"")
        by_partition[message.partition() or 0].append(verdict.model_version)
        ids.append(verdict.transaction_id)
    assert sorted(ids) == sorted(t.transaction_id for t in transactions + late)
    for versions in by_partition.values():
        switch = versions.index("2")  # every partition got traffic after the swap
        assert set(versions[:switch]) <= {first_version}
        assert set(versions[switch:]) == {"2"}, "no verdict from the old model after the swap"


def test_a_broken_model_update_keeps_the_serving_model(
    kafka_bootstrap: str,
    topics: TopicNames,
    worker_factory: WorkerFactory,
    trained_model_dir: Path,
    tmp_path: Path,
) -> None:
    first_version = json.loads((trained_model_dir / "metadata.json").read_text())["version"]
    broken = relabelled_copy(trained_model_dir, tmp_path / "broken", "3")
    (broken / "model.ubj").write_bytes(b"not a booster")
    worker = started_worker(worker_factory, topics, trained_model_dir)
    announce(kafka_bootstrap, topics, broken, "3")
    wait_until(lambda: swaps(worker, "load_failed") == 1, timeout=60, what="the failed load")
    transactions = simulated_transactions(100, seed=31)
    produce(
        kafka_bootstrap,
        topics.transactions,
        [(t.customer_id.encode(), t.to_bytes()) for t in transactions],
    )
    raw = consume_all(kafka_bootstrap, topics.scores, lambda m: len(m) >= 100, timeout=90)
    versions = {Verdict.model_validate_json(m.value() or b"").model_version for m in raw}
    assert versions == {first_version}
    assert swaps(worker, "success") == 0
    assert worker.process.poll() is None
