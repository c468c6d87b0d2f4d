"""The README's configuration table is generated from the settings class and must match it."""

from __future__ import annotations

from stream_app.settings_doc import BEGIN_MARKER, END_MARKER, settings_table
from tests.kafka_helpers import REPO_ROOT


def test_readme_settings_table_is_current() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    documented = readme.split(BEGIN_MARKER)[1].split(END_MARKER)[0].strip()
    assert documented == settings_table(), (
        "README configuration table is stale: run `python -m stream_app.settings_doc --write`"
    )


def test_every_setting_is_one_table_row() -> None:
    """A docstring wrapped over lines must not spill out of its row (Markdown ends it there)."""
    _header, separator, *rows = settings_table().splitlines()
    assert separator == "|---|---|---|"
    assert all(row.startswith("| `FRAUDSTREAM_") and row.endswith(" |") for row in rows)
