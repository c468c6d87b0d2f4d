"""Verdicts as the hot path holds them: plain rows, encoded by pydantic without a model each.

The wire schema stays :class:`stream_app.schemas.Verdict`. Building one pydantic model per
verdict (validating its features dict) and dumping it was about a fifth of the core's time,
so the core keeps each verdict as a :class:`VerdictRow` and hands a plain dict to a
``TypeAdapter`` over a TypedDict with the model's fields, in the model's order, with the same
types: pydantic's Rust serializer then writes the bytes ``Verdict.to_bytes`` writes (same float,
datetime and string encoders) without validating or building anything. A hand-written
Python encoder was tried first and measured half as fast as the model (float repr per value).
tests/unit/test_verdicts.py holds every byte to the model's output over many varied verdicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import chain, product
from typing import NotRequired

from pydantic import TypeAdapter
from typing_extensions import TypedDict  # pydantic needs this one before Python 3.12

from stream_app.features import FEATURE_NAMES
from stream_app.schemas import SCHEMA_VERSION, Decision, Reason, Verdict


class VerdictFields(TypedDict):
    """:class:`Verdict`'s fields in its order; optional ones left out when None."""

    schema_version: int
    transaction_id: str
    customer_id: str
    score: float
    decision: str
    model_name: str
    model_version: str
    reasons: tuple[Reason, ...]
    event_time: datetime
    scored_at: datetime
    latency_ms: float
    features: NotRequired[dict[str, float]]
    shadow_score: NotRequired[float]
    shadow_model_version: NotRequired[str]
    rules_version: NotRequired[str]
    shadow_rule_hits: NotRequired[tuple[str, ...]]  # always set, but after the optional ones


_ENCODER: TypeAdapter[VerdictFields] = TypeAdapter(VerdictFields)


# Not frozen: a frozen dataclass sets each field through object.__setattr__, measurably slower
# for one object per transaction. Nothing mutates a row after the core built it.
@dataclass(slots=True)
class VerdictRow:
    """One verdict, with the attributes of :class:`Verdict`; ``to_model`` gives the model."""

    transaction_id: str
    customer_id: str
    score: float
    decision: Decision
    model_name: str
    model_version: str
    reasons: tuple[Reason, ...]
    event_time: datetime
    scored_at: datetime
    latency_ms: float
    feature_values: list[float] | None  # in FEATURE_NAMES order
    shadow_score: float | None = None
    shadow_model_version: str | None = None
    rules_version: str | None = None
    shadow_rule_hits: tuple[str, ...] = ()

    @property
    def features(self) -> dict[str, float] | None:
        if self.feature_values is None:
            return None
        return dict(zip(FEATURE_NAMES, self.feature_values, strict=True))

    def to_model(self) -> Verdict:
        return Verdict(
            schema_version=SCHEMA_VERSION,
            transaction_id=self.transaction_id,
            customer_id=self.customer_id,
            score=self.score,
            decision=self.decision,
            model_name=self.model_name,
            model_version=self.model_version,
            reasons=self.reasons,
            event_time=self.event_time,
            scored_at=self.scored_at,
            latency_ms=self.latency_ms,
            features=self.features,
            shadow_score=self.shadow_score,
            shadow_model_version=self.shadow_model_version,
            rules_version=self.rules_version,
            shadow_rule_hits=self.shadow_rule_hits,
        )

    def to_bytes(self) -> bytes:
        """The bytes of ``self.to_model().to_bytes()``, without the model."""
        fields: VerdictFields = {
            "schema_version": SCHEMA_VERSION,
            "transaction_id": self.transaction_id,
            "customer_id": self.customer_id,
            "score": self.score,
            "decision": self.decision,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "reasons": self.reasons,
            "event_time": self.event_time,
            "scored_at": self.scored_at,
            "latency_ms": self.latency_ms,
        }
        if self.feature_values is not None:
            fields["features"] = dict(zip(FEATURE_NAMES, self.feature_values, strict=True))
        if self.shadow_score is not None:
            fields["shadow_score"] = self.shadow_score
        if self.shadow_model_version is not None:
            fields["shadow_model_version"] = self.shadow_model_version
        if self.rules_version is not None:
            fields["rules_version"] = self.rules_version
        fields["shadow_rule_hits"] = self.shadow_rule_hits  # last: the serializer keeps dict order
        return _ENCODER.dump_json(fields, exclude_none=True)  # as WireModel.to_bytes


