"""Prompt-manager fixtures: the shared fake Langfuse, driven through the real SDK."""

import sys
from pathlib import Path

TESTS_DIR = str(Path(__file__).resolve().parents[1])
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)

import os  # noqa: E402
import socket  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402

import psycopg  # noqa: E402
import pytest  # noqa: E402
from fakes.langfuse_prompts import FakeLangfusePrompts as FakeLangfuse  # noqa: E402

from shared.settings import Settings  # noqa: E402

PG_URL = os.environ.get("EVALMON_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def langfuse() -> Iterator[FakeLangfuse]:
    with FakeLangfuse() as fake:
        yield fake


def lf_settings(fake: FakeLangfuse | None = None, **extra: object) -> Settings:
    """Settings for the fake (or for a closed port when `fake` is None: Langfuse unreachable)."""
    if fake is None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        base, public, secret = f"http://127.0.0.1:{port}", f"pk-lf-down-{uuid.uuid4().hex[:8]}", "sk-lf-down"
    else:
        base, public, secret = fake.url, fake.public_key, fake.secret_key
    values: dict[str, object] = {
        "langfuse_base_url": base,
        "langfuse_public_key": public,
        "langfuse_secret_key": secret,
        "langfuse_timeout_s": 5,
        "database_url": None,
        "prompt_cache_stamp": None,
    }
    values.update(extra)
    return Settings(_env_file=None, **values)


@pytest.fixture(scope="session")
def pg_url() -> str:
    try:
        with psycopg.connect(PG_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Postgres is required in CI and is not reachable ({type(exc).__name__})")
        pytest.skip("Postgres not reachable at 127.0.0.1:5432; start it: pg_ctlcluster 15 main start")
    return PG_URL


@pytest.fixture
def pg_schema(pg_url: str) -> Iterator[str]:
    """A schema of this test's own for the prompt-stamp table; dropped afterwards."""
    schema = f"t_prompts_{uuid.uuid4().hex[:10]}"
    yield schema
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
