"""The Postgres sink's preflight tells refused credentials (exit 2) from an outage (exit 1); one poisoned
value never fails the run's publish."""

from __future__ import annotations

import asyncio
import secrets
import time
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from pydantic import SecretStr

from shared.database.sink import PostgresSink
from shared.errors import ConfigError, SinkError
from shared.evaluation.results import EvaluationResult
from shared.monitoring.publishing import PublishOutcome, publish_results
from shared.monitoring.run_context import RunContext
from shared.settings import Settings

from .helpers import item, results, row, run_context


def _check(settings: Settings) -> None:
    async def go() -> None:
        sink = PostgresSink(settings)
        try:
            await sink.check(run_context(settings))
        finally:
            await sink.aclose()

    asyncio.run(go())


def _publish(settings: Settings, run: RunContext, res: EvaluationResult) -> PublishOutcome:
    """Publish `res` through a checked Postgres sink, as a run does."""

    async def go() -> PublishOutcome:
        sink = PostgresSink(settings)
        try:
            await sink.check(run)
            return await publish_results(run, res, [sink])
        finally:
            await sink.aclose()

    return asyncio.run(go())


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


def test_a_poisoned_run_is_stored_whole_with_the_text_repaired(migrated: Settings) -> None:
    run = run_context(migrated)
    bad = item("bad", actual_output="odd \ud800 answer", metadata={"k": "v\x00"})
    res = results(row(bad, "m1", explanation="why \udfff"), row(item("good")))

    outcome = _publish(migrated, run, res)
    assert outcome.errors == [] and outcome.repaired_text == 3
    assert sorted(outcome.recordable) == [("bad", "m1"), ("good", "m1")]
    assert migrated.database_url is not None
    with psycopg.connect(migrated.database_url.get_secret_value()) as conn:
        conn.execute(f'SET search_path TO "{migrated.evalmon_db_schema}"')
        stored = conn.execute("SELECT actual_output FROM evaluation_items WHERE item_id = 'bad'").fetchone()
        explanation = conn.execute("SELECT explanation FROM evaluation_results WHERE item_id = 'bad'").fetchone()
    assert stored == ("odd \ufffd answer",) and explanation == ("why \ufffd",)


def test_a_row_postgres_refuses_fails_alone_and_the_rest_is_stored(migrated: Settings) -> None:
    run = run_context(migrated)
    huge_id = secrets.token_hex(6000)  # 12,000 random characters: too large for the key's btree index
    good = [item(f"good-{i}") for i in range(12)]
    res = results(*(row(it, metric) for it in [*good[:5], item(huge_id), *good[5:]] for metric in ("m1", "m2")))

    started = time.monotonic()
    outcome = _publish(migrated, run, res)
    assert time.monotonic() - started < 20
    assert len(outcome.errors) == 1 and "2 row(s) refused" in outcome.errors[0]
    assert sorted(outcome.recordable) == sorted((it.id, m) for it in good for m in ("m1", "m2"))
    assert migrated.database_url is not None
    with psycopg.connect(migrated.database_url.get_secret_value()) as conn:
        conn.execute(f'SET search_path TO "{migrated.evalmon_db_schema}"')
        stored = conn.execute("SELECT count(*), count(DISTINCT item_id) FROM evaluation_results").fetchone()
    assert stored == (24, 12)


def test_an_absurd_token_count_is_stored_capped_not_wrapped(migrated: Settings) -> None:
    """Binary COPY into an `integer` column wraps 2**40 to 0; the sink caps it at the column's maximum."""
    run = run_context(migrated)
    res = results(row(item("tokens"), input_tokens=2**40, output_tokens=7))

    assert _publish(migrated, run, res).errors == []
    assert migrated.database_url is not None
    with psycopg.connect(migrated.database_url.get_secret_value()) as conn:
        conn.execute(f'SET search_path TO "{migrated.evalmon_db_schema}"')
        stored = conn.execute("SELECT input_tokens, output_tokens FROM evaluation_results").fetchone()
    assert stored == (2**31 - 1, 7)
