"""The live dashboard and the step spinners (plain log lines when headless)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from deploy.demo.observer import Tally
from deploy.demo.planner import WARMUP_DAYS, Plan

log = logging.getLogger("demo")

# ---------------------------------------------------------------------------------------------
# The live dashboard


def dashboard(tally: Tally, plan: Plan, phase: str, elapsed: float) -> RenderableType:
    return Group(
        _header(tally, plan, phase, elapsed),
        _traffic_table(tally),
        _shadow_table(tally),
        _drift_table(tally, plan),
        _loop_table(tally, plan),
        _alerts_table(tally),
    )


def _header(tally: Tally, plan: Plan, phase: str, elapsed: float) -> Table:
    table = Table.grid(padding=(0, 2))
    sim = tally.last_event_time.strftime("%Y-%m-%d %H:%M") if tally.last_event_time else "-"
    drift = plan.drift_time.strftime("%Y-%m-%d %H:%M")
    table.add_row(
        f"[bold]fraudstream demo[/bold] {elapsed:.0f} s",
        f"phase: [cyan]{phase}[/cyan]",
        f"simulated time: {sim} (drift at {drift})",
        f"model in service: [bold]v{tally.last_version}[/bold]",
    )
    return table


def _traffic_table(tally: Tally) -> Table:
    table = Table(title="traffic", expand=True)
    for column in (
        "transactions",
        "verdicts",
        "tx/s",
        "p50 ms",
        "p99 ms",
        "approve",
        "review",
        "block",
        "dead letters",
        "labels",
        "verdicts by model",
    ):
        table.add_column(column, justify="right")
    by_version = ", ".join(f"v{v}: {n:,}" for v, n in sorted(tally.versions.items()))
    table.add_row(
        f"{tally.transactions:,}",
        f"{tally.verdicts:,}",
        f"{tally.throughput():,.0f}",
        f"{tally.percentile(0.5):.1f}",
        f"{tally.percentile(0.99):.1f}",
        f"{tally.decisions['approve']:,}",
        f"{tally.decisions['review']:,}",
        f"{tally.decisions['block']:,}",
        f"{sum(tally.dead_letters.values()):,}",
        f"{len(tally.labels):,}",
        by_version or "-",
    )
    return table


def _shadow_table(tally: Tally) -> Table:
    """Shadow rules (never acted on): how often each would have fired, and how often rightly
    among the hits whose label has arrived."""
    table = Table(title="shadow rules (would have fired; not acted on)", expand=True)
    for column in ("rule", "hits", "labelled hits", "frauds", "precision"):
        table.add_column(column, justify="left" if column == "rule" else "right")
    for stat in tally.shadow_rules():
        precision = "n/a" if stat.precision is None else f"{stat.precision:.3f}"
        table.add_row(
            stat.rule_id,
            f"{stat.hits:,}",
            f"{stat.labelled_hits:,}",
            f"{stat.frauds:,}",
            precision,
        )
    if not tally.shadow_hits:
        table.add_row("-", "no shadow rule seen", "", "", "")
    return table


def _drift_table(tally: Tally, plan: Plan) -> Table:
    drifted = sum(window.drifted for window in tally.windows)
    table = Table(
        title=f"drift windows ({len(tally.windows)} checked, {drifted} drifted; "
        f"{plan.window_rows:,} verdicts each)",
        expand=True,
    )
    for column in ("window (simulated)", "rows", "drift share", "drifted", "drifted features"):
        table.add_column(column)
    for window in tally.windows[-6:]:
        mark = "[red]yes[/red]" if window.drifted else "[green]no[/green]"
        span = f"{window.start:%m-%d %H:%M} .. {window.end:%m-%d %H:%M}"
        features = ", ".join(window.features[:4]) + (" ..." if len(window.features) > 4 else "")
        table.add_row(span, f"{window.rows:,}", f"{window.drift_share:.3f}", mark, features)
    return table


def _loop_table(tally: Tally, plan: Plan) -> Table:
    table = Table(title="retraining (retrain-requests, ledger, model-updates)", expand=True)
    table.add_column("when")
    table.add_column("event")
    for request, wall in tally.requests:
        outcome = tally.outcomes.get(request.request_id)
        known = tally.fraud_labels_since(request.window_start)
        status = f"fraud labels since its window began: {known:,} of {plan.min_fraud_labels:,}"
        if known >= plan.min_fraud_labels:
            status += ": training"
        if outcome is not None:
            status = (
                f"v{outcome['model_version']} "
                f"{'promoted' if outcome['promoted'] else 'kept as challenger'} "
                f"(AP {_num(outcome.get('candidate_score'))} vs champion "
                f"{_num(outcome.get('champion_score'))})"
            )
        table.add_row(
            f"{wall:%H:%M:%S}",
            f"retrain request {request.request_id[:8]} for "
            f"{request.window_start:%m-%d %H:%M}..{request.window_end:%m-%d %H:%M}: {status}",
        )
    for update, wall in tally.updates:
        table.add_row(f"{wall:%H:%M:%S}", f"promoted v{update.model_version} ({update.model_uri})")
    if not tally.requests and not tally.updates:
        table.add_row("-", "no retrain request yet")
    return table


def _num(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


def _alerts_table(tally: Tally) -> Table:
    table = Table(title="latest alerts", expand=True)
    for column in ("transaction", "decision", "score", "model", "reasons"):
        table.add_column(column)
    for alert in tally.alerts:
        table.add_row(
            alert.transaction_id,
            alert.decision,
            f"{alert.score:.3f}",
            f"v{alert.version}",
            ", ".join(alert.reasons) or "-",
        )
    return table


# ---------------------------------------------------------------------------------------------
# The run


def phase_of(tally: Tally, plan: Plan) -> str:
    if tally.transactions < plan.warmup_transactions:
        return f"warm-up: sending {WARMUP_DAYS:g} simulated days"
    if tally.verdicts < plan.warmup_transactions:
        return "warm-up: scoring the backlog"
    return "live"


class Display:
    """The live dashboard, or periodic log lines when headless."""

    def __init__(self, console: Console, headless: bool) -> None:
        self.console = console
        self.headless = headless
        self.live: Live | None = None
        self.next_line = 0.0

    @contextmanager
    def running(self) -> Iterator[Display]:
        if self.headless:
            yield self
            return
        with Live(console=self.console, refresh_per_second=2, transient=False) as live:
            self.live = live
            try:
                yield self
            finally:
                self.live = None

    def update(self, tally: Tally, plan: Plan, phase: str, elapsed: float) -> None:
        if self.live is not None:
            self.live.update(dashboard(tally, plan, phase, elapsed))
        elif time.monotonic() >= self.next_line:
            self.next_line = time.monotonic() + 10
            log.info(
                "phase=%s elapsed=%.0f transactions=%d verdicts=%d model=v%s windows=%d "
                "drifted=%d requests=%d promotions=%d shadow=%s",
                phase,
                elapsed,
                tally.transactions,
                tally.verdicts,
                tally.last_version,
                len(tally.windows),
                sum(window.drifted for window in tally.windows),
                len(tally.requests),
                len(tally.updates),
                ",".join(f"{s.rule_id}:{s.hits}/{s.precision_text()}" for s in tally.shadow_rules())
                or "-",
            )


@contextmanager
def step(console: Console, headless: bool, description: str) -> Iterator[None]:
    """A spinner with the elapsed time for the long steps (the first champion takes a minute)."""
    log.info("step: %s", description)
    if headless:
        yield
        return
    columns = (SpinnerColumn(), TextColumn(description), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        progress.add_task(description)
        yield
    console.print(f"[green]done[/green] {description}")
