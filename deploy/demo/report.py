"""The summary of a run: measured from the topics and the store, printed and written as JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rich.table import Table

from deploy.demo.observer import Tally, utc_now
from deploy.demo.planner import Plan
from deploy.demo.runs import RunPaths
from stream_app.settings import Settings
from stream_app.store import LocalStore

# ---------------------------------------------------------------------------------------------
# The summary


def quality(tally: Tally, versions: Sequence[str] | None = None) -> dict[str, Any]:
    """Precision and recall of review+block against the simulator's labels, over verdicts whose
    label has arrived."""
    chosen = set(versions) if versions is not None else None
    pairs = [
        (flag, tally.labels[tid])
        for tid, flag in tally.flagged.items()
        if tid in tally.labels and (chosen is None or tally.version_of.get(tid) in chosen)
    ]
    hits = sum(flag and fraud for flag, fraud in pairs)
    flagged = sum(flag for flag, _ in pairs)
    frauds = sum(fraud for _, fraud in pairs)
    return {
        "labelled_verdicts": len(pairs),
        "frauds": frauds,
        "flagged": flagged,
        "true_positives": hits,
        "precision": round(hits / flagged, 4) if flagged else None,
        "recall": round(hits / frauds, 4) if frauds else None,
    }


def summary(
    tally: Tally, plan: Plan, paths: RunPaths, settings: Settings, started: datetime
) -> dict[str, Any]:
    versions = sorted(tally.versions, key=lambda v: (len(v), v))
    control = [window for window in tally.windows if window.end < plan.drift_time]
    return {
        "run_id": paths.run_id,
        "started": started.isoformat(),
        "finished": utc_now().isoformat(),
        "plan": plan.describe(),
        "transactions": tally.transactions,
        "verdicts": tally.verdicts,
        "decisions": dict(tally.decisions),
        "dead_letters": dict(tally.dead_letters),
        "unanswered": tally.unanswered,
        "labels": len(tally.labels),
        "latency_ms_recent": {"p50": tally.percentile(0.5), "p99": tally.percentile(0.99)},
        "verdicts_by_version": dict(tally.versions),
        "quality": quality(tally),
        "quality_by_version": {version: quality(tally, [version]) for version in versions},
        "shadow_rules": {stat.rule_id: stat.to_dict() for stat in tally.shadow_rules()},
        "drift": {
            "windows_checked": len(tally.windows),
            "windows_drifted": sum(window.drifted for window in tally.windows),
            "control_windows": len(control),
            "control_windows_drifted": sum(window.drifted for window in control),
            "reports": LocalStore(paths.store).uri("drift/reports"),
            "windows": [
                {
                    "start": w.start.isoformat(),
                    "end": w.end.isoformat(),
                    "rows": w.rows,
                    "drift_share": w.drift_share,
                    "drifted": w.drifted,
                    "report": w.report,
                }
                for w in tally.windows
            ],
        },
        "retrain_requests": [
            {**json.loads(request.to_bytes()), "published": wall.isoformat()}
            for request, wall in tally.requests
        ],
        "retrain_outcomes": list(tally.outcomes.values()),
        "model_updates": [
            {**json.loads(update.to_bytes()), "published": wall.isoformat()}
            for update, wall in tally.updates
        ],
        "promotions": len(tally.updates),
        "timeline": {name: event.to_dict(started) for name, event in tally.events.items()},
        "mlflow_ui": settings.mlflow.tracking_uri,
        "logs": str(paths.logs),
    }


def summary_tables(result: dict[str, Any]) -> list[Table]:
    traffic = Table(title=f"fraudstream demo {result['run_id']}: summary")
    traffic.add_column("what")
    traffic.add_column("value", justify="right")
    quality_all = result["quality"]
    rows = [
        ("transactions", f"{result['transactions']:,}"),
        ("verdicts", f"{result['verdicts']:,}"),
        *((f"  {d}", f"{n:,}") for d, n in sorted(result["decisions"].items())),
        ("dead letters", f"{sum(result['dead_letters'].values()):,}"),
        ("without verdict or dead letter", f"{result['unanswered']:,}"),
        ("precision / recall (review+block)", _pr(quality_all)),
        *(
            (f"  model v{version}", _pr(value))
            for version, value in result["quality_by_version"].items()
        ),
        *(
            (f"shadow rule {rule_id}: hits / precision", _shadow(value))
            for rule_id, value in result["shadow_rules"].items()
        ),
        ("drift windows checked / drifted", _checked(result["drift"])),
        (
            "retrain requests / promotions",
            f"{len(result['retrain_requests'])} / {result['promotions']}",
        ),
        ("drift reports", result["drift"]["reports"]),
        ("MLflow UI", result["mlflow_ui"]),
        ("logs", result["logs"]),
    ]
    for row in rows:
        traffic.add_row(*row)
    timeline = Table(title="timeline (wall seconds since start; simulated time)")
    for column in ("event", "s", "simulated", "detail"):
        timeline.add_column(column)
    for name, event in sorted(result["timeline"].items(), key=lambda item: item[1]["seconds"]):
        timeline.add_row(name, f"{event['seconds']:.1f}", event["sim"] or "-", event["detail"])
    return [traffic, timeline]


def _pr(value: dict[str, Any]) -> str:
    precision, recall = value["precision"], value["recall"]
    shown = [f"{x:.3f}" if x is not None else "-" for x in (precision, recall)]
    return f"{shown[0]} / {shown[1]} ({value['labelled_verdicts']:,} labelled)"


def _shadow(value: dict[str, Any]) -> str:
    precision = value["precision"]
    shown = "n/a" if precision is None else f"{precision:.3f}"
    return f"{value['hits']:,} / {shown} ({value['labelled_hits']:,} labelled)"


def _checked(drift: dict[str, Any]) -> str:
    return (
        f"{drift['windows_checked']} / {drift['windows_drifted']} "
        f"(before the drift: {drift['control_windows']} / {drift['control_windows_drifted']})"
    )
