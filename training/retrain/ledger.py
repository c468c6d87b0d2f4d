"""The ledger (step 1): one record per handled request, in the object store.

It also records requests handled without training (duplicates, recoveries) and is one GET per
request, which is why it lives in the store rather than only in MLflow.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict

from stream_app.store import ObjectNotFoundError, ObjectStore

LEDGER_PREFIX = "training/requests"


class RequestOutcome(BaseModel):
    """What handling a request produced; the ledger's record, readable JSON."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    request_id: str
    handled_at: datetime
    run_id: str
    model_name: str
    model_version: str
    promoted: bool
    candidate_score: float | None = None
    champion_version: str | None = None
    champion_score: float | None = None
    fraud_labels: int | None = None
    model_update_sent: bool = False
    recovered: bool = False


class Ledger(Protocol):
    def get(self, request_id: str) -> RequestOutcome | None: ...

    def record(self, outcome: RequestOutcome) -> None: ...


class StoreLedger:
    """One object per handled request under ``training/requests/``.

    Ids are percent-encoded, dots included: no id can name another folder, and none starts
    with a dot (a local store hides those names, as its own temporary files).
    """

    def __init__(self, store: ObjectStore, prefix: str = LEDGER_PREFIX) -> None:
        self.store = store
        self.prefix = prefix

    def key(self, request_id: str) -> str:
        encoded = quote(request_id, safe="").replace(".", "%2E")
        return f"{self.prefix}/{encoded}.json"

    def get(self, request_id: str) -> RequestOutcome | None:
        try:
            return RequestOutcome.model_validate_json(self.store.get_bytes(self.key(request_id)))
        except ObjectNotFoundError:
            return None

    def record(self, outcome: RequestOutcome) -> None:
        self.store.put_bytes(
            self.key(outcome.request_id), outcome.model_dump_json(indent=2).encode()
        )
