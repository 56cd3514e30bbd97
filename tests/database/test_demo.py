"""The demo monitor with `publish.postgres: true` and `dedup.store: postgres`, through `evalmon run`."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg
import pytest

from shared.monitoring.sinks.local import read_results
from shared.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "src/implementations/athena/config/monitoring_local.yaml"


def _run(settings: Settings, runs_dir: Path) -> dict[str, Any]:
    assert settings.database_url is not None
    env = dict(os.environ, DATABASE_URL=settings.database_url.get_secret_value())
    env["EVALMON_DB_SCHEMA"] = settings.evalmon_db_schema
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "shared.cli",
            "run",
            str(DEMO),
            "--json",
            "--set",
            "dedup.store=postgres",
            "--set",
            "publish.postgres=true",
            "--set",
            f"publish.local.dir={runs_dir}",
        ],
        cwd=REPO,  # the demo's trace file is relative to the repo root
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert settings.database_url.get_secret_value() not in proc.stdout + proc.stderr
    summary: dict[str, Any] = json.loads(proc.stdout)
    return summary


def _same(a: object, b: object) -> bool:
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or (isinstance(b, float) and math.isnan(b))
    return a == b


@pytest.mark.skipif(not DEMO.is_file(), reason="the athena demo config is not present")
def test_demo_run_matches_local_results_and_rerun_adds_nothing(migrated: Settings, tmp_path: Path) -> None:
    summary = _run(migrated, tmp_path / "runs")
    assert summary["status"] == "ok"
    results_dir = Path(summary["results_dir"])
    local = read_results(results_dir)  # the demo's Parquet parts, item text joined back on
    assert summary["counts"]["published_postgres"] == len(local) > 0

    assert migrated.database_url is not None
    with psycopg.connect(migrated.database_url.get_secret_value()) as conn:
        conn.execute(f'SET search_path TO "{migrated.evalmon_db_schema}"')
        rows = conn.execute(
            "SELECT item_id, metric_name, metric_version, status, score, passed, explanation, query, actual_output "
            "FROM evaluation_results_with_items WHERE run_id = %s",
            [summary["run_id"]],
        ).fetchall()
        run_row = conn.execute("SELECT status, finished_at IS NOT NULL FROM evaluation_runs").fetchall()
    db = {(r[0], r[1]): r[2:] for r in rows}
    assert len(db) == len(rows) == len(local)
    for rec in local.to_dict("records"):
        version, status, score, passed, explanation, query, output = db[(str(rec["id"]), rec["metric_name"])]
        assert version == rec["metric_version"] and status == rec["status"]
        assert _same(rec["metric_score"], score)
        assert _same(None if pd.isna(rec["passed"]) else bool(rec["passed"]), passed)
        assert (explanation or "") == (rec["explanation"] if isinstance(rec["explanation"], str) else "")
        assert (query or "") == (rec["query"] if isinstance(rec["query"], str) else "")
        assert (output or "") == (rec["actual_output"] if isinstance(rec["actual_output"], str) else "")
    assert run_row == [("ok", True)]

    again = _run(migrated, tmp_path / "runs")
    assert again["status"] == "ok" and again["counts"]["evaluated"] == 0
    with psycopg.connect(migrated.database_url.get_secret_value()) as conn:
        total = conn.execute(f'SELECT count(*) FROM "{migrated.evalmon_db_schema}".evaluation_results').fetchone()
    assert total == (len(local),)
