"""Render every setting as a Markdown table row: variable, default, description.

The README's configuration section is this output (``python -m stream_app.settings_doc``), and a
unit test fails when the two differ, so the documentation cannot go stale.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from stream_app.settings import ENV_PREFIX, Settings

BEGIN_MARKER = "<!-- settings-table:begin -->"
END_MARKER = "<!-- settings-table:end -->"


def _rows(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, str, str]]:
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _rows(annotation, f"{prefix}{name.upper()}__")
        else:
            yield f"{prefix}{name.upper()}", _default(info), info.description or ""


def _default(info: FieldInfo) -> str:
    value = info.get_default(call_default_factory=True)
    return "(unset)" if value is None else f"`{value}`"


def settings_table() -> str:
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    lines += [
        f"| `{var}` | {default} | {meaning} |"
        for var, default, meaning in _rows(Settings, ENV_PREFIX)
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(settings_table() + "\n")