# The batch encoder. Per verdict, the TypeAdapter call above still costs ~14 us (a dict built
# and walked per row). Here the numbers and times of a whole batch go through pydantic in one
# call per column, so they are written by the same Rust encoders as the model's fields, and each
# verdict is then assembled from those pieces and a precomputed template of its shape.
_FLOATS: TypeAdapter[list[float]] = TypeAdapter(list[float])
_TIMES: TypeAdapter[list[datetime]] = TypeAdapter(list[datetime])
_REASONS: TypeAdapter[tuple[Reason, ...]] = TypeAdapter(tuple[Reason, ...])
_HITS: TypeAdapter[tuple[str, ...]] = TypeAdapter(tuple[str, ...])
Shape = tuple[bool, bool, bool, bool]  # features, shadow score, shadow version, rules
_JSON_QUOTED = ('"', "\\")


def _plain(text: str) -> bool:
    """Text JSON writes as it is between two quotes, with no newline (the batch's row end)."""
    return text.isascii() and text.isprintable() and not any(c in text for c in _JSON_QUOTED)


def _template(features: bool, shadow_score: bool, shadow_version: bool, rules: bool) -> str:
    """The JSON of one verdict shape, with a %s for each value, in the model's field order."""
    head = (
        f'{{"schema_version":{SCHEMA_VERSION},"transaction_id":"%s","customer_id":"%s",'
        '"score":%s,"decision":"%s","model_name":"%s","model_version":"%s","reasons":%s,'
        '"event_time":"%s","scored_at":"%s","latency_ms":%s'
    )
    optional = []
    if features:
        optional.append('"features":{' + ",".join(f'"{name}":%s' for name in FEATURE_NAMES) + "}")
    if shadow_score:
        optional.append('"shadow_score":%s')
    if shadow_version:
        optional.append('"shadow_model_version":"%s"')
    if rules:
        optional.append('"rules_version":"%s"')
    return ",".join([head, *optional, '"shadow_rule_hits":%s}'])


assert all(_plain(name) and "%s" not in name for name in FEATURE_NAMES)  # noqa: S101 - templates
# Each shape's template as the literal text around its values, the last piece ending the row.
_PIECES = {
    shape: (_template(*shape) + "\n").split("%s") for shape in product((False, True), repeat=4)
}


def _float_texts(values: list[float]) -> list[str]:
    """pydantic's JSON of each float: numbers hold no comma, so one dump splits exactly."""
    if not values:
        return []
    return _FLOATS.dump_json(values).decode("ascii")[1:-1].split(",")


def _time_texts(values: list[datetime]) -> list[str]:
    """pydantic's JSON of each datetime, without quotes: ISO text holds no quote or comma."""
    if not values:
        return []
    return _TIMES.dump_json(values).decode("ascii")[2:-2].split('","')


def _text_of(row: VerdictRow) -> str:
    return "".join(
        (
            row.transaction_id,
            row.customer_id,
            row.model_name,
            row.model_version,
            row.shadow_model_version or "",
            row.rules_version or "",
        )
    )


def _all_text(rows: Sequence[VerdictRow]) -> str:
    """Every row's text in one string, a column at a time (a call per row cost more)."""
    return "".join(
        [
            "".join([row.transaction_id for row in rows]),
            "".join([row.customer_id for row in rows]),
            "".join([row.model_name for row in rows]),
            "".join([row.model_version for row in rows]),
            "".join([row.shadow_model_version or "" for row in rows]),
            "".join([row.rules_version or "" for row in rows]),
        ]
    )


