"""The worker's HTTP API described as OpenAPI 3.1, generated from the pydantic wire models.

``GET /openapi.json`` serves the document and ``GET /docs`` a self-contained page that lists the
endpoints and their schemas (no script from a CDN: the worker may run where there is none; any
OpenAPI viewer, such as Swagger UI or Redoc, can load ``/openapi.json`` itself). The document is
built from the same models that validate requests and encode answers, so it cannot drift from
what the worker does.
"""

from __future__ import annotations

import html
import json
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, Field
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from stream_app.schemas import Transaction, Verdict

REF_TEMPLATE = "#/components/schemas/{model}"
JSON = "application/json"


class Rejection(BaseModel):
    """Why ``/predict`` refused a request: the dead-letter reason and pydantic's message."""

    reason: str
    error: str


class Health(BaseModel):
    """``/health``: live while the process serves; ready once it owns partitions and has read
    the labels and the rules up to where they were at start."""

    live: bool
    ready: bool
    assigned_partitions: int
    transactions_partitions: list[int] = Field(
        description="the partitions of transactions this worker scores (its customers)"
    )
    labels_caught_up: bool
    rules_caught_up: bool = Field(
        default=True, description="fraud-rules read up to where it was at start"
    )
    model_name: str
    model_version: str


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF_TEMPLATE.format(model=model.__name__)}


def _answer(description: str, model: type[BaseModel]) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": _ref(model)}}}


def _predict_operation() -> dict[str, Any]:
    refused = "refused: the body names the reason"
    return {
        "summary": "Score one transaction with the stream's features and model",
        "description": (
            "Answers from the customer's current state, which the request leaves unchanged. "
            "Bad input is answered with the same reason it gets on the dead-letter topic."
        ),
        "requestBody": {"required": True, "content": {JSON: {"schema": _ref(Transaction)}}},
        "responses": {
            "200": _answer("the verdict", Verdict),
            "400": _answer(f"{refused} (invalid_encoding, invalid_json)", Rejection),
            "409": _answer(f"{refused} (duplicate_transaction_id)", Rejection),
            "413": _answer(f"{refused} (oversized)", Rejection),
            "422": _answer(f"{refused} (schema_violation, timestamp_out_of_range)", Rejection),
        },
    }


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    """The whole document; built once (the models do not change while the worker runs)."""
    # A request is described as it is validated, an answer as it is encoded.
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (Transaction, "validation"),
        (Verdict, "serialization"),
        (Rejection, "serialization"),
        (Health, "serialization"),
    ]
    _, schemas = models_json_schema(models, ref_template=REF_TEMPLATE)
    text = "text/plain; version=0.0.4"
    return {
        "openapi": "3.1.0",
        "info": {"title": "fraudstream worker", "version": "1"},
        "paths": {
            "/predict": {"post": _predict_operation()},
            "/health": {
                "get": {
                    "summary": "Liveness and readiness",
                    "responses": {
                        "200": _answer("ready", Health),
                        "503": _answer("live but not ready", Health),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "responses": {"200": {"description": "exposition", "content": {text: {}}}},
                }
            },
        },
        "components": {"schemas": schemas["$defs"]},
    }


def docs_page() -> str:
    """A plain HTML page: each endpoint with its answers, and every schema in full."""
    document = openapi_document()
    sections = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            answers = "".join(
                f"<li>{status}: {html.escape(answer['description'])}</li>"
                for status, answer in operation["responses"].items()
            )
            sections.append(
                f"<h2>{method.upper()} {html.escape(path)}</h2>"
                f"<p>{html.escape(operation['summary'])}</p><ul>{answers}</ul>"
            )
    schemas = json.dumps(document["components"]["schemas"], indent=2)
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>fraudstream worker API</title>"
        "</head><body><h1>fraudstream worker API</h1>"
        "<p>Machine-readable: <a href='/openapi.json'>/openapi.json</a> (OpenAPI 3.1).</p>"
        + "".join(sections)
        + f"<h2>Schemas</h2><pre>{html.escape(schemas)}</pre></body></html>"
    )
