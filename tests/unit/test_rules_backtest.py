"""The rule backtest: hits, precision, recall and alert change, checked against the frame itself."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from producers.simulator import SimulatorConfig, generate_history
from stream_app.features import offline_features
from stream_app.rules.backtest import backtest, build_history, format_table, read_rules
from stream_app.rules.model import RULE_ADAPTER


@pytest.fixture(scope="module")
def simulated() -> tuple[pd.DataFrame, pd.DataFrame]:
    return generate_history(SimulatorConfig(seed=3, n_customers=300, n_merchants=500), days=4)


def test_each_rule_is_measured_against_the_labels(
    simulated: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    transactions, labels = simulated
    frame = transactions.sort_values("timestamp", kind="stable").reset_index(drop=True)
    busiest_device = str(frame["device_id"].value_counts().index[0])
    rules = [
        RULE_ADAPTER.validate_python(
            {"rule_id": "big", "kind": "amount_limit", "usd_above": 400, "mode": "shadow"}
        ),
        RULE_ADAPTER.validate_python(
            {
                "rule_id": "dev",
                "kind": "deny_list",
                "field": "device_id",
                "values": [busiest_device],
            }
        ),
    ]
    history = build_history(transactions, labels, model=None)
    stats = {row.name: row for row in backtest(rules, history)}

    amount_usd = offline_features(frame, labels)["amount_usd"].astype(float)
    fraud = frame["is_fraud"].astype(bool)
    big = amount_usd > 400
    assert stats["big"].hits == int(big.sum()) > 0
    assert stats["big"].precision == pytest.approx((big & fraud).sum() / big.sum())
    assert stats["big"].recall == pytest.approx((big & fraud).sum() / fraud.sum())
    assert stats["big"].alerts_change == int(big.sum())  # the model alone approves everything
    on_device = frame["device_id"] == busiest_device
    assert stats["dev"].hits == int(on_device.sum()) > 0
    both = big | on_device
    assert stats["all rules (any fired)"].hits == int(both.sum())
    assert stats["model alone (its alerts)"].hits == 0
    assert stats["big"].hits_per_day == pytest.approx(big.sum() / history.days)
    table = format_table(list(stats.values()), history)
    assert "big" in table and f"{len(frame):,} transactions" in table


def test_a_bad_line_in_the_rules_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "rules.jsonl"
    good = {"rule_id": "a", "kind": "amount_limit", "usd_above": 1}
    path.write_text(f'# comment\n{json.dumps(good)}\n\n{{"rule_id": "b"}}\n')
    with pytest.raises(ValueError, match=r"rules.jsonl:4: schema_violation"):
        read_rules(path)
    path.write_text(json.dumps(good) + "\n")
    assert [rule.rule_id for rule in read_rules(path)] == ["a"]
