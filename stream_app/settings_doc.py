"""Render every setting as a Markdown table row: variable, default, description.

The configuration page, ``docs/configuration.md``, holds this output between two markers
(``python -m stream_app.settings_doc --write`` refreshes it), and a unit test fails when the two
differ, so the documentation cannot go stale.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from stream_app.settings import ENV_PREFIX, Settings

BEGIN_MARKER = "<!-- settings-table:begin -->"
END_MARKER = "<!-- settings-table:end -->"
# Relative to the repository root, where `python -m stream_app.settings_doc --write` is run.
DOC_PATH = Path("docs/configuration.md")


def _rows(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, str, str]]:
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _rows(annotation, f"{prefix}{name.upper()}__")
        else:
            yield f"{prefix}{name.upper()}", _default(info), _one_line(info.description or "")


def _one_line(description: str) -> str:
    """A docstring wrapped over several lines would break the Markdown table row."""
    return " ".join(description.split())


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


def write_into(page: Path) -> None:
    """Replace the table between the page's markers with the current one."""
    text = page.read_text()
    head, rest = text.split(BEGIN_MARKER, 1)
    _, tail = rest.split(END_MARKER, 1)
    page.write_text(f"{head}{BEGIN_MARKER}\n{settings_table()}\n{END_MARKER}{tail}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write_into(DOC_PATH)
    else:
        sys.stdout.write(settings_table() + "\n")
