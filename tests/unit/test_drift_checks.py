"""The check: PSI, the Evidently report and the typed result read back from it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from drift.checks import (
    SCORE_COLUMN,
    CheckConfig,
    DriftResult,
    alert_rate,
    check_window,
    measure,
    report_prefix,
)
from drift.stats import PSI_FLOOR, psi
from drift.windows import DECISION_COLUMN, Span
from stream_app.features import FEATURE_NAMES
from stream_app.settings import DriftSettings
from stream_app.store import LocalStore
from tests.drift_data import (
    COLUMNS,
    CONFIG,
    REVIEW_THRESHOLD,
    samples,
    shifted,
)

SPAN = Span(datetime(2025, 2, 10, 12, tzinfo=UTC), datetime(2025, 2, 10, 12, 5, tzinfo=UTC))
# --- PSI ------------------------------------------------------------------------------------------


def test_psi_is_zero_on_identical_samples_and_grows_with_the_shift() -> None:
    rng = np.random.default_rng(0)
    reference = rng.lognormal(3.0, 1.0, 5_000)
    assert psi(reference, reference) == 0.0
    scores = [psi(reference, reference * factor) for factor in (1.1, 1.5, 3.0)]
    assert 0 < scores[0] < scores[1] < scores[2]


def test_psi_bins_discrete_values_and_gives_new_values_their_own_bin() -> None:
    reference = np.array([0.0] * 50 + [1.0] * 50)
    current = np.array([0.0] * 50 + [1.0] * 40 + [2.0] * 10)
    # Bins 0, 1, 2: reference 0.5, 0.5, floor; current 0.5, 0.4, 0.1.
    expected = (0.4 - 0.5) * np.log(0.4 / 0.5) + (0.1 - PSI_FLOOR) * np.log(0.1 / PSI_FLOOR)
    assert psi(reference, current) == pytest.approx(expected, rel=1e-12)


def test_psi_uses_reference_deciles_so_one_huge_value_does_not_hide_a_shift() -> None:
    rng = np.random.default_rng(1)
    reference = rng.lognormal(3.0, 1.0, 5_000)
    current = np.append(rng.lognormal(3.0, 1.0, 5_000) * 1.5, 1e9)
    assert psi(reference, current) > 0.1


# --- the check -----------------------------------------------------------------------------------


def test_same_distribution_window_is_not_drifted() -> None:
    reference, window = samples(seed=11)
    result = measure(window, reference, SPAN, CONFIG, REVIEW_THRESHOLD)
    assert result.drift_share < CONFIG.drift_share_threshold
    assert not result.drifted
    assert result.prediction.score < CONFIG.feature_threshold


def test_shifted_amounts_and_category_mix_are_drifted() -> None:
    reference, window = samples(seed=11)
    result = measure(shifted(window, seed=5), reference, SPAN, CONFIG, REVIEW_THRESHOLD)
    assert result.drifted
    assert {"amount_usd", "merchant_category_code"} <= set(result.drifted_features)
    assert result.drift_share >= CONFIG.drift_share_threshold


def test_evidently_report_gives_the_fast_path_numbers_and_lands_in_the_store(
    tmp_path: Path,
) -> None:
    reference, window = samples(seed=11)
    window = shifted(window, seed=5)
    fast = measure(window, reference, SPAN, CONFIG, REVIEW_THRESHOLD)
    store = LocalStore(tmp_path)
    checked = check_window(window, reference, SPAN, CONFIG, store, REVIEW_THRESHOLD)

    assert [(f.name, f.score, f.drifted) for f in checked.features] == [
        (f.name, f.score, f.drifted) for f in fast.features
    ]
    assert (checked.drift_share, checked.prediction) == (fast.drift_share, fast.prediction)
    prefix = "drift/reports/2025-02-10T12:05:00.000000Z/"
    assert report_prefix(SPAN) == prefix
    assert store.list(prefix) == [f"{prefix}report.html", f"{prefix}report.json"]
    assert checked.report_uri == store.uri(f"{prefix}report.json")
    assert b"<html" in store.get_bytes(f"{prefix}report.html")[:2000].lower()
    document = json.loads(store.get_bytes(f"{prefix}report.json"))
    assert document["summary"] == json.loads(json.dumps(checked.to_dict()))
    evidently = {
        metric["config"]["column"]: metric["value"] for metric in document["evidently"]["metrics"]
    }
    assert evidently == {name: fast_score(fast, name) for name in COLUMNS}


def fast_score(result: DriftResult, name: str) -> float:
    if name == SCORE_COLUMN:
        return result.prediction.score
    return next(feature.score for feature in result.features if feature.name == name)


def test_check_without_a_store_writes_nothing_and_has_no_report_uri() -> None:
    reference, window = samples(seed=11)
    result = check_window(window.head(1_000), reference, SPAN, CONFIG, None)
    assert result.report_uri is None
    assert result.rows == 1_000


def test_missing_columns_are_named() -> None:
    reference, window = samples(seed=11)
    with pytest.raises(ValueError, match="amount_usd"):
        measure(window.drop(columns="amount_usd"), reference, SPAN, CONFIG)


# --- alert rates and configuration ---------------------------------------------------------------


def test_alert_rate_uses_decisions_else_scores_against_the_review_threshold() -> None:
    frame = pd.DataFrame(
        {SCORE_COLUMN: [0.1, 0.6, 0.95, 0.2], DECISION_COLUMN: ["approve"] * 3 + ["block"]}
    )
    assert alert_rate(frame, 0.5) == 0.25  # decisions win: a rule blocked the 0.2
    scores_only = frame.drop(columns=DECISION_COLUMN)
    assert alert_rate(scores_only, 0.5) == 0.5
    assert alert_rate(scores_only, None) is None


def test_alert_rate_change_compares_window_decisions_with_reference_scores() -> None:
    reference, window = samples(seed=11)
    result = measure(window, reference, SPAN, CONFIG, REVIEW_THRESHOLD)
    expected_current = float(window[DECISION_COLUMN].isin(["review", "block"]).mean())
    expected_reference = float((reference[SCORE_COLUMN] >= REVIEW_THRESHOLD).mean())
    assert result.alert_rate.current == expected_current
    assert result.alert_rate.reference == expected_reference
    assert result.alert_rate.change == pytest.approx(expected_current - expected_reference)
    assert 0.005 < expected_reference < 0.2  # the stand-in model alerts on a few percent


def test_config_leaves_out_excluded_features_and_rejects_unknown_names() -> None:
    config = CheckConfig.from_settings(DriftSettings())
    assert not {"hour_of_day", "amount"} & set(config.features)
    assert len(config.features) == len(FEATURE_NAMES) - len(DriftSettings().excluded_features)
    assert config.columns[-1] == SCORE_COLUMN
    with pytest.raises(ValueError, match="no_such_feature"):
        CheckConfig.from_settings(DriftSettings(excluded_features=("no_such_feature",)))
    with pytest.raises(ValueError, match="no feature"):
        CheckConfig.from_settings(DriftSettings(excluded_features=FEATURE_NAMES))
