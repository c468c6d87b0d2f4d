"""Drift monitoring: windows of the scored stream against the serving model's reference sample.

The pure core, each part testable on its own:

- :mod:`drift.windows`: cut verdicts into windows (by count or event time);
- :mod:`drift.stats`: the per-feature statistic (PSI over the reference's deciles);
- :mod:`drift.checks`: one window against the reference with Evidently, typed result and
  HTML + JSON reports in the object store;
- :mod:`drift.trigger`: consecutive drifted windows -> one retrain request, with a cooldown.

The shell: :mod:`drift.reference` (the sample, from MLflow or a file), :mod:`drift.metrics`
(Prometheus), :mod:`drift.monitor` (the Kafka loop) and :mod:`drift.cli` (``fraudstream-drift``).
"""
