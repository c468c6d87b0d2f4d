"""``make demo``: the closed loop on this machine, watched live, ending in a measured summary.

Starts, as separate processes (see ``deploy/stack.py``): an MLflow server, the worker, the lake
writer, the training consumer, the drift monitor and the simulator. On the first run it trains
the first champion on simulated history. Then it streams simulated transactions with delayed
labels and a drift part-way through, and shows what happens: verdicts, alerts and their
reasons, drift windows, the retrain request the drift raises, the new model's promotion and the
worker's switch to it. It stops every process it started on exit and on Ctrl-C, prints a
summary (``--json FILE`` also writes it) and exits non-zero if a transaction it produced got
neither a verdict nor a dead letter.

Rules (docs/rules.md): before the worker starts, the demo puts a shadow velocity rule on
``fraud-rules`` with ``fraudstream-rules put`` (``deploy/demo/shadow.py``); the live view and
the summary show, per shadow rule, its hits so far and its precision among the hits whose label
has arrived ("n/a" until one has).

How the loop closes in a few minutes: the live part spans LIVE_DAYS simulated days (the
population is sized from RATE x DURATION), after a warm-up of WARMUP_DAYS days sent at full
speed so the worker's 30-day features are warm. Labels arrive 30 minutes to 6 hours after
their transaction (simulated time, history and stream alike). The drift starts DRIFT_DAY days
into the live part. The drift monitor is started at the first live verdicts scored in time (its
group's offsets are committed there first) and gets windows of about 0.4 simulated days, K=2
and a cooldown longer than the run (one request per run). The trainer gets split lengths and a
fraud-label threshold computed from this very simulation (:func:`make_plan`): it trains about
READY_AFTER_DRIFT_DAYS after the drift, with validation and test splits after the drift.

The first champion is a quick launch model: LAUNCH_ROUNDS boosting rounds on 45 days of
history. Against a fully trained first champion, the champion/challenger gate on a simulated
holdout of a few dozen frauds is close to a coin toss at this scale (measured over seeds while
building this), so the demo would show a promotion only sometimes; the retrain (the trainer's
own settings: up to 300 rounds, early stopping) on two months of lake data, the changed world
included, reliably beats the launch model on the same post-drift holdout.

Every run starts from the same state, so a second run works like the first:

- topics: the configured topics (the default names) are deleted and recreated empty on the
  local broker (the demo refuses a remote one); consumer groups and the worker's app id carry
  the run id, and the worker's changelog topics are deleted at the end;
- lake, drift reports, drift flag, retrain ledger: a fresh store per run under
  ``<home>/runs/<run id>/store`` (the three latest runs are kept), with 45 days of history
  written in-process before the stream's first day (same simulated world as the stream, other
  days of it, so no transaction id repeats);
- registry: MLflow keeps every version; the first champion is trained once per simulated
  population and tagged ``demo_baseline``; each run moves the ``champion`` alias back to it
  (recorded in the alias history like any move) and exports it to the worker's model folder.
"""
