"""Report tests look at the charts: draw them (tests/conftest.py turns them off elsewhere)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _report_charts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVALMON_REPORT_CHARTS", "1")
