"""The retraining service: each ``retrain-requests`` message retrains once, one at a time.

A request goes through, in order:

1. **The ledger.** ``training/requests/<request_id>.json`` in the object store holds the outcome
   of every handled request. Found: nothing to do (the same request twice trains once).
2. **The registry.** A FINISHED MLflow run whose parameter ``retrain_request_id`` is this id
   means a previous attempt trained and gated, then died before writing the ledger: its
   outcome is rebuilt from the registry instead of training again.
3. **Readiness.** Drift means the world changed at ``window_start``; a model retrained before
   the changed world's fraud has been reported learns nothing new. So the request waits until
   ``min_fraud_labels`` fraud labels, known now, exist in the lake for transactions at or after
   ``window_start`` (event time). Until then it stays uncommitted and is checked again after
   ``retry_seconds``, doubling up to ``retry_max_seconds``; requests behind it wait their turn.
   A lake that cannot be split yet (too short, a split with one class) counts as not ready too.
4. **Training** on the lake as of now, gated against the champion on the same test split
   (``training.registry.publish``, the path ``fraudstream-train train`` runs).
5. **Announcing.** If the champion alias moved, a ``ModelUpdate`` for
   ``models:/<name>/<version>`` goes to ``model-updates`` and is flushed.
6. **Recording** the outcome in the ledger, then committing the offset.

Why the ledger lives in the object store rather than only in MLflow: it also records requests
handled without training (duplicates, recoveries) and is one GET per request; the run parameter
covers the crash window between publishing and recording. Infrastructure errors (store, MLflow,
broker) propagate: the process exits without committing and a restart replays the request,
which steps 1 and 2 make cheap.

Training runs on a worker thread while the main thread keeps polling: a retrain can outlast
``max.poll.interval.ms``, and requests arriving meanwhile are queued behind it.

The modules follow those steps: :mod:`.job` (how a model is trained and gated, shared with
``fraudstream-train train``), :mod:`.ledger` (step 1), :mod:`.registry_runs` (steps 2 and 4 on
MLflow), :mod:`.handler` (steps 1-6 for one request, every dependency injected, so it is tested
without Kafka or MLflow) and :mod:`.consumer` (the Kafka shell: queue, worker thread, commits,
backoff, and the wiring of the real parts).
"""
