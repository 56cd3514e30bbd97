"""The Postgres fixtures of tests/database, for calibration tests (the fake Langfuse is in tests/conftest.py)."""

from __future__ import annotations

from tests.database.conftest import migrated, pg_schema, pg_settings, pg_url  # noqa: F401 - fixtures
