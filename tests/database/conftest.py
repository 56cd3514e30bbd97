"""Real Postgres for the database tests: one fresh schema per test, dropped afterwards.

The server is 127.0.0.1:5432 (trust auth, database `test`); `EVALMON_TEST_DATABASE_URL` overrides.
With CI=true a missing server fails the suite; elsewhere these tests skip and say how to start it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from pydantic import SecretStr

from shared.settings import Settings

TEST_URL = os.environ.get("EVALMON_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
START_HINT = "start Postgres: pg_ctlcluster 15 main start"


def _server_error() -> str | None:
    try:
        with psycopg.connect(TEST_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    return None


@pytest.fixture(scope="session")
def pg_url() -> str:
    error = _server_error()
    if error is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Postgres is required in CI and is not reachable ({error})")
        pytest.skip(f"Postgres not reachable ({error}); {START_HINT}")
    return TEST_URL


@pytest.fixture
def pg_schema(pg_url: str) -> Iterator[str]:
    """A fresh, empty schema name for one test; dropped (with everything in it) afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield schema
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def pg_settings(pg_url: str, pg_schema: str) -> Settings:
    """Settings pointing at the test server and this test's schema (not migrated)."""
    return Settings(database_url=SecretStr(pg_url), evalmon_db_schema=pg_schema)


@pytest.fixture
def migrated(pg_settings: Settings) -> Settings:
    """Like pg_settings, with every migration applied."""
    from shared.database.migrate import migrate

    migrate(pg_settings)
    return pg_settings