def encode_verdicts(rows: Sequence[VerdictRow]) -> list[bytes]:
    """``[row.to_bytes() for row in rows]``, byte for byte, with a few pydantic calls per batch.

    Rows with text JSON must escape (quotes, backslashes, control or non-ASCII characters) are
    encoded one by one by :meth:`VerdictRow.to_bytes`. The others are grouped by shape (which
    optional fields they have; one group in practice) and each group written by one join of
    its template's pieces and its values, laid out column by column.
    """
    if _plain(_all_text(rows)):  # the usual case: one check for the batch
        plain = list(range(len(rows)))
    else:
        plain = [index for index, row in enumerate(rows) if _plain(_text_of(row))]
    encoded: list[bytes | None] = [None] * len(rows)
    groups: dict[Shape, list[int]] = {}
    shapes = [
        (
            row.feature_values is not None,
            row.shadow_score is not None,
            row.shadow_model_version is not None,
            row.rules_version is not None,
        )
        for row in rows
    ]
    for index in plain:
        groups.setdefault(shapes[index], []).append(index)
    for shape, indices in groups.items():
        group = [rows[index] for index in indices]
        for index, payload in zip(indices, _encode_group(shape, group), strict=True):
            encoded[index] = payload
    pairs = zip(rows, encoded, strict=True)
    return [row.to_bytes() if payload is None else payload for row, payload in pairs]


def _encode_group(shape: Shape, rows: list[VerdictRow]) -> list[bytes]:
    """Verdicts of one shape whose text is plain. Every value is a str: ids as they are,
    numbers, times, reasons and hits as pydantic writes them. None of them holds a newline
    (plain text has no control character, pydantic's JSON escapes them), so the batch's text,
    each row ended by a newline, splits back into the rows exactly."""
    has_features, has_shadow_score, has_shadow_version, has_rules = shape
    columns: list[list[str]] = [
        [row.transaction_id for row in rows],
        [row.customer_id for row in rows],
        _float_texts([row.score for row in rows]),
        [row.decision for row in rows],
        [row.model_name for row in rows],
        [row.model_version for row in rows],
        [
            _REASONS.dump_json(row.reasons, exclude_none=True).decode() if row.reasons else "[]"
            for row in rows
        ],
    ]
    times = _time_texts([time for row in rows for time in (row.event_time, row.scored_at)])
    columns += [times[0::2], times[1::2], _float_texts([row.latency_ms for row in rows])]
    if has_features:
        width = len(FEATURE_NAMES)
        values = _float_texts(list(chain.from_iterable(row.feature_values or () for row in rows)))
        columns += [values[column::width] for column in range(width)]
    if has_shadow_score:
        shadow_scores = [row.shadow_score for row in rows if row.shadow_score is not None]
        columns.append(_float_texts(shadow_scores))  # not `or 0.0`: -0.0 would become 0.0
    if has_shadow_version:
        columns.append([row.shadow_model_version or "" for row in rows])
    if has_rules:
        columns.append([row.rules_version or "" for row in rows])
    columns.append(
        [_HITS.dump_json(r.shadow_rule_hits).decode() if r.shadow_rule_hits else "[]" for r in rows]
    )
    # One list, row by row, of the template's literal pieces and the values between them,
    # laid out a whole column at a time; one join writes the batch (a %-format of the repeated
    # template measured four times slower than the join).
    pieces = _PIECES[shape]
    stride, count = len(pieces) + len(columns), len(rows)
    parts = [""] * (count * stride)
    for position, piece in enumerate(pieces):
        parts[2 * position :: stride] = [piece] * count
    for position, column in enumerate(columns):
        parts[2 * position + 1 :: stride] = column
    return "".join(parts).encode().split(b"\n")[:-1]  # each piece list ends with a newline
