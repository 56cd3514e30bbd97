"""Migrations: idempotent, transactional, visible in status; the `evalmon db` commands."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from shared.database import migrate as migrate_module
from shared.database.cli import db_app
from shared.database.migrate import available, migrate, status
from shared.settings import Settings

EXPECTED_TABLES = {
    "evalmon_migrations",
    "evaluation_runs",
    "evaluation_items",
    "evaluation_results",
    "scored_items",
    "item_claims",
    "run_leases",
}


def _tables(url: str, schema: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", [schema]
        ).fetchall()
    return {str(r[0]) for r in rows}


def test_migrate_twice_is_a_noop_the_second_time(pg_settings: Settings, pg_url: str, pg_schema: str) -> None:
    first = migrate(pg_settings)
    assert [m.label for m in first] == [m.label for m in available()]
    assert EXPECTED_TABLES | {"evaluation_results_with_items"} <= _tables(pg_url, pg_schema)
    assert migrate(pg_settings) == []
    with psycopg.connect(pg_url) as conn:
        count = conn.execute(f'SELECT count(*) FROM "{pg_schema}".evalmon_migrations').fetchone()
    assert count == (len(available()),)


def test_status_lists_pending_then_applied(pg_settings: Settings) -> None:
    before = status(pg_settings)
    assert before and all(not s.applied for s in before)
    migrate(pg_settings)
    after = status(pg_settings)
    assert [s.migration.label for s in after] == [s.migration.label for s in before]
    assert all(s.applied and not s.changed_since_applied for s in after)


def test_concurrent_migrations_apply_each_file_once(pg_settings: Settings) -> None:
    outcomes: list[object] = []

    def worker() -> None:
        try:
            outcomes.append(len(migrate(pg_settings)))
        except Exception as exc:  # pragma: no cover - the assertion below reports it
            outcomes.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes, key=str) == sorted([0, 0, len(available())], key=str)


def _cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str], *args: str) -> tuple[int, str, str]:
    monkeypatch.chdir(tmp_path)  # no repo .env gets read
    for name in ("DATABASE_URL", "EVALMON_DB_SCHEMA"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(db_app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_cli_migrate_then_status(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pg_url: str, pg_schema: str) -> None:
    env = {"DATABASE_URL": pg_url, "EVALMON_DB_SCHEMA": pg_schema}
    code, out, _ = _cli(monkeypatch, tmp_path, env, "status")
    assert code == 0 and "pending  0001_initial" in out and "run `evalmon db migrate`" in out
    code, out, _ = _cli(monkeypatch, tmp_path, env, "migrate")
    assert code == 0 and "applied 0001_initial" in out
    code, out, _ = _cli(monkeypatch, tmp_path, env, "migrate")
    assert code == 0 and "no pending migrations" in out
    code, out, _ = _cli(monkeypatch, tmp_path, env, "status")
    assert code == 0 and "applied  0001_initial" in out and "0 pending" in out


def test_cli_without_database_url_exits_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    code, _, err = _cli(monkeypatch, tmp_path, {}, "migrate")
    assert code == 2
    assert "DATABASE_URL: is not set" in err


def test_cli_never_prints_the_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    secret_url = "postgresql://alice:s3cr3t-pw@127.0.0.1:1/nowhere?sslmode=disable&connect_timeout=2"
    code, out, err = _cli(monkeypatch, tmp_path, {"DATABASE_URL": secret_url}, "migrate")
    assert code == 1
    assert "migration failed" in err
    assert "s3cr3t-pw" not in out + err and "alice:" not in out + err


def test_0002_keeps_the_newest_result_of_each_pair_and_makes_that_the_key(
    pg_settings: Settings, pg_url: str, pg_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A schema with the doubled rows of a redo: after 0002 one row per (item, metric, version)."""
    initial = available()[:1]
    monkeypatch.setattr(migrate_module, "available", lambda: initial)
    migrate(pg_settings)
    monkeypatch.undo()
    insert = (
        "INSERT INTO evaluation_results (run_id, source_key, item_id, metric_name, monitor, metric_version, status, "
        "score, created_at) VALUES (%s, 'src', %s, 'm1', 'mon', %s, 'ok', %s, %s::timestamptz)"
    )
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{pg_schema}"')
        for params in (
            ("run-1", "a", "v1", 0.1, "2026-11-22T10:00Z"),
            ("run-2", "a", "v1", 0.2, "2026-11-22T11:00Z"),  # the redo: newest, kept
            ("run-0", "a", "v2", 0.3, "2026-11-22T09:00Z"),  # another version: kept
            ("run-1", "b", None, 0.4, "2026-11-22T10:00Z"),
            ("run-2", "b", None, 0.5, "2026-11-22T10:00Z"),  # same time: the later run id wins
        ):
            conn.execute(insert, params)

    assert [m.label for m in migrate(pg_settings)] == [m.label for m in available()[1:]]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{pg_schema}"')
        rows = conn.execute(
            "SELECT item_id, metric_version, run_id, score FROM evaluation_results ORDER BY 1, 2"
        ).fetchall()
        assert rows == [("a", "v1", "run-2", 0.2), ("a", "v2", "run-0", 0.3), ("b", "", "run-2", 0.5)]
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(insert, ("run-3", "a", "v1", 0.9, "2026-11-22T12:00Z"))
