"""Drift monitoring: windowed checks of the scored stream against the champion's reference sample.

Not built yet (see the drift issue): this package will consume ``fraud-scores``, run Evidently
checks per window and publish retrain requests.
"""
