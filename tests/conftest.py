"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_real_services(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests talk only to 127.0.0.1: drop any real service credentials from the environment."""
    for name in list(os.environ):
        if name.startswith(("LANGFUSE_", "SLACK_", "OPENAI_")) or name == "DATABASE_URL":
            monkeypatch.delenv(name, raising=False)
