"""The /predict coalescer: requests that reach it in the same loop turn are scored in one
``predict_many`` call, each gets its own answer, and a failure reaches every one of them."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from stream_app.worker.predict_batching import PredictCoalescer


class RecordingScorer:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.fail = fail

    def predict_many(self, transactions: list[str]) -> list[str]:
        self.calls.append(list(transactions))
        if self.fail:
            raise RuntimeError("booster broke")
        return [f"answer to {t}" for t in transactions]


def test_concurrent_requests_are_scored_together_and_each_gets_its_answer() -> None:
    scorer = RecordingScorer()
    coalescer = PredictCoalescer(cast(Any, scorer))

    async def scenario() -> tuple[list[Any], Any]:
        together = await asyncio.gather(*(coalescer.predict(cast(Any, f"t{i}")) for i in range(5)))
        alone = await coalescer.predict(cast(Any, "t9"))
        return list(together), alone

    together, alone = asyncio.run(scenario())
    assert together == [f"answer to t{i}" for i in range(5)]
    assert alone == "answer to t9"
    assert scorer.calls == [[f"t{i}" for i in range(5)], ["t9"]]


def test_a_failure_reaches_every_waiting_request() -> None:
    coalescer = PredictCoalescer(cast(Any, RecordingScorer(fail=True)))

    async def scenario() -> list[Any]:
        calls = (coalescer.predict(cast(Any, t)) for t in ("a", "b"))
        return await asyncio.gather(*calls, return_exceptions=True)

    results = asyncio.run(scenario())
    assert [type(r) for r in results] == [RuntimeError, RuntimeError]
