"""The Postgres sink's preflight tells refused credentials (exit 2) from an outage (exit 1)."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit, urlunsplit

import pytest
from pydantic import SecretStr

from shared.database.sink import PostgresSink
from shared.errors import ConfigError, SinkError
from shared.settings import Settings

from .helpers import run_context


def _check(settings: Settings) -> None:
    async def go() -> None:
        sink = PostgresSink(settings)
        try:
            await sink.check(run_context(settings))
        finally:
            await sink.aclose()

    asyncio.run(go())


def _with(url: str, *, user: str | None = None, database: str | None = None) -> Settings:
    parts = urlsplit(url)
    netloc = f"{user}@{parts.hostname}:{parts.port}" if user else parts.netloc
    path = f"/{database}" if database else parts.path
    return Settings(database_url=SecretStr(urlunsplit(parts._replace(netloc=netloc, path=path))))


def test_a_refused_role_or_database_is_a_config_error_at_once(pg_url: str) -> None:
    for settings in (_with(pg_url, user="evalmon_no_such_role"), _with(pg_url, database="evalmon_no_such_db")):
        started = time.monotonic()
        with pytest.raises(ConfigError, match="check DATABASE_URL") as caught:
            _check(settings)
        assert time.monotonic() - started < 1.0  # not retried
        assert caught.value.field == "DATABASE_URL"


def test_an_unreachable_server_stays_a_sink_error() -> None:
    settings = Settings(database_url=SecretStr("postgresql://u@127.0.0.1:1/db?connect_timeout=1"))
    with pytest.raises(SinkError, match="cannot reach Postgres"):
        _check(settings)
