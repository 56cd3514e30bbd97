"""URL handling without a server: Neon-style options kept, driver suffix accepted, secrets redacted."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from shared.database.connection import database_url, describe_error, redact, schema_name
from shared.errors import ConfigError
from shared.settings import Settings

NEON = "postgresql://alex:AbC123xyz@ep-cool-darkness-123456.eu-central-1.aws.neon.tech/neondb?sslmode=require&channel_binding=require&options=endpoint%3Dep-cool-darkness-123456"


def test_neon_url_options_are_passed_through_untouched() -> None:
    assert database_url(Settings(database_url=SecretStr(NEON))) == NEON


def test_sqlalchemy_style_scheme_is_accepted() -> None:
    url = "postgresql+psycopg://u@h:5432/db?sslmode=require"
    assert database_url(Settings(database_url=SecretStr(url))) == "postgresql://u@h:5432/db?sslmode=require"


def test_errors_never_show_the_url_or_password() -> None:
    settings = Settings(database_url=SecretStr(NEON))
    message = f"could not connect using {NEON} (password=AbC123xyz)"
    cleaned = redact(message, settings)
    assert "AbC123xyz" not in cleaned and "alex" not in cleaned
    other = describe_error(RuntimeError("dsn postgres://bob:pw123@db.example.com/x failed"))
    assert "pw123" not in other and "RuntimeError" in other


def test_schema_names_are_checked() -> None:
    assert schema_name(Settings(evalmon_db_schema="analytics_v2")) == "analytics_v2"
    with pytest.raises(ConfigError, match="EVALMON_DB_SCHEMA"):
        schema_name(Settings(evalmon_db_schema='x"; DROP TABLE y; --'))
