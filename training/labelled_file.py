"""A labelled transaction file as the backtest reads it: required columns, defaults, types.

Missing optional transaction fields are filled with fixed defaults (``OPTIONAL_DEFAULTS``) so
the feature code runs on files with only the required columns; the features built on them are
then constant and carry no signal (the backtest lists them: ``training.feature_subsets``).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from training.dataset import LABELED_AT, TARGET

REQUIRED_COLUMNS = ("transaction_id", "timestamp", "customer_id", "merchant_id", "amount", TARGET)
OPTIONAL_DEFAULTS = {
    "merchant_category": "unknown",
    "transaction_type": "purchase",
    "device_id": "unknown",
    "geo_location": "unknown",
    "currency": "USD",
}
ID_COLUMNS = ("transaction_id", "customer_id", "merchant_id", "device_id")
TRUE_STRINGS = frozenset({"1", "true", "t", "yes", "y"})


def _as_bool(values: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        return values.fillna(0).astype(float).ne(0)
    return values.astype("string").str.strip().str.lower().isin(TRUE_STRINGS)


def _as_utc(values: pd.Series) -> pd.Series:
    """ISO strings (naive = UTC) or, for numbers, Unix seconds."""
    if pd.api.types.is_numeric_dtype(values):
        return pd.to_datetime(values, unit="s", utc=True)
    return pd.to_datetime(values, utc=True, format="ISO8601")


def normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Check required columns, fill optional ones, fix types, order by time."""
    missing = [column for column in REQUIRED_COLUMNS if column not in frame.columns]
    if missing:
        raise ValueError(f"missing required columns: {', '.join(missing)}")
    filled = frame.assign(
        **{
            column: frame[column].fillna(default) if column in frame.columns else default
            for column, default in OPTIONAL_DEFAULTS.items()
        }
    )
    typed = filled.assign(
        **{column: filled[column].astype(str) for column in ID_COLUMNS},
        timestamp=_as_utc(filled["timestamp"]),
        amount=pd.to_numeric(filled["amount"], errors="raise").astype(float),
        **{TARGET: _as_bool(filled[TARGET])},
    )
    return typed.sort_values("timestamp", kind="stable").reset_index(drop=True)


def read_labelled_file(path: Path) -> pd.DataFrame:
    """A CSV or Parquet file of labelled transactions, normalised (see ``normalise``)."""
    suffixes = [suffix.lower() for suffix in path.suffixes]
    if ".parquet" in suffixes or ".pq" in suffixes:
        frame = pd.read_parquet(path)
    elif ".csv" in suffixes:
        frame = pd.read_csv(path, dtype=dict.fromkeys(ID_COLUMNS, "string"))
    else:
        raise ValueError(f"{path.name}: expected a .csv or .parquet file")
    return normalise(frame)


def delayed_labels(frame: pd.DataFrame, delay_days: int) -> pd.DataFrame:
    """One label per transaction, arriving ``delay_days`` after it (the backtest's assumption)."""
    return pd.DataFrame(
        {
            "transaction_id": frame["transaction_id"],
            TARGET: frame[TARGET],
            LABELED_AT: frame["timestamp"] + pd.Timedelta(days=delay_days),
            "source": "backtest",
            "customer_id": frame["customer_id"],
            "merchant_id": frame["merchant_id"],
        }
    )
