"""Every fraud scenario by name: the classic ones (:mod:`.fraud`) and the quiet ones
(:mod:`.subtle_fraud`). The configuration's rates and the drift events name these."""

from __future__ import annotations

from producers.simulator.fraud import CLASSIC_SCENARIOS, Scenario
from producers.simulator.subtle_fraud import habit_mimic, merchant_breach, quiet_card_testing
from producers.simulator.world import HABIT_MIMIC, MERCHANT_BREACH, QUIET_CARD_TESTING

SUBTLE_SCENARIOS: dict[str, Scenario] = {
    HABIT_MIMIC: habit_mimic,
    MERCHANT_BREACH: merchant_breach,
    QUIET_CARD_TESTING: quiet_card_testing,
}
SCENARIOS: dict[str, Scenario] = {**CLASSIC_SCENARIOS, **SUBTLE_SCENARIOS}
FRAUD_SCENARIOS: tuple[str, ...] = tuple(SCENARIOS)
