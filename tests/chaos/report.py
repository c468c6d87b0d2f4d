"""The soak's one table (what it did, what it found) and the same facts as JSON."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from tests.chaos.soak import SoakResult


def findings(result: SoakResult) -> list[str]:
    """Every check that failed, in words; empty when the soak passed."""
    config, problems = result.config, []
    if result.failed_to_produce:
        problems.append(f"{result.failed_to_produce} transactions the broker never acknowledged")
    if result.acked < config.transactions:
        problems.append(f"only {result.acked} of {config.transactions} acknowledged")
    if result.lost:
        problems.append(f"{len(result.lost)} acknowledged transactions without a verdict")
    if result.duplicates > result.duplicate_bound:
        problems.append(f"{result.duplicates} duplicates > bound {result.duplicate_bound}")
    if result.first_verdicts_wrong:
        problems.append(
            f"{len(result.first_verdicts_wrong)} first verdicts' features differ from offline: "
            f"{result.first_verdicts_wrong[:5]}"
        )
    if result.longest_stall["seconds"] > config.stall_bound:
        problems.append(f"a partition stalled {result.longest_stall} > {config.stall_bound}s")
    if len(result.done) < config.faults:
        problems.append(f"only {len(result.done)} of {config.faults} faults struck")
    return problems


def table(result: SoakResult) -> str:
    config = result.config
    kinds = Counter(fault for _, fault, _ in result.done)
    stall = result.longest_stall
    rows = [
        (
            "stream",
            f"{config.transactions:,} transactions at {config.rate:g}/s, seed {config.seed}",
        ),
        ("faults", f"{len(result.done)} struck (scheduled {config.faults})"),
        *((f"  {kind}", str(count)) for kind, count in sorted(kinds.items())),
        ("bugs raised", f"{result.bugs_raised} (by the workers that claimed a trigger)"),
        ("exits the soak caused", _counts(result.own_exits)),
        ("exits the supervisor restarted", _counts(result.unprompted_exits) or "none"),
        ("acknowledged", f"{result.acked:,}"),
        ("lost (acked, no verdict)", f"{len(result.lost):,}"),
        ("verdicts", f"{result.verdicts:,}"),
        (
            "duplicates (bound)",
            f"{result.duplicates:,} (<= {result.duplicate_bound:,} = "
            f"{len(result.done)} faults x {config.per_fault_duplicates:,}); "
            f"most verdicts of one transaction {result.max_verdicts_per_transaction}",
        ),
        ("first verdicts != offline features", f"{len(result.first_verdicts_wrong):,}"),
        (
            "longest stall (bound)",
            f"{stall['seconds']:g} s on partition {stall['partition']} at committed "
            f"{stall['committed']} of {stall['high']} (<= {config.stall_bound:g} s = watchdog "
            f"{config.stall_seconds:g} + restart {config.restart_allowance:g})",
        ),
        ("monitor samples the broker missed", str(result.broker_unanswered_samples)),
        ("seconds", _counts({k: round(v) for k, v in result.seconds.items()})),
        ("verdict", "PASS" if not findings(result) else "FAIL: " + "; ".join(findings(result))),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def write_json(result: SoakResult, path: Path) -> None:
    facts = {
        "config": {
            **vars(result.config),
            "per_fault_duplicates": result.config.per_fault_duplicates,
        },
        "faults": [
            {"at_s": at, "fault": fault, "target": target} for at, fault, target in result.done
        ],
        "faults_by_kind": dict(Counter(fault for _, fault, _ in result.done)),
        "bugs_raised": result.bugs_raised,
        "own_exits": result.own_exits,
        "unprompted_exits": result.unprompted_exits,
        "acknowledged": result.acked,
        "lost": len(result.lost),
        "lost_sample": result.lost[:20],
        "verdicts": result.verdicts,
        "duplicates": result.duplicates,
        "duplicate_bound": result.duplicate_bound,
        "max_verdicts_per_transaction": result.max_verdicts_per_transaction,
        "first_verdicts_wrong": len(result.first_verdicts_wrong),
        "first_verdicts_wrong_sample": result.first_verdicts_wrong[:20],
        "longest_stall": result.longest_stall,
        "stall_bound_s": result.config.stall_bound,
        "progress_at_end": result.progress_at_end,
        "seconds": result.seconds,
        "findings": findings(result),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(facts, indent=2) + "\n")


def _counts(counts: dict[str, int] | dict[str, float]) -> str:
    return ", ".join(f"{key} {value:g}" for key, value in counts.items())
