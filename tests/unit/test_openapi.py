"""The HTTP API's OpenAPI document: parsed, its references resolved, /predict's schemas checked
against the pydantic models that validate requests and encode answers."""

from __future__ import annotations

import json
from typing import Any

from stream_app.schemas import Transaction, Verdict
from stream_app.worker.openapi import Health, Rejection, docs_page, openapi_document


def parsed() -> dict[str, Any]:
    """The document as a client sees it: through JSON text."""
    document: dict[str, Any] = json.loads(json.dumps(openapi_document()))
    return document


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    prefix = "#/components/schemas/"
    reference = schema["$ref"]
    assert reference.startswith(prefix)
    resolved: dict[str, Any] = document["components"]["schemas"][reference.removeprefix(prefix)]
    return resolved


def every_reference(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if "$ref" in node else []
        return own + [ref for value in node.values() for ref in every_reference(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in every_reference(value)]
    return []


def test_the_document_is_openapi_3_1_and_every_reference_resolves() -> None:
    document = parsed()
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) == {"/predict", "/health", "/metrics"}
    references = every_reference(document)
    assert references, "the paths refer to component schemas"
    for reference in references:
        resolve(document, {"$ref": reference})


def test_predict_takes_a_transaction_with_its_required_fields() -> None:
    document = parsed()
    body = document["paths"]["/predict"]["post"]["requestBody"]
    assert body["required"] is True
    schema = resolve(document, body["content"]["application/json"]["schema"])
    required = {name for name, field in Transaction.model_fields.items() if field.is_required()}
    assert set(schema["required"]) == required
    assert set(schema["properties"]) == set(Transaction.model_fields)
    assert schema["additionalProperties"] is False  # unknown fields are refused
    assert schema["properties"]["amount"]["exclusiveMinimum"] == 0


def test_predict_answers_a_verdict_or_a_reason() -> None:
    document = parsed()
    responses = document["paths"]["/predict"]["post"]["responses"]
    verdict = resolve(document, responses["200"]["content"]["application/json"]["schema"])
    assert set(verdict["properties"]) == set(Verdict.model_fields)
    assert verdict["properties"]["decision"]["enum"] == ["approve", "review", "block"]
    for status in ("400", "409", "413", "422"):
        refused = resolve(document, responses[status]["content"]["application/json"]["schema"])
        assert set(refused["properties"]) == set(Rejection.model_fields) == {"reason", "error"}


def test_health_is_described_by_the_model_the_view_answers_with() -> None:
    document = parsed()
    answers = document["paths"]["/health"]["get"]["responses"]
    for status in ("200", "503"):
        schema = resolve(document, answers[status]["content"]["application/json"]["schema"])
        assert set(schema["properties"]) == set(Health.model_fields)


def test_the_docs_page_lists_every_endpoint_and_links_the_document() -> None:
    page = docs_page()
    assert "href='/openapi.json'" in page
    for heading in ("POST /predict", "GET /health", "GET /metrics"):
        assert f"<h2>{heading}</h2>" in page
