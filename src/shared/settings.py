"""Settings from the environment: repo .env, then the implementation's .env, then real env vars.

Later sources win. Secrets are `SecretStr`, so printing settings never shows them.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def repo_root() -> Path:
    """The project directory: where the command runs (cron and make run from the repo root)."""
    return Path.cwd()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", env_file_encoding="utf-8")

    langfuse_public_key: str | None = None
    langfuse_secret_key: SecretStr | None = None
    langfuse_base_url: str = Field(
        default="https://cloud.langfuse.com",
        validation_alias=AliasChoices("LANGFUSE_BASE_URL", "LANGFUSE_HOST"),
    )
    langfuse_timeout_s: float = 20.0
    langfuse_webhook_secret: SecretStr | None = None
    database_url: SecretStr | None = None
    evalmon_db_schema: str = "public"  # Postgres schema of evalmon's tables (tests use one per test)
    slack_bot_token: SecretStr | None = None
    slack_api_url: str | None = None
    slack_alert_channel: str | None = None
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    webhook_notify_url: str | None = None
    prompt_cache_stamp: str | None = None


def load_settings(implementation_dir: Path | None = None) -> Settings:
    """Build settings for one implementation (its .env sits beside its config/ directory)."""
    env_files: list[Path] = [repo_root() / ".env"]
    if implementation_dir is not None:
        env_files.append(implementation_dir / ".env")
    existing = tuple(str(p) for p in env_files if p.is_file())
    return Settings(_env_file=existing or None)
