"""Several `evalmon run` processes on one monitor and window, coordinating through Postgres.

Each worker is a real process (`python -m shared.cli run CONFIG --json`) with `dedup.store:
postgres` and `publish.postgres: true`, reading a CSV of items through the file source and scoring
them with a deliberately slow metric, so runs overlap and a worker can be killed mid-run.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import yaml

from shared.settings import Settings

PLUGIN = """
import asyncio
import os
import signal

from shared.evaluation.metric import BaseMetric, MetricParams, MetricResult, metric


@metric(key="slow_len", description="Output length / 100, after a configurable pause.")
class SlowLen(BaseMetric):
    class Params(MetricParams):
        delay_s: float = 0.0

    async def execute(self, item):
        await asyncio.sleep(self.params.delay_s)
        return self.result(min(len(item.actual_output or "") / 100, 1.0))


# EVALMON_TEST_KILL_AT: SIGKILL this worker right before or right after its Postgres publish.
KILL_AT = os.environ.get("EVALMON_TEST_KILL_AT")
if KILL_AT:
    from shared.database.sink import PostgresSink

    real_publish = PostgresSink.publish

    async def publish_then_maybe_die(self, run, results):
        if KILL_AT == "before_postgres_publish":
            os.kill(os.getpid(), signal.SIGKILL)
        report = await real_publish(self, run, results)
        if KILL_AT == "after_postgres_publish":
            os.kill(os.getpid(), signal.SIGKILL)
        return report

    PostgresSink.publish = publish_then_maybe_die
