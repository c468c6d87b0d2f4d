"""When drift becomes a retrain request: a pure state machine, plus the drift flag in the store.

A window counts as drifted when its drift share reaches the threshold (decided by the check).
``consecutive`` drifted windows in a row raise one :class:`RetrainRequest` covering them; a clean
window resets the count. After a request nothing new is raised for ``cooldown`` (a retrain takes
time, and until the new champion serves, every window still looks drifted): windows are still
checked and reported, the streak keeps growing, and the first drifted window after the cooldown
raises the next request if the streak is long enough.

A request consumes the streak. Its id is a UUID5 of the bounds of the windows it covers, so a
replay of the same verdicts (same windows) yields the same id and the training consumer, which
handles each request_id once, does not retrain twice.

The cooldown runs on an injected clock (wall time by default): a replay of a week of verdicts at
full speed must not turn into a week's worth of retrain requests. It survives restarts through
the drift flag (:func:`read_flag`), whose ``requested_at`` seeds the next trigger.

The streak survives restarts too (issue 17): the monitor writes it to the store
(:func:`write_streak`) after every checked window and before committing that window's offsets,
and a restarted monitor restores it (:func:`read_streak`). A window can therefore be checked
again after a restart (written, not yet committed): a drifted window that ends no later than the
streak's last one is that replay, and is not counted twice.
"""

from __future__ import annotations

import logging
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict

from drift.checks import DriftResult
from drift.windows import Span
from stream_app.schemas import RetrainRequest
from stream_app.settings import DriftSettings
from stream_app.store import ObjectNotFoundError, ObjectStore

log = logging.getLogger(__name__)

FLAG_KEY = "drift/flag.json"
STREAK_KEY = "drift/streak.json"
# Fixed namespace for request ids; changing it would change every id a replay produces.
REQUEST_NAMESPACE = uuid.UUID("5f0d3c1e-8d52-5a4b-9a51-6a2f1f3b7c00")

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def request_id(span: Span) -> str:
    """Deterministic: the same window bounds always give the same id."""
    bounds = f"{span.start.astimezone(UTC).isoformat()}/{span.end.astimezone(UTC).isoformat()}"
    return str(uuid.uuid5(REQUEST_NAMESPACE, bounds))


@dataclass(frozen=True)
class TriggerPolicy:
    consecutive: int
    cooldown: timedelta

    def __post_init__(self) -> None:
        if self.consecutive < 1 or self.cooldown < timedelta(0):
            raise ValueError(f"need consecutive >= 1 and a non-negative cooldown: {self}")

    @classmethod
    def from_settings(cls, settings: DriftSettings) -> TriggerPolicy:
        return cls(settings.consecutive_windows, timedelta(seconds=settings.cooldown_seconds))


class StreakWindow(BaseModel):
    """What a request needs of one drifted window of the streak."""

    model_config = ConfigDict(frozen=True)

    start: datetime
    end: datetime
    drifted_features: tuple[str, ...]
    drift_share: float
    report_uri: str | None = None

    @classmethod
    def of(cls, result: DriftResult) -> StreakWindow:
        span = result.span
        return cls(
            start=span.start,
            end=span.end,
            drifted_features=result.drifted_features,
            drift_share=result.drift_share,
            report_uri=result.report_uri,
        )


class StreakState(BaseModel):
    """The streak as stored: its length, its last ``consecutive`` windows, and the reference
    (model) it was measured against, since a new reference restarts it."""

    length: int
    windows: tuple[StreakWindow, ...]
    reference: str | None = None


class RetrainTrigger:
    """Feed every checked window in order; a request comes back when one is due."""

    def __init__(
        self,
        policy: TriggerPolicy,
        clock: Clock = utc_now,
        last_request_at: datetime | None = None,
    ) -> None:
        self.policy = policy
        self.clock = clock
        self.last_request_at = last_request_at
        self._streak: deque[StreakWindow] = deque(maxlen=policy.consecutive)
        self._streak_length = 0
        self.reference: str | None = None  # the reference the streak was measured against

    @property
    def streak(self) -> int:
        """Drifted windows in a row so far (not reset by the cooldown)."""
        return self._streak_length

    def cooling_down(self, now: datetime) -> bool:
        last = self.last_request_at
        return last is not None and now - last < self.policy.cooldown

    def observe(self, result: DriftResult) -> RetrainRequest | None:
        if not result.drifted:
            self.reset()
            return None
        if self._streak and result.span.end <= self._streak[-1].end:
            log.info("window end=%s already in the streak: not counted again", result.span.end)
            return None
        self._streak.append(StreakWindow.of(result))
        self._streak_length += 1
        now = self.clock()
        if self._streak_length < self.policy.consecutive:
            return None
        if self.cooling_down(now):
            log.info("drift persists but retrain requests cool down until=%s", self._until())
            return None
        return self._request(now)

    def reset(self) -> None:
        """Forget the streak (a clean window, or a new reference); the cooldown stays."""
        self._streak.clear()
        self._streak_length = 0

    def state(self) -> StreakState:
        return StreakState(
            length=self._streak_length, windows=tuple(self._streak), reference=self.reference
        )

    def restore(self, state: StreakState) -> None:
        """Continue a stored streak (a restarted monitor)."""
        self._streak.clear()
        self._streak.extend(state.windows)
        self._streak_length = state.length
        self.reference = state.reference

    def _until(self) -> str:
        last = self.last_request_at
        return "-" if last is None else (last + self.policy.cooldown).isoformat()

    def _request(self, now: datetime) -> RetrainRequest:
        windows = list(self._streak)
        span = Span(windows[0].start, windows[-1].end)
        drifted = sorted({name for window in windows for name in window.drifted_features})
        request = RetrainRequest(
            request_id=request_id(span),
            requested_at=now,
            window_start=span.start,
            window_end=span.end,
            drifted_features=tuple(drifted),
            drift_share=windows[-1].drift_share,
            report_uri=windows[-1].report_uri,
        )
        self.last_request_at = now
        self.reset()
        return request


def write_flag(store: ObjectStore, request: RetrainRequest) -> str:
    """The drift flag: the latest request, for tools that read the store rather than Kafka."""
    store.put_bytes(FLAG_KEY, request.to_bytes())
    return store.uri(FLAG_KEY)


def read_flag(store: ObjectStore) -> RetrainRequest | None:
    try:
        return RetrainRequest.model_validate_json(store.get_bytes(FLAG_KEY))
    except ObjectNotFoundError:
        return None


def write_streak(store: ObjectStore, state: StreakState) -> None:
    store.put_bytes(STREAK_KEY, state.model_dump_json().encode())


def read_streak(store: ObjectStore) -> StreakState | None:
    try:
        return StreakState.model_validate_json(store.get_bytes(STREAK_KEY))
    except ObjectNotFoundError:
        return None
