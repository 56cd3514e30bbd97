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

from shared.evaluation.metric import BaseMetric, MetricParams, MetricResult, metric


@metric(key="slow_len", description="Output length / 100, after a configurable pause.")
class SlowLen(BaseMetric):
    class Params(MetricParams):
        delay_s: float = 0.0

    async def execute(self, item):
        await asyncio.sleep(self.params.delay_s)
        return self.result(min(len(item.actual_output or "") / 100, 1.0))
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


def _start(config: Path, settings: Settings, tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "run", str(config), "--json"],
        cwd=tmp_path,
        env=_env(settings, tmp_path),
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


def test_a_killed_workers_items_are_scored_by_the_next_run(migrated: Settings, tmp_path: Path) -> None:
    n_items, ttl_s = 16, 3.0
    config = _workspace(tmp_path, n_items, delay_s=1.0, ttl_s=ttl_s, concurrency=2)
    victim = _start(config, migrated, tmp_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _query(migrated, "SELECT count(*) FROM item_claims") == [(0,)]:
        time.sleep(0.1)
    assert _query(migrated, "SELECT count(*) FROM item_claims") == [(n_items,)], "the worker never claimed"
    time.sleep(0.5)  # mid-scoring: 16 items x 1 s at concurrency 2 take 8 s
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    killed_at = time.monotonic()

    # While the dead worker's leases run, a new run must not take its items.
    early = _finish(_start(config, migrated, tmp_path))
    if time.monotonic() - killed_at < ttl_s:
        assert early["counts"]["evaluated"] == 0, early["counts"]
    time.sleep(max(0.0, ttl_s - (time.monotonic() - killed_at)) + 0.2)

    late = _finish(_start(config, migrated, tmp_path))
    assert late["status"] == "ok"
    assert early["counts"]["evaluated"] + late["counts"]["evaluated"] == n_items
    # The killed run published nothing and recorded nothing; every pair is stored exactly once.
    assert _query(migrated, "SELECT count(*), count(DISTINCT (item_id, metric_name)) FROM evaluation_results") == [
        (2 * n_items, 2 * n_items)
    ]
    assert _query(migrated, "SELECT count(*) FROM scored_items") == [(2 * n_items,)]
    assert _query(migrated, "SELECT count(*) FROM item_claims") == [(0,)]
