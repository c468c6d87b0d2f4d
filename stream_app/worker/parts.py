"""The plain objects the Faust shell drives, built by the worker's entry point."""

from __future__ import annotations

from dataclasses import dataclass

from stream_app.processor import BatchScorer
from stream_app.schemas import Label, ModelUpdate
from stream_app.worker.merchant_volume_reader import MerchantVolumeReader
from stream_app.worker.model_swap import ModelSwapper
from stream_app.worker.publisher import VerdictPublisher
from stream_app.worker.rules_reader import LiveRules
from stream_app.worker.topic_reader import TopicReader


@dataclass
class WorkerParts:
    scorer: BatchScorer
    publisher: VerdictPublisher
    labels: TopicReader[Label]
    model_updates: TopicReader[ModelUpdate]
    swapper: ModelSwapper
    rules: LiveRules | None = None  # fraud-rules, applied between batches
    volume: MerchantVolumeReader | None = None  # merchant volume from every partition