"""

SINCE = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)


def _workspace(tmp_path: Path, n_items: int, *, delay_s: float, ttl_s: float, concurrency: int) -> Path:
    (tmp_path / "pg_worker_plugin.py").write_text(PLUGIN, encoding="utf-8")
    with (tmp_path / "items.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "timestamp", "query", "actual_output"])
        for n in range(n_items):
            ts = (SINCE + timedelta(seconds=10 * n)).isoformat()
            writer.writerow([f"item-{n:04d}", ts, f"question {n}", "answer " * (n % 17)])
    config = {
        "monitor": "pg-workers",
        "plugins": ["pg_worker_plugin"],
        "source": {"type": "file", "path": "items.csv", "format": "csv"},
        "window": {"since": SINCE.isoformat(), "until": (SINCE + timedelta(days=1)).isoformat()},
        "metrics": [{"key": "slow_len", "params": {"delay_s": delay_s}}, {"key": "non_empty"}],
        "evaluation": {"concurrency": concurrency, "timeout_s": 30},
        "dedup": {"store": "postgres", "claim_ttl_s": ttl_s},
        "publish": {"local": {"dir": "runs"}, "postgres": True},
    }
    path = tmp_path / "workers.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _env(settings: Settings, tmp_path: Path) -> dict[str, str]:
    assert settings.database_url is not None
    env = dict(os.environ)
    env.update(
        DATABASE_URL=settings.database_url.get_secret_value(),
        EVALMON_DB_SCHEMA=settings.evalmon_db_schema,
        PYTHONPATH=os.pathsep.join([str(tmp_path), env.get("PYTHONPATH", "")]),
    )
    return env


def _start(config: Path, settings: Settings, tmp_path: Path, kill_at: str | None = None) -> subprocess.Popen[str]:
    env = _env(settings, tmp_path)
    if kill_at:
        env["EVALMON_TEST_KILL_AT"] = kill_at
    return subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "run", str(config), "--json"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str], timeout: float = 120) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"exit {proc.returncode}: {err[-2000:]}"
    summary: dict[str, Any] = json.loads(out)
    return summary


def _query(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url.get_secret_value()) as conn:
        conn.execute(f'SET search_path TO "{settings.evalmon_db_schema}"')
        return conn.execute(sql.encode()).fetchall()


def test_four_workers_score_each_item_exactly_once(migrated: Settings, tmp_path: Path) -> None:
    n_items = 120
    config = _workspace(tmp_path, n_items, delay_s=0.02, ttl_s=60, concurrency=4)
    workers = [_start(config, migrated, tmp_path) for _ in range(4)]
    summaries = [_finish(w) for w in workers]

    assert all(s["status"] == "ok" for s in summaries), summaries
    assert sum(s["counts"]["evaluated"] for s in summaries) == n_items
    per_pair = _query(
        migrated,
        "SELECT item_id, metric_name, count(*) FROM evaluation_results GROUP BY 1, 2 HAVING count(*) > 1",
    )
    assert per_pair == [], "an item was scored twice"
    assert _query(migrated, "SELECT count(DISTINCT item_id), count(*) FROM evaluation_results") == [
        (n_items, 2 * n_items)
    ]
    assert _query(migrated, "SELECT count(*) FROM scored_items") == [(2 * n_items,)]
    assert _query(migrated, "SELECT count(*) FROM item_claims") == [(0,)]
    finished = _query(migrated, "SELECT count(*) FROM evaluation_runs WHERE status = 'ok' AND finished_at IS NOT NULL")
    published = sum(1 for s in summaries if s["counts"]["evaluated"])
    assert finished[0][0] >= published

    # A fifth run finds everything scored and writes no new result rows.
    again = _finish(_start(config, migrated, tmp_path))
    assert again["status"] == "ok" and again["counts"]["evaluated"] == 0
    assert _query(migrated, "SELECT count(*) FROM evaluation_results") == [(2 * n_items,)]


def test_a_killed_workers_items_are_scored_by_the_next_run_at_once(migrated: Settings, tmp_path: Path) -> None:
    n_items = 16
    config = _workspace(tmp_path, n_items, delay_s=1.0, ttl_s=600, concurrency=2)
    victim = _start(config, migrated, tmp_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _query(migrated, "SELECT count(*) FROM item_claims") == [(0,)]:
        time.sleep(0.1)
    assert _query(migrated, "SELECT count(*) FROM item_claims") == [(n_items,)], "the worker never claimed"
    time.sleep(0.5)  # mid-scoring: 16 items x 1 s at concurrency 2 take 8 s
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)

    # The lease would last 10 minutes, but the process is gone: its items are free right away.
    late = _finish(_start(config, migrated, tmp_path))
    assert late["status"] == "ok" and late["warnings"] == []
    assert late["counts"]["evaluated"] == n_items and late["counts"]["claimed_elsewhere"] == 0
    # The killed run published nothing and recorded nothing; every pair is stored exactly once.
    assert _query(migrated, "SELECT count(*), count(DISTINCT (item_id, metric_name)) FROM evaluation_results") == [
        (2 * n_items, 2 * n_items)
    ]
    assert _query(migrated, "SELECT count(*) FROM scored_items") == [(2 * n_items,)]
    assert _query(migrated, "SELECT count(*) FROM item_claims") == [(0,)]
    assert _query(migrated, "SELECT count(*) FROM run_leases") == [(0,)]


def test_a_kill_between_the_postgres_publish_and_the_ledger_write_leaves_one_row_per_pair(
    migrated: Settings, tmp_path: Path
) -> None:
    n_items = 30
    config = _workspace(tmp_path, n_items, delay_s=0.0, ttl_s=600, concurrency=4)
    victim = _start(config, migrated, tmp_path, kill_at="after_postgres_publish")
    victim.communicate(timeout=120)
    assert victim.returncode == -signal.SIGKILL
    assert _query(migrated, "SELECT count(*) FROM evaluation_results") == [(2 * n_items,)]
    assert _query(migrated, "SELECT count(*) FROM scored_items") == [(0,)]  # killed before recording
    (killed_run,) = _query(migrated, "SELECT run_id FROM evaluation_runs WHERE status = 'running'")[0]

    redo = _finish(_start(config, migrated, tmp_path))
    assert redo["status"] == "ok" and redo["counts"]["evaluated"] == n_items
    # The redo overwrote the killed run's rows: one per pair, written last by the redo.
    assert _query(migrated, "SELECT count(*), count(DISTINCT (item_id, metric_name)) FROM evaluation_results") == [
        (2 * n_items, 2 * n_items)
    ]
    assert _query(migrated, "SELECT DISTINCT run_id FROM evaluation_results") == [(redo["run_id"],)]
    assert _query(migrated, "SELECT count(*) FROM evaluation_results_with_items") == [(2 * n_items,)]
    runs = dict(_query(migrated, "SELECT run_id, status FROM evaluation_runs"))
    assert runs == {killed_run: "aborted", redo["run_id"]: "ok"}


def test_a_worker_killed_while_publishing_leaves_nothing_hidden(migrated: Settings, tmp_path: Path) -> None:
    """Its claims must not make the next run report `ok` with nothing published."""
    n_items = 30
    config = _workspace(tmp_path, n_items, delay_s=0.0, ttl_s=600, concurrency=4)
    victim = _start(config, migrated, tmp_path, kill_at="before_postgres_publish")
    victim.communicate(timeout=120)
    assert victim.returncode == -signal.SIGKILL
    assert _query(migrated, "SELECT count(*) FROM item_claims") == [(n_items,)]  # left behind by the kill

    after = _finish(_start(config, migrated, tmp_path))
    assert after["counts"]["evaluated"] == n_items and after["counts"]["published_postgres"] == 2 * n_items
    assert after["counts"]["duplicates"] == 0 and after["counts"]["claimed_elsewhere"] == 0
    assert _query(migrated, "SELECT count(*) FROM scored_items") == [(2 * n_items,)]


def test_a_run_that_skips_work_claimed_by_a_live_worker_says_so(migrated: Settings, tmp_path: Path) -> None:
    n_items = 8
    config = _workspace(tmp_path, n_items, delay_s=1.0, ttl_s=600, concurrency=1)
    busy = _start(config, migrated, tmp_path)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _query(migrated, "SELECT count(*) FROM item_claims") == [(0,)]:
            time.sleep(0.1)
        second = _start(config, migrated, tmp_path)
        out, err = second.communicate(timeout=120)
    finally:
        first = _finish(busy)
    summary = json.loads(out)
    assert second.returncode == 0 and summary["status"] == "ok"
    assert summary["counts"]["claimed_elsewhere"] == n_items and summary["counts"]["duplicates"] == 0
    assert any("claimed by another running worker" in w for w in summary["warnings"]), summary["warnings"]
    assert "claimed by another running worker" in err
    assert first["counts"]["evaluated"] == n_items
