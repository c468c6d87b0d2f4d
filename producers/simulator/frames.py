"""The frames of the public formats and the rows as wire models, plus epoch-millisecond time.

The generator works in epoch milliseconds and data frames; the sinks and streams want
:class:`~stream_app.schemas.Transaction` and :class:`~stream_app.schemas.Label` models. The
conversions in both directions live here so that every mode converts the same way.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from producers.simulator.world import IntArray
from stream_app.schemas import Label, Transaction
from stream_app.store import LABEL_COLUMNS, TRANSACTION_COLUMNS

GROUND_TRUTH_COLUMNS: tuple[str, ...] = ("is_fraud", "scenario")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_ms(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(milliseconds=1)


def from_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


def as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def empty_transactions() -> pd.DataFrame:
    """A transactions frame with no rows and the documented dtypes."""
    frame = pd.DataFrame({name: pd.Series(dtype=object) for name in TRANSACTION_COLUMNS})
    frame["amount"] = frame["amount"].astype(np.float64)
    frame["timestamp"] = pd.Series(dtype="datetime64[ns, UTC]")
    frame["is_fraud"] = pd.Series(dtype=bool)
    frame["scenario"] = pd.Series(dtype=object)
    return frame


def empty_labels() -> pd.DataFrame:
    """A labels frame with no rows and the documented dtypes."""
    frame = pd.DataFrame({name: pd.Series(dtype=object) for name in LABEL_COLUMNS})
    frame["is_fraud"] = frame["is_fraud"].astype(bool)
    frame["labeled_at"] = pd.Series(dtype="datetime64[ns, UTC]")
    return frame


def concat_frames(frames: Sequence[pd.DataFrame], empty: pd.DataFrame) -> pd.DataFrame:
    """Concatenate, skipping empty frames (pandas warns about their dtypes) and never failing."""
    non_empty = [frame for frame in frames if len(frame)]
    if not non_empty:
        return empty
    return pd.concat(non_empty, ignore_index=True)


def epoch_ms(values: pd.Series) -> IntArray:
    return values.to_numpy(dtype="datetime64[ms]").astype(np.int64)


def frame_records(frame: pd.DataFrame, columns: Sequence[str]) -> list[dict[str, Any]]:
    return [
        dict(zip(columns, row, strict=True))
        for row in zip(*(frame[column].tolist() for column in columns), strict=True)
    ]


TRANSACTION_FIELDS = [name for name in TRANSACTION_COLUMNS if name != "timestamp"]
LABEL_FIELDS = [name for name in LABEL_COLUMNS if name != "labeled_at"]


def as_transactions(frame: pd.DataFrame) -> Iterator[Transaction]:
    for record, ms in zip(
        frame_records(frame, TRANSACTION_FIELDS), epoch_ms(frame["timestamp"]), strict=True
    ):
        yield Transaction.model_validate({**record, "timestamp": from_ms(int(ms))})


def as_labels(frame: pd.DataFrame) -> Iterator[Label]:
    for record, ms in zip(
        frame_records(frame, LABEL_FIELDS), epoch_ms(frame["labeled_at"]), strict=True
    ):
        yield Label.model_validate({**record, "labeled_at": from_ms(int(ms))})
