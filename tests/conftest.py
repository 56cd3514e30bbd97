"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.settings import Settings
from tests.fakes.langfuse_server import FakeLangfuse

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_real_services(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests talk only to 127.0.0.1: drop any real service credentials from the environment."""
    for name in list(os.environ):
        if name.startswith(("LANGFUSE_", "SLACK_", "OPENAI_")) or name == "DATABASE_URL":
            monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _no_report_charts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Charts cost ~0.4 s per run and only the report tests look at them (tests/reporting, the Slack
    report) set EVALMON_REPORT_CHARTS=1 again."""
    monkeypatch.setenv("EVALMON_REPORT_CHARTS", "0")


@pytest.fixture
def fake() -> Iterator[FakeLangfuse]:
    """A loopback Langfuse that follows the published API (tests/fakes/langfuse_server.py)."""
    with FakeLangfuse() as server:
        yield server


@pytest.fixture
def lf_settings(fake: FakeLangfuse) -> Settings:
    """Settings pointing the official SDK at the fake."""
    return Settings(
        langfuse_base_url=fake.url,
        langfuse_public_key=fake.public_key,
        langfuse_secret_key=fake.secret_key,
        langfuse_timeout_s=10,
    )
