"""Named simulator configurations: ``default`` (the demo's easy world) and ``realistic``.

``default`` is :class:`~producers.simulator.config.SimulatorConfig` as it is: six loud fraud
scenarios, exact labels 1-10 days late; a model tells fraud apart almost perfectly (backtest AUC
about 0.99). ``realistic`` is a world where that is hard, so that a better feature or training
choice shows in the metrics (docs/simulator.md has the numbers it was tuned to):

- most fraud mimics the customer's habits (:func:`~.subtle_fraud.habit_mimic`), some is quiet
  card testing near home; the loud classic scenarios remain, rarer;
- breached merchants charge ordinary-looking amounts for days
  (:func:`~.subtle_fraud.merchant_breach`);
- labels are noisy (some frauds never reported, some legitimate online purchases charged back)
  and arrive 1 day to 5 weeks late;
- a few fraudsters with few devices do all of it (:class:`~.config.Fraudsters`).
"""

from __future__ import annotations

from datetime import timedelta

from producers.simulator.config import FraudRates, Fraudsters, LabelPolicy, SimulatorConfig

REALISTIC = SimulatorConfig(
    fraud_rates=FraudRates(
        card_testing=0.03,
        account_takeover=0.1,
        compromised_merchant=0.0,  # replaced by the days-long merchant_breach
        stolen_card_spree=0.06,
        impossible_travel=0.25,
        high_value=0.4,
        habit_mimic=0.25,
        merchant_breach=0.012,
        quiet_card_testing=0.3,
    ),
    labels=LabelPolicy(
        delay_min=timedelta(days=1),
        delay_max=timedelta(days=35),
        missed_fraud=0.08,
        false_chargeback=0.0005,
    ),
    fraudsters=Fraudsters(devices=30, device_reuse=0.9),
)
PRESETS: dict[str, SimulatorConfig] = {"default": SimulatorConfig(), "realistic": REALISTIC}
DEFAULT_PRESET = "default"
