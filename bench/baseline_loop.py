"""The baseline: the worker's work in a plain confluent-kafka loop, without Faust.

It drives the same pure core (:class:`stream_app.processor.BatchScorer`: validation, features
with per-customer state, scoring, reasons, rules) and the same
:class:`stream_app.worker.publisher.VerdictPublisher` (verdicts, alerts, dead letters and the
customer state changelog, one flush per batch) as the worker, and commits the batch's offsets
only after that flush, as the worker acknowledges. What is left out is exactly the Faust shell:
aiokafka's consumer, the stream and table machinery, the event loop. The difference between this
loop and the worker is what that shell costs.

Settings come from the same ``FRAUDSTREAM_*`` variables as the worker. Runs until SIGTERM/SIGINT:

    .venv/bin/python bench/baseline_loop.py --changelog-topic <topic>
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from types import FrameType

from confluent_kafka import Consumer, TopicPartition

from stream_app.kafka import consume_available, raw_record
from stream_app.metrics import create_worker_metrics
from stream_app.model_store import load_folder
from stream_app.processor import BatchScorer
from stream_app.scoring import load_rules, thresholds_for
from stream_app.settings import Settings
from stream_app.worker.publisher import VerdictPublisher

log = logging.getLogger("baseline_loop")
FLUSH_TIMEOUT_SECONDS = 60.0
IDLE_POLL_SECONDS = 0.05  # how long an idle loop waits for records before it checks for a stop


def build(settings: Settings, changelog_topic: str | None) -> tuple[BatchScorer, VerdictPublisher]:
    worker = settings.worker
    bundle = load_folder(worker.model_path)
    thresholds = thresholds_for(bundle, worker.review_threshold, worker.block_threshold)
    rules = load_rules(worker.deny_list_path, worker.review_above_usd)
    scorer = BatchScorer(bundle, thresholds, create_worker_metrics(), rules=rules)
    publisher = VerdictPublisher(settings.kafka, client_id=f"{worker.app_id}-baseline")
    publisher.changelog_topic = changelog_topic
    return scorer, publisher


def announce_assignment(consumer: Consumer, partitions: list[TopicPartition]) -> None:
    print(f"assigned {len(partitions)} partitions", flush=True)


def run(settings: Settings, changelog_topic: str | None, stop: threading.Event) -> None:
    scorer, publisher = build(settings, changelog_topic)
    consumer = Consumer(
        {
            **settings.kafka.confluent_config(),
            "group.id": settings.worker.app_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    # The benchmark waits for this line before it produces at a fixed rate.
    consumer.subscribe([settings.kafka.topics.transactions], on_assign=announce_assignment)
    batch_size = settings.worker.batch_size
    try:
        while not stop.is_set():
            # What is ready, up to a batch, with no batch window: the worker's batching.
            ready = consume_available(consumer, batch_size, IDLE_POLL_SECONDS)
            messages = [m for m in ready if m.error() is None]
            if not messages:
                continue
            result = scorer.score_batch([raw_record(m) for m in messages])
            # One flush for outputs and state together: a reference loop, not the worker's
            # order (state only after the outputs are confirmed), which costs it a round trip.
            publisher.enqueue_outputs(result)
            publisher.enqueue_state(result.state_changes)
            publisher.flush(FLUSH_TIMEOUT_SECONDS)  # raises: nothing committed, nothing lost
            consumer.commit(asynchronous=True)  # only now: the batch's outputs are confirmed
    finally:
        consumer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changelog-topic", help="write customer state here, as the worker does")
    args = parser.parse_args()
    settings = Settings()
    logging.basicConfig(level=settings.worker.log_level)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    run(settings, args.changelog_topic, stop)


if __name__ == "__main__":
    main()
