"""docs/configuration.md's settings table is generated from the settings class and must match it."""

from __future__ import annotations

from stream_app.settings_doc import BEGIN_MARKER, DOC_PATH, END_MARKER, settings_table
from tests.kafka_helpers import REPO_ROOT


def test_configuration_page_settings_table_is_current() -> None:
    page = (REPO_ROOT / DOC_PATH).read_text()
    documented = page.split(BEGIN_MARKER)[1].split(END_MARKER)[0].strip()
    assert documented == settings_table(), (
        f"{DOC_PATH} settings table is stale: run `python -m stream_app.settings_doc --write`"
    )


def test_every_setting_is_one_table_row() -> None:
    """A docstring wrapped over lines must not spill out of its row (Markdown ends it there)."""
    _header, separator, *rows = settings_table().splitlines()
    assert separator == "|---|---|---|"
    assert all(row.startswith("| `FRAUDSTREAM_") and row.endswith(" |") for row in rows)
