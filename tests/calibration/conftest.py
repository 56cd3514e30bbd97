"""The loopback fake Langfuse and the Postgres fixtures of tests/database, for calibration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.settings import Settings
from tests.database.conftest import migrated, pg_schema, pg_settings, pg_url  # noqa: F401 - fixtures
from tests.fakes.langfuse_server import FakeLangfuse


@pytest.fixture
def fake() -> Iterator[FakeLangfuse]:
    with FakeLangfuse() as server:
        yield server


@pytest.fixture
def lf_settings(fake: FakeLangfuse) -> Settings:
    return Settings(
        langfuse_base_url=fake.url,
        langfuse_public_key=fake.public_key,
        langfuse_secret_key=fake.secret_key,
        langfuse_timeout_s=10,
    )
