"""Which features a backtest's booster trains on: families, dropped names, constant features.

A file with only the required columns (transaction_id, timestamp, customer_id, merchant_id,
amount, is_fraud) gets fixed defaults for the other fields (``backtest.OPTIONAL_DEFAULTS``), so
the features built on those fields come out constant: the same value on every row. A booster
cannot split on a constant feature (every row falls on the same side), so such a feature
carries no signal; the backtest reports them per fold (:func:`constant_features`).

Dropping features (by name or by family) is what an ablation needs: train and score the same
folds without one family and compare. The families are the feature modules' own groups
(``stream_app.features``: context, customer, merchant), named here once.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

import numpy as np
import pandas as pd

from stream_app.features import (
    CONTEXT_FEATURES,
    CUSTOMER_FEATURES,
    FEATURE_NAMES,
    MERCHANT_FEATURES,
)

# Family name -> its features, in FEATURE_NAMES order (FEATURE_NAMES is their concatenation;
# tests/unit/test_feature_subsets.py checks every feature is in exactly one family).
FEATURE_FAMILIES: dict[str, tuple[str, ...]] = {
    "context": CONTEXT_FEATURES,
    "customer": CUSTOMER_FEATURES,
    "merchant": MERCHANT_FEATURES,
}


def family_features(families: Iterable[str]) -> tuple[str, ...]:
    """The features of the named families, in FEATURE_NAMES order."""
    names: set[str] = set()
    for family in families:
        if family not in FEATURE_FAMILIES:
            known = ", ".join(FEATURE_FAMILIES)
            raise ValueError(f"unknown feature family {family!r}; known: {known}")
        names.update(FEATURE_FAMILIES[family])
    return in_feature_order(names)


def in_feature_order(names: Collection[str]) -> tuple[str, ...]:
    """``names`` in FEATURE_NAMES order; refuses a name that is not a feature (a typo would
    otherwise drop nothing and make two runs look different when they are not)."""
    unknown = sorted(set(names) - set(FEATURE_NAMES))
    if unknown:
        raise ValueError(f"unknown feature(s): {', '.join(unknown)}")
    return tuple(name for name in FEATURE_NAMES if name in names)


def kept_features(dropped: Collection[str]) -> tuple[str, ...]:
    """FEATURE_NAMES without ``dropped``; at least one feature must remain."""
    kept = tuple(name for name in FEATURE_NAMES if name not in dropped)
    if not kept:
        raise ValueError("every feature is dropped; the booster needs at least one")
    return kept


def constant_features(frame: pd.DataFrame, names: Iterable[str] = FEATURE_NAMES) -> tuple[str, ...]:
    """The features among ``names`` whose value is the same on every row of ``frame``.

    Compared as the booster sees them (float32); features are never NaN (undefined values are
    ``MISSING``, -1). An empty frame has no constant features.
    """
    if frame.empty:
        return ()
    columns = list(names)
    values = frame[columns].to_numpy(dtype=np.float32)
    same = (values == values[0]).all(axis=0)
    return tuple(name for name, constant in zip(columns, same, strict=True) if constant)


def every_and_any(per_fold: Iterable[Collection[str]]) -> dict[str, list[str]]:
    """The features in every fold's list (intersection) and in any fold's (union)."""
    lists = [set(names) for names in per_fold]
    every = set.intersection(*lists) if lists else set()
    union = set.union(*lists) if lists else set()
    return {"every_fold": list(in_feature_order(every)), "any_fold": list(in_feature_order(union))}
