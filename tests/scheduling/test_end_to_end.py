"""The real `evalmon schedule` / `evalmon backfill` over a small monitor in a temp directory."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from shared.cli import app
from shared.monitoring import backfill as backfill_module
from shared.monitoring.backfill import monitor_backfill

from .fakes import wait_for
from .monitor_fixture import N_TRACES, T0, write_monitor

EVALMON = [sys.executable, "-c", "from shared.cli import app; app(prog_name='evalmon')"]


def evalmon(*args: str, cwd: Path, **kwargs: Any) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [*EVALMON, *args], cwd=cwd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs
    )


def read_status(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


def ledger_rows(root: Path) -> int:
    path = root / "ledger.csv"
    return max(0, len(path.read_text(encoding="utf-8").splitlines()) - 1) if path.exists() else 0


def test_schedule_once_runs_the_monitor_and_exits_with_its_code(tmp_path: Path) -> None:
    config = write_monitor(tmp_path)
    proc = evalmon("schedule", config.name, "--once", "--status-file", "st.json", cwd=tmp_path)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    status = read_status(tmp_path / "st.json")["monitors"]["sched_e2e"]
    assert status["last_status"] == "ok" and status["runs"] == 1
    assert ledger_rows(tmp_path) == N_TRACES
    (summary_file,) = (tmp_path / "runs").glob("*/summary.json")
    summary = json.loads(summary_file.read_text(encoding="utf-8"))
    assert summary["metrics"]["non_empty"]["mean"] == 0.75  # 3 of the 12 answers are empty


def test_schedule_runs_on_its_interval_and_stops_on_sigterm_within_5_seconds(tmp_path: Path) -> None:
    config = write_monitor(tmp_path, interval_minutes=0.02)  # every 1.2 s
    status_file = tmp_path / "st.json"
    proc = evalmon("schedule", config.name, "--status-file", status_file.name, cwd=tmp_path)
    try:
        assert wait_for(
            lambda: read_status(status_file).get("monitors", {}).get("sched_e2e", {}).get("runs", 0) >= 2, 30
        )
        first = read_status(status_file)["monitors"]["sched_e2e"]
        assert first["last_exit_code"] == 0 and first["next_run"] is not None
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=5)
        assert time.monotonic() - sent < 5
    finally:
        if proc.poll() is None:
            proc.kill()
    _, stderr = proc.communicate()
    assert proc.returncode == 0, stderr
    assert "received SIGTERM" in stderr
    final = read_status(status_file)
    assert final["scheduler"]["state"] == "stopped"
    assert ledger_rows(tmp_path) == N_TRACES, "interval runs after the first found nothing new"


def test_sigterm_abandons_a_long_run_quickly_and_the_next_run_redoes_its_work(tmp_path: Path) -> None:
    config = write_monitor(tmp_path, metric="slow_sleep", interval_minutes=60)
    status_file = tmp_path / "st.json"
    proc = evalmon(
        "schedule", config.name, "--status-file", status_file.name, "--run-now", "--stop-grace", "1", cwd=tmp_path
    )
    try:
        assert wait_for(lambda: read_status(status_file).get("monitors", {}).get("sched_e2e", {}).get("running"), 30)
        time.sleep(0.5)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=5)
        assert time.monotonic() - sent < 5
    finally:
        if proc.poll() is None:
            proc.kill()
    _, stderr = proc.communicate()
    assert proc.returncode == 0, stderr
    assert "abandoned" in stderr
    monitor = read_status(status_file)["monitors"]["sched_e2e"]
    assert monitor["last_status"] == "abandoned" and monitor["running"] is False
    assert ledger_rows(tmp_path) == 0, "nothing of the abandoned run was recorded"

    # the next run (now with a fast metric under the same monitor) scores every item
    write_monitor(tmp_path, metric="non_empty")
    again = evalmon("schedule", config.name, "--once", "--status-file", status_file.name, cwd=tmp_path)
    _, stderr = again.communicate(timeout=60)
    assert again.returncode == 0, stderr
    assert ledger_rows(tmp_path) == N_TRACES


def test_backfill_scores_in_chunks_resumes_and_a_second_backfill_scores_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_monitor(tmp_path)
    monkeypatch.chdir(tmp_path)
    since, until = "2026-11-20T00:00:00Z", "2026-11-20T03:00:00Z"
    state_dir = tmp_path / "data" / "backfill"

    # interrupted (Ctrl-C) during the third chunk
    from shared.monitoring.monitor import OnlineMonitor

    real_run = OnlineMonitor.run
    calls: list[Any] = []

    def interrupted_run(self: OnlineMonitor, **kwargs: Any) -> Any:
        calls.append(kwargs)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_run(self, **kwargs)

    monkeypatch.setattr(OnlineMonitor, "run", interrupted_run)
    with pytest.raises(KeyboardInterrupt):
        monitor_backfill(str(config), since=since, until=until, chunk="1h", state_dir=state_dir, progress=False)
    assert [(c["since"], c["until"]) for c in calls[:2]] == [
        (T0, T0 + timedelta(hours=1)),
        (T0 + timedelta(hours=1), T0 + timedelta(hours=2)),
    ]
    assert ledger_rows(tmp_path) == 8
    monkeypatch.setattr(OnlineMonitor, "run", real_run)

    resumed = monitor_backfill(str(config), since=since, until=until, chunk="1h", state_dir=state_dir, progress=False)
    assert resumed.exit_code == 0 and resumed.complete
    assert resumed.resumed == 2 and resumed.ran == 1
    assert resumed.totals()["evaluated"] == 4
    assert ledger_rows(tmp_path) == 12

    second = monitor_backfill(str(config), since=since, until=until, chunk="1h", state_dir=state_dir, progress=False)
    assert second.ran == 0 and second.totals()["evaluated"] == 0

    # even without the state file the ledger dedup leaves nothing to score
    for path in state_dir.glob("*.json"):
        path.unlink()
    fresh = monitor_backfill(str(config), since=since, until=until, chunk="30m", state_dir=state_dir, progress=False)
    assert fresh.ran == 6 and fresh.totals() == {"fetched": 12, "evaluated": 0, "recorded": 0}


def test_backfill_after_adding_a_metric_scores_only_that_metric(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_monitor(tmp_path)
    monkeypatch.chdir(tmp_path)
    window = {"since": "2026-11-20T00:00:00Z", "until": "2026-11-20T03:00:00Z", "state_dir": tmp_path / "bf"}
    monitor_backfill(str(config), chunk="1h", progress=False, **window)  # type: ignore[arg-type]
    before = ledger_rows(tmp_path)
    added = ['metrics=[{"key": "non_empty"}, {"key": "non_empty", "name": "has_query", "params": {"field": "query"}}]']
    report = monitor_backfill(str(config), chunk="1h", overrides=added, progress=False, **window)  # type: ignore[arg-type]
    assert report.ran == 3, "a changed config runs every chunk again"
    assert report.totals()["recorded"] == N_TRACES
    assert ledger_rows(tmp_path) == before + N_TRACES  # one new row per item: only the new metric


def test_the_backfill_cli_prints_a_report_and_fails_on_a_bad_chunk(tmp_path: Path) -> None:
    config = write_monitor(tmp_path)
    args = ["backfill", config.name, "--since", "2026-11-20T00:00:00Z", "--until", "2026-11-20T02:00:00Z"]
    proc = evalmon(*args, "--json", cwd=tmp_path)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    report = json.loads(stdout)
    assert report["total_chunks"] == 2 and report["totals"]["evaluated"] == 8
    assert "chunk 2/2" in stderr  # one log line per chunk when stderr is not a terminal
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:  # in process: the CLI reconfigures logging, put it back for the tests that follow
        bad = CliRunner().invoke(app, [*args, "--chunk", "soon"])
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    assert bad.exit_code == 2 and "--chunk" in bad.output


assert Path("data/backfill") == backfill_module.DEFAULT_STATE_DIR
