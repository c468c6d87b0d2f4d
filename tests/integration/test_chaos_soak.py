"""The chaos soak (issue 17, item 4): 100,000 transactions through two workers while 32 seeded
faults strike (worker SIGKILL, also within its first 5 s, SIGTERM, a bug while scoring, broker
SIGKILL and restart, scale out to three and back in). The logic is in tests/chaos/; ``make chaos``
runs this test and prints its table. Its own broker on 19292/19293, never the shared 9092.

Settings through the environment: CHAOS_SEED, CHAOS_TRANSACTIONS, CHAOS_RATE, CHAOS_FAULTS, and
CHAOS_REPORT (where the JSON goes; default .local/chaos/report.json).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.chaos.report import findings, table, write_json
from tests.chaos.soak import SoakConfig, run_soak
from tests.kafka_helpers import REPO_ROOT


def config_from_env() -> SoakConfig:
    defaults = SoakConfig()
    return SoakConfig(
        seed=int(os.environ.get("CHAOS_SEED", defaults.seed)),
        transactions=int(os.environ.get("CHAOS_TRANSACTIONS", defaults.transactions)),
        rate=float(os.environ.get("CHAOS_RATE", defaults.rate)),
        faults=int(os.environ.get("CHAOS_FAULTS", defaults.faults)),
    )


@pytest.mark.slow
@pytest.mark.chaos
def test_chaos_soak_loses_nothing_and_keeps_state_exact(
    trained_model_dir: Path, tmp_path: Path
) -> None:
    result = run_soak(config_from_env(), trained_model_dir, tmp_path)
    report = Path(os.environ.get("CHAOS_REPORT", REPO_ROOT / ".local" / "chaos" / "report.json"))
    write_json(result, report)
    print(f"\n{table(result)}\n(JSON: {report}; worker logs: {tmp_path})")  # noqa: T201
    assert not findings(result), table(result)
