"""Make tests/ importable so `fakes.slack_server` resolves however pytest picks its rootdir."""

import sys
from pathlib import Path

TESTS_DIR = str(Path(__file__).resolve().parents[1])
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)


from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402
from fakes.slack_server import SlackServer  # noqa: E402


@pytest.fixture
def slack_server() -> Iterator[SlackServer]:
    with SlackServer() as server:
        yield server


# Real Postgres for incident state and history: the database suite's fixtures (a schema per test).
from database.conftest import migrated, pg_schema, pg_settings, pg_url  # noqa: E402, F401
