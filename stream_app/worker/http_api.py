"""The worker's HTTP API on Faust's web server: /predict (answered by the customer's owner),
/health, /metrics, /openapi.json and /docs.

Apart from :mod:`stream_app.worker.app` because none of it is on the stream's path: it reads the
scorer, the readers and the watchdog, and forwards /predict over the workers' web ports.
"""

from __future__ import annotations

from datetime import UTC, datetime

import faust
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from yarl import URL

from stream_app.settings import Settings
from stream_app.validation import Rejection, parse_transaction
from stream_app.worker.openapi import Health, docs_page, openapi_document
from stream_app.worker.parts import WorkerParts
from stream_app.worker.predict_batching import PredictCoalescer
from stream_app.worker.predict_routing import (
    FORWARDED_HEADER,
    Forwarded,
    Unavailable,
    forward,
    owner_of,
    partition_for,
)
from stream_app.worker.watchdog import ProgressWatchdog

# /predict answers: a client error's status by rejection reason (the body names the fields);
# schema_violation and timestamp_out_of_range are 422.
REJECTION_STATUS = {
    "oversized": 413,
    "invalid_encoding": 400,
    "invalid_json": 400,
    "duplicate_transaction_id": 409,  # the customer already had this transaction id
}
UNPROCESSABLE = 422


class PredictOwner:
    """Finds the worker that owns a customer's partition and forwards /predict to it."""

    def __init__(self, app: faust.App, settings: Settings, customer_table: str) -> None:
        self.app = app
        self.customer_table = customer_table
        self.partitions = settings.kafka.partitions
        self.timeout_s = settings.worker.predict_forward_timeout_seconds
        self.me = str(app.conf.canonical_url)

    async def answer(self, customer_id: str, body: bytes) -> Forwarded | Unavailable | None:
        """The owner's answer, why there is none, or None when this worker is the owner."""
        table = self.app.tables[self.customer_table]
        topic = table.changelog_topic.get_topic_name()
        partition = partition_for(customer_id, self.partitions)
        distribution = self.app.router.table_metadata(self.customer_table)
        owner_url = owner_of(distribution, topic, partition)
        if owner_url is None:
            return Unavailable(
                "owner_unknown", f"no worker holds partition {partition} now (rebalancing?)"
            )
        if URL(owner_url) == URL(self.me):
            return None
        return await forward(self.app.http_client, owner_url, body, self.me, self.timeout_s)


def add_views(
    app: faust.App,
    parts: WorkerParts,
    settings: Settings,
    watchdog: ProgressWatchdog,
    customer_table: str,
) -> None:
    """/predict, /health, /metrics, /openapi.json and /docs on the worker's web server."""
    scorer = parts.scorer
    owner = PredictOwner(app, settings, customer_table)
    predictions = PredictCoalescer(scorer)
    transactions_topic = settings.kafka.topics.transactions

    @app.page("/predict")
    class Predict(View):
        """The original request/response API, on the same features and model as the stream."""

        async def post(self, request: Request) -> Response:
            body = await request.read()  # aiohttp refuses bodies over 1 MiB with a 413 itself
            parsed = parse_transaction(body, datetime.now(UTC))
            if not isinstance(parsed, Rejection) and FORWARDED_HEADER not in request.headers:
                routed = await owner.answer(parsed.customer_id, body)
                if isinstance(routed, Forwarded):
                    scorer.metrics.predict_requests.labels("forwarded").inc()
                    return self.bytes(
                        routed.body, content_type=routed.content_type, status=routed.status
                    )
                if isinstance(routed, Unavailable):
                    scorer.metrics.predict_requests.labels(routed.reason).inc()
                    return self.json({"reason": routed.reason, "error": routed.error}, status=503)
            answer = parsed if isinstance(parsed, Rejection) else await predictions.predict(parsed)
            if isinstance(answer, Rejection):
                scorer.metrics.predict_requests.labels(answer.reason).inc()
                status = REJECTION_STATUS.get(answer.reason, UNPROCESSABLE)
                return self.json({"reason": answer.reason, "error": answer.error}, status=status)
            scorer.metrics.predict_requests.labels(answer.decision).inc()
            # The verdict's wire bytes, as on fraud-scores: pydantic writes them in one call,
            # where a dict dumped by Faust's JSON encoder cost 3.6 times as much (63 against 18 us).
            return self.bytes(answer.to_bytes(), content_type="application/json")

    @app.page("/openapi.json")
    async def openapi(self: View, request: Request) -> Response:
        return self.json(openapi_document())

    @app.page("/docs")
    async def docs(self: View, request: Request) -> Response:
        return self.html(docs_page())

    @app.page("/metrics")
    async def metrics(self: View, request: Request) -> Response:
        body = generate_latest(scorer.metrics.registry)
        return self.bytes(body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/health")
    async def health(self: View, request: Request) -> Response:
        assignment = app.consumer.assignment() if app.consumer is not None else set()
        assigned = len(assignment)
        owned = sorted(tp.partition for tp in assignment if tp.topic == transactions_topic)
        labels_caught_up = parts.labels.caught_up.is_set()
        rules_caught_up = parts.rules is None or parts.rules.caught_up.is_set()
        ready = assigned > 0 and labels_caught_up and rules_caught_up and not watchdog.stalled
        status = 200 if ready else 503
        answer = Health(
            live=True,
            ready=ready,
            assigned_partitions=assigned,
            transactions_partitions=owned,
            labels_caught_up=labels_caught_up,
            rules_caught_up=rules_caught_up,
            model_name=scorer.model.metadata.name,
            model_version=scorer.model.metadata.version,
        )
        return self.json(answer.model_dump(), status=status)
