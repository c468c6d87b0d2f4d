"""Hot model swap: load a promoted model off the event loop, check it, hand it over between batches.

Who calls what:

- the ``model-updates`` consumer calls :meth:`ModelSwapper.request` for each update, and a timer
  calls :meth:`ModelSwapper.poll_registry` as a fallback for missed updates (it resolves the
  ``champion`` alias). Both only queue work on one loader thread and return at once, so neither
  blocks the event loop; both are safe to call from any thread.
- the loader thread downloads the bundle (:class:`ModelSource`, normally
  :class:`stream_app.model_store.ModelStore`), validates it and stages it.
- the scoring agent calls :meth:`ModelSwapper.take_ready` at the start of every batch. It hands
  over a staged bundle exactly once, so every batch is scored by a single model.

Validation, before a bundle is staged: its metadata names the requested model and version; its
feature list equals the one the worker computes (``FEATURE_NAMES``, same order); and its scores on
a canary matrix are finite, within [0, 1] and not all equal. Deliberately NOT required: agreement
with the serving model. A model retrained after drift may rank differently, and on a synthetic
canary agreement means little; the correlation with the serving model is logged for the operator.

Failure policy: a failed load or a refused model leaves the serving model in place, logs one
``key=value`` line and counts ``fraudstream_model_swaps_total{result=...}`` and, with the finer
why, ``fraudstream_model_load_failures_total{reason=...}``. A version refused for its content
(``invalid``/``unsafe``) is not retried by the poll; ``load_failed`` (registry down, network) is.
A registry that stays unreachable is polled and counted every time but logged once per streak
and then at most every ``POLL_FAILURE_LOG_SECONDS``, plus one line when it answers again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Histogram

from stream_app import features
from stream_app.model import ModelBundle, ModelLoadError
from stream_app.model_store import UnsafeArtifactError, registry_uri
from stream_app.schemas import ModelUpdate
from stream_app.worker.model_checks import (
    FAILURE_REASONS,
    FailureReason,
    FloatMatrix,
    Key,
    one_line,
    score_correlation,
    synthetic_canary,
    validation_problem,
)

log = logging.getLogger(__name__)

SwapResult = Literal["success", "load_failed", "unsafe", "invalid"]
SWAP_RESULTS: tuple[SwapResult, ...] = ("success", "load_failed", "unsafe", "invalid")
RESULT_OF_REASON: dict[FailureReason, SwapResult] = {
    "registry_error": "load_failed",
    "corrupt_artifact": "load_failed",
    "unsafe_artifact": "unsafe",
    "wrong_identity": "invalid",
    "feature_mismatch": "invalid",
    "bad_scores": "invalid",
}
POLL_FAILURE_LOG_SECONDS = 300.0  # an unreachable registry: one log line per 5 minutes at most
LOAD_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class ModelSource(Protocol):
    """Where bundles come from; :class:`stream_app.model_store.ModelStore` in the worker."""

    def load(self, uri: str) -> ModelBundle: ...

    def alias_version(self, name: str, alias: str) -> str: ...


@dataclass(frozen=True)
class SwapMetrics:
    swaps: Counter
    failures: Counter
    load_seconds: Histogram


def create_swap_metrics(registry: CollectorRegistry | None = None) -> SwapMetrics:
    """The swap metrics on ``registry`` (the worker's, so they share ``/metrics``)."""
    registry = registry if registry is not None else CollectorRegistry()
    swaps = Counter(
        "fraudstream_model_swaps",
        "Model swap attempts by result: success, load_failed, unsafe (pickle or unknown file "
        "type) or invalid (wrong identity, feature list or canary scores).",
        ["result"],
        registry=registry,
    )
    for result in SWAP_RESULTS:
        swaps.labels(result)  # export zeros, so alerts on increase() see the first failure
    failures = Counter(
        "fraudstream_model_load_failures",
        "Model versions not swapped in (the serving model stays), by reason: registry_error, "
        "corrupt_artifact, unsafe_artifact, wrong_identity, feature_mismatch, bad_scores.",
        ["reason"],
        registry=registry,
    )
    for reason in FAILURE_REASONS:
        failures.labels(reason)
    load_seconds = Histogram(
        "fraudstream_model_load_seconds",
        "Time to download and load a model version, whatever the outcome.",
        buckets=LOAD_BUCKETS,
        registry=registry,
    )
    return SwapMetrics(swaps=swaps, failures=failures, load_seconds=load_seconds)


def _key(bundle: ModelBundle | None) -> Key | None:
    return None if bundle is None else (bundle.metadata.name, bundle.metadata.version)


class FailureStreak:
    """Consecutive failures of a recurring action (the registry poll), for rate-limited logging.

    :meth:`failed` says how many failures to report when a log line is due (the first of a
    streak, then at most once per ``interval`` seconds) and None otherwise; :meth:`succeeded`
    ends the streak and returns its length, so the recovery can be logged once.
    """

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self.failures = 0
        self._unreported = 0
        self._last_logged: float | None = None

    def failed(self) -> int | None:
        self.failures += 1
        self._unreported += 1
        now = self.clock()
        if self._last_logged is not None and now - self._last_logged < self.interval:
            return None
        self._last_logged, reported, self._unreported = now, self._unreported, 0
        return reported

    def succeeded(self) -> int:
        ended, self.failures, self._unreported, self._last_logged = self.failures, 0, 0, None
        return ended


# ---------------------------------------------------------------------------------------------
# The swapper


class ModelSwapper:
    """Loads and checks new model versions on one background thread; the agent takes them.

    ``serving`` is the model in service at start. ``registry_model`` (the registered model name)
    enables :meth:`poll_registry`; without it polling does nothing. ``executor`` defaults to a
    single ``model-swap`` thread, which keeps loads sequential (one booster thread per worker);
    tests inject their own.
    """

    def __init__(
        self,
        serving: ModelBundle,
        source: ModelSource,
        metrics: SwapMetrics,
        *,
        canary: FloatMatrix | None = None,
        feature_names: tuple[str, ...] = features.FEATURE_NAMES,
        registry_model: str | None = None,
        alias: str = "champion",
        executor: Executor | None = None,
        poll_log_seconds: float = POLL_FAILURE_LOG_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.metrics = metrics
        self.canary = synthetic_canary() if canary is None else canary.astype(np.float32)
        self.feature_names = feature_names
        self.registry_model = registry_model
        self.alias = alias
        self._owns_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(1, thread_name_prefix="model-swap")
        self._lock = threading.Lock()
        self._serving = serving
        self._ready: ModelBundle | None = None
        self._pending: set[Key] = set()
        self._refused: set[Key] = set()
        self._polling = False
        self._futures: set[Future[None]] = set()
        self._poll_failures = FailureStreak(poll_log_seconds, clock)  # loader thread only

    @property
    def serving_version(self) -> Key:
        """(name, version) of the model the agent was last handed (or started with)."""
        return (self._serving.metadata.name, self._serving.metadata.version)

    # -- event-loop side: cheap, never blocking -------------------------------------------------

    def request(self, update: ModelUpdate) -> None:
        """Start loading ``update``'s version, unless it is serving, staged or already loading."""
        key = (update.model_name, update.model_version)
        if self._claim(key, skip_refused=False):
            log.info("model swap requested model=%s version=%s", *key)
            self._submit(self._load, key, update.model_uri)
        else:
            log.debug("model swap ignored model=%s version=%s: serving or in progress", *key)

    def poll_registry(self) -> None:
        """Resolve ``models:/<registry_model>@<alias>`` in the background and load it if it is
        not the serving version. For a Faust timer; a poll still running makes this a no-op."""
        if self.registry_model is None:
            return
        with self._lock:
            if self._polling:
                return
            self._polling = True
        self._submit(self._poll, self.registry_model)

    def take_ready(self) -> ModelBundle | None:
        """The validated new bundle, exactly once; None when there is none (almost always)."""
        if self._ready is None:  # unlocked read: a bundle staged just now waits one batch
            return None
        with self._lock:
            bundle, self._ready = self._ready, None
            if bundle is None:
                return None
            previous, self._serving = self.serving_version, bundle
        self.metrics.swaps.labels("success").inc()
        log.info(
            "model swapped model=%s version=%s previous_version=%s",
            bundle.metadata.name,
            bundle.metadata.version,
            previous[1],
        )
        return bundle

    # -- lifecycle and tests ---------------------------------------------------------------------

    def wait_idle(self, timeout: float) -> bool:
        """Block until queued loads and polls are done; False if ``timeout`` passed first.
        For tests and orderly shutdown, never on the event loop."""
        with self._lock:
            futures = list(self._futures)
        _done, not_done = wait_for(futures, timeout=timeout)
        return not not_done

    def close(self) -> None:
        """Drop queued work. A download in progress still finishes, and Python joins the thread
        at exit, so a hung registry can delay exit by MLflow's HTTP timeout and retries."""
        if self._owns_executor:
            self._executor.shutdown(wait=False, cancel_futures=True)

    # -- bookkeeping shared by both threads ------------------------------------------------------

    def _claim(self, key: Key, *, skip_refused: bool) -> bool:
        """Mark ``key`` as loading, unless it is serving, staged, loading (or refused before)."""
        with self._lock:
            busy = key in (self.serving_version, _key(self._ready)) or key in self._pending
            if busy or (skip_refused and key in self._refused):
                return False
            self._pending.add(key)
            return True

    def _submit(self, job: Callable[..., None], *args: object) -> None:
        try:
            future = self._executor.submit(job, *args)
        except RuntimeError:  # executor shut down: the worker is stopping
            log.warning("model swap skipped: the loader is shut down")
            return
        with self._lock:
            self._futures.add(future)
        future.add_done_callback(self._forget)

    def _forget(self, future: Future[None]) -> None:
        with self._lock:
            self._futures.discard(future)

    # -- loader thread ---------------------------------------------------------------------------

    def _poll(self, name: str) -> None:
        try:
            version = self.source.alias_version(name, self.alias)
        except Exception as exc:  # any registry failure: keep serving, count, try next poll
            self._poll_failed(name, one_line(exc))
            return
        finally:
            with self._lock:
                self._polling = False
        failed_polls = self._poll_failures.succeeded()
        if failed_polls:
            log.info(
                "model registry answers again alias=%s failed_polls=%d", self.alias, failed_polls
            )
        key = (name, version)
        if self._claim(key, skip_refused=True):
            log.info("registry alias=%s points at model=%s version=%s", self.alias, *key)
            self._load(key, registry_uri(name, version))

    def _load(self, key: Key, uri: str) -> None:
        started = time.perf_counter()
        try:
            bundle = self.source.load(uri)
        except UnsafeArtifactError as exc:
            self._fail(key, "unsafe_artifact", one_line(exc))
            return
        except ModelLoadError as exc:  # the files arrived but are not a usable bundle
            self._fail(key, "corrupt_artifact", one_line(exc))
            return
        except Exception as exc:  # download or network error: the old model keeps serving
            self._fail(key, "registry_error", one_line(exc))
            return
        finally:
            elapsed = time.perf_counter() - started
            self.metrics.load_seconds.observe(elapsed)
        self._validate_and_stage(key, bundle, elapsed)

    def _validate_and_stage(self, key: Key, bundle: ModelBundle, load_seconds: float) -> None:
        refusal = validation_problem(bundle, key, self.feature_names, self.canary)
        if refusal is not None:
            self._fail(key, refusal.reason, one_line(refusal.detail))
            return
        correlation = self._correlation_with_serving(bundle)
        with self._lock:
            self._pending.discard(key)
            self._refused.discard(key)
            self._ready = bundle
        log.info(
            "model ready model=%s version=%s load_seconds=%.2f canary_rows=%d "
            "canary_correlation_with_serving=%s",
            *key,
            load_seconds,
            len(self.canary),
            "n/a" if correlation is None else f"{correlation:.3f}",
        )

    def _correlation_with_serving(self, bundle: ModelBundle) -> float | None:
        """For the log only: how alike the two models rank the canary rows."""
        try:
            return score_correlation(
                bundle.predict(self.canary), self._serving.predict(self.canary)
            )
        except Exception:  # a serving model on another layout cannot score the canary: no number
            return None

    def _count_failure(self, reason: FailureReason) -> SwapResult:
        result = RESULT_OF_REASON[reason]
        self.metrics.swaps.labels(result).inc()
        self.metrics.failures.labels(reason).inc()
        return result

    def _fail(self, key: Key, reason: FailureReason, detail: str) -> None:
        result = self._count_failure(reason)
        with self._lock:
            self._pending.discard(key)
            if result in ("invalid", "unsafe"):
                self._refused.add(key)
        log.warning(
            "model swap failed, keeping the serving model: model=%s version=%s result=%s "
            'reason=%s detail="%s" serving_version=%s',
            *key,
            result,
            reason,
            detail,
            self.serving_version[1],
        )

    def _poll_failed(self, name: str, detail: str) -> None:
        """Counted every time; logged at the start of a streak and then at most every
        ``poll_log_seconds``, so a registry down for a day is not a line per poll."""
        self._count_failure("registry_error")
        failed_since_last_line = self._poll_failures.failed()
        if failed_since_last_line is None:
            return
        log.warning(
            "model registry poll failed, keeping the serving model: model=%s version=@%s "
            'result=load_failed reason=registry_error detail="%s" serving_version=%s '
            "failed_polls=%d failed_since_last_line=%d (next line in %.0f s at the earliest)",
            name,
            self.alias,
            detail,
            self.serving_version[1],
            self._poll_failures.failures,
            failed_since_last_line,
            self._poll_failures.interval,
        )
