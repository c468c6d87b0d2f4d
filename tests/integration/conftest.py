"""Fixtures shared by the tests that run worker processes under faults (test_faults,
test_exit70, test_takeover)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.fault_helpers import Workers

log = logging.getLogger(__name__)


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Workers]:
    """Worker processes a test starts; every one still running is stopped afterwards."""
    started = Workers(tmp_path)
    yield started
    started.stop_all()


@pytest.fixture
def measured(record_property: Callable[[str, object], None]) -> Iterator[dict[str, float]]:
    """Numbers a test measured: logged as one ``measured ...`` line (``-o log_cli=true``) and
    kept in the JUnit report."""
    numbers: dict[str, float] = {}
    yield numbers
    for name, value in numbers.items():
        record_property(name, value)
    log.warning("measured %s", " ".join(f"{k}={v:g}" for k, v in numbers.items()))
