"""Booster hyper-parameters from a TOML or JSON file and command-line flags.

Precedence, lowest first: ``TrainConfig``'s defaults, the file, the flags. The file is flat
(``learning_rate = 0.05``), or holds the keys under a ``[train]`` table / ``"train"`` object so
one file can carry other sections later. Keys are ``TrainConfig``'s field names; an unknown key
or a value of the wrong type is refused with its name, because a typo that silently falls back
to a default would make two runs look comparable when they are not.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from training.train import TrainConfig

INT_KEYS = frozenset(
    {"seed", "nthread", "num_boost_round", "early_stopping_rounds", "max_depth", "max_bin"}
)
OPTIONAL_KEYS = frozenset({"scale_pos_weight"})  # None or "auto": derived from the class ratio
KNOWN_KEYS = frozenset(field.name for field in fields(TrainConfig))


def read_config_file(path: Path) -> dict[str, Any]:
    """The raw key/value pairs of a ``.toml`` or ``.json`` file."""
    suffix = path.suffix.lower()
    if suffix == ".toml":
        data: Any = tomllib.loads(path.read_text())
    elif suffix == ".json":
        data = json.loads(path.read_text())
    else:
        raise ValueError(f"{path.name}: expected a .toml or .json file")
    if not isinstance(data, dict):
        raise ValueError(f"{path.name}: expected a table of hyper-parameters")
    section = data.get("train", data)
    if not isinstance(section, dict):
        raise ValueError(f"{path.name}: 'train' must be a table of hyper-parameters")
    return section


def _checked(key: str, value: Any) -> Any:
    if key not in KNOWN_KEYS:
        raise ValueError(f"unknown hyper-parameter {key!r}; known: {', '.join(sorted(KNOWN_KEYS))}")
    if key in OPTIONAL_KEYS and value in (None, "auto"):
        return None
    if isinstance(value, bool):  # bool is an int in Python; never a valid hyper-parameter here
        raise ValueError(f"{key}: expected a number, got {value!r}")
    if key in INT_KEYS:
        if not isinstance(value, int):
            raise ValueError(f"{key}: expected an integer, got {value!r}")
        return value
    if not isinstance(value, int | float):
        raise ValueError(f"{key}: expected a number, got {value!r}")
    return float(value)


def merged_train_config(
    file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    base: TrainConfig | None = None,
) -> TrainConfig:
    """``base`` (default ``TrainConfig()``), then the file's values, then non-None overrides."""
    values: dict[str, Any] = {}
    if file is not None:
        values.update({key: _checked(key, value) for key, value in read_config_file(file).items()})
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = _checked(key, value)
    return replace(base or TrainConfig(), **values)


def describe(config: TrainConfig) -> str:
    """One line for the report: ``key=value`` in field order."""
    return " ".join(f"{key}={value}" for key, value in config.as_params().items())
