"""The hot path's goals (issue 18), as bench/bench_compare.py and bench_memory.py report them.

Each goal is a number at the top level of the JSON's ``goals``, with whether it is met beside
it under ``met`` (``None`` for a reference number without a goal). Every one is printed,
met or not: a goal is never left out because it was missed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# key: (comparison, target, what it is)
COMPARE_GOALS: dict[str, tuple[str, float | None, str]] = {
    "core_rows_per_s": (">=", 100_000, "pure core, one core, rows/s"),
    "faust_bare_msg_per_s": ("ref", None, "bare Faust agent, no work, msg/s (the shell's ceiling)"),
    "worker_tx_per_s": (">=", 20_000, "Faust worker end to end, tx/s (moonshot)"),
    "worker_share_of_faust_bare": (">=", 0.8, "worker / bare Faust"),
    "worker_share_of_baseline": (">=", 0.5, "worker / plain confluent-kafka loop"),
    "worker_p50_ms_at_2000": ("<=", 15, "produce -> verdict p50 at 2,000 tx/s, ms"),
    "worker_p99_ms_at_2000": ("<=", 50, "produce -> verdict p99 at 2,000 tx/s, ms"),
    "worker_p99_ms_at_200": ("<=", 20, "produce -> verdict p99 at 200 tx/s, ms"),
    "predict_req_per_s": (">=", 3_000, "POST /predict, 32 clients, req/s"),
}
MEMORY_GOALS: dict[str, tuple[str, float | None, str]] = {
    "recovery_customers_per_s": (">=", 50_000, "changelog recovery, customers/s"),
    "rss_mib": ("<=", 1024, "worker RSS with the customers recovered, MiB"),
}


def is_met(value: float, comparison: str, target: float | None) -> bool | None:
    if target is None:
        return None
    return value >= target if comparison == ">=" else value <= target


def goals(values: Mapping[str, float], table: Mapping[str, tuple[str, float | None, str]]) -> Any:
    """The ``goals`` object: every key of ``table`` with its value, plus ``met`` and ``targets``."""
    document: dict[str, Any] = {key: float(values[key]) for key in table}
    document["met"] = {
        key: is_met(float(values[key]), comparison, target)
        for key, (comparison, target, _) in table.items()
    }
    document["targets"] = {
        key: f"{comparison} {target:g}" if target is not None else "reference"
        for key, (comparison, target, _) in table.items()
    }
    return document


def report(document: Mapping[str, Any], table: Mapping[str, tuple[str, float | None, str]]) -> str:
    lines = ["| goal | measured | target | |", "|---|---|---|---|"]
    for key, (comparison, target, what) in table.items():
        met = document["met"][key]
        verdict = "reference" if met is None else ("met" if met else "NOT met")
        goal = "-" if target is None else f"{comparison} {target:,g}"
        lines.append(f"| {key} ({what}) | {document[key]:,.2f} | {goal} | {verdict} |")
    return "\n".join(lines)
