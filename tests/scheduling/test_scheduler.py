from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.errors import ConfigError
from shared.monitoring.config import ScheduleConfig
from shared.monitoring.scheduler import MonitoringScheduler, MonitorJob, build_trigger

from .fakes import RecordingJob, wait_for


def every(seconds: float) -> ScheduleConfig:
    return ScheduleConfig(interval_minutes=seconds / 60.0)


def test_a_job_that_overruns_its_interval_is_not_started_twice(tmp_path: Path) -> None:
    slow = RecordingJob(duration_s=1.5)
    scheduler = MonitoringScheduler(
        [MonitorJob("slow", slow, every(0.3))], status_path=tmp_path / "status.json", stop_grace_s=3
    )
    scheduler.start(run_now=True)
    try:
        assert wait_for(lambda: len(slow.starts) >= 2, timeout_s=6)
    finally:
        scheduler.shutdown()
    assert slow.max_active == 1
    # the second start waited for the first run to end (1.5 s), although triggers came every 0.3 s
    assert slow.starts[1] - slow.starts[0] >= 1.4
    status = json.loads((tmp_path / "status.json").read_text())["monitors"]["slow"]
    assert status["skipped_overlaps"] >= 2


def test_a_failing_monitor_is_logged_and_the_next_trigger_still_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    flaky = RecordingJob(fail_first=1)
    steady = RecordingJob()
    scheduler = MonitoringScheduler(
        [MonitorJob("flaky", flaky, every(0.3)), MonitorJob("steady", steady, every(0.3))],
        status_path=tmp_path / "status.json",
    )
    with caplog.at_level(logging.INFO, logger="shared.monitoring.scheduler"):
        scheduler.start(run_now=True)
        try:
            assert wait_for(lambda: len(flaky.starts) >= 2 and len(steady.starts) >= 2)
            assert wait_for(lambda: scheduler.status.monitors["flaky"].last_status == "ok")
        finally:
            scheduler.shutdown()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and "flaky" in r.getMessage()]
    assert errors and "boom in run 1" in errors[0].getMessage()
    assert errors[0].exc_info is not None  # the traceback is logged too
    flaky_status = scheduler.status.monitors["flaky"]
    assert flaky_status.failures == 1 and flaky_status.runs >= 2
    assert scheduler.status.monitors["steady"].failures == 0


def test_a_slow_monitor_never_delays_another_monitors_trigger(tmp_path: Path) -> None:
    slow = RecordingJob(duration_s=2.0)
    fast = RecordingJob()
    scheduler = MonitoringScheduler([MonitorJob("slow", slow, every(5)), MonitorJob("fast", fast, every(0.25))])
    scheduler.start(run_now=True)
    try:
        assert wait_for(lambda: len(slow.starts) == 1)
        time.sleep(1.2)
        assert slow.active == 1, "the slow run is still going"
        assert len(fast.starts) >= 4
    finally:
        scheduler.shutdown()


def test_the_status_file_records_each_monitor(tmp_path: Path) -> None:
    path = tmp_path / "state" / "status.json"
    ok, broken = RecordingJob(), RecordingJob(fail_first=99)
    scheduler = MonitoringScheduler(
        [MonitorJob("ok-monitor", ok, every(3600), "ok.yaml"), MonitorJob("broken", broken, every(3600), "b.yaml")],
        status_path=path,
    )
    before = datetime.now(UTC)
    scheduler.start(run_now=True)
    try:
        assert wait_for(lambda: all(m.last_finish for m in scheduler.status.monitors.values()))
        data = json.loads(path.read_text())
    finally:
        scheduler.shutdown()
    assert data["scheduler"]["state"] == "running"
    good = data["monitors"]["ok-monitor"]
    assert good["config"] == "ok.yaml"
    assert good["last_status"] == "ok" and good["last_exit_code"] == 0 and good["last_error"] is None
    assert good["running"] is False and good["runs"] == 1
    start = datetime.fromisoformat(good["last_start"].replace("Z", "+00:00"))
    finish = datetime.fromisoformat(good["last_finish"].replace("Z", "+00:00"))
    next_run = datetime.fromisoformat(good["next_run"].replace("Z", "+00:00"))
    assert before <= start <= finish
    assert 3500 <= (next_run - before).total_seconds() <= 3700  # every 60 minutes, in UTC
    bad = data["monitors"]["broken"]
    assert bad["last_status"] == "error" and bad["last_exit_code"] == 1
    assert "RuntimeError: boom in run 1" in bad["last_error"]
    stopped = json.loads(path.read_text())
    assert stopped["scheduler"]["state"] == "stopped"
    assert stopped["monitors"]["ok-monitor"]["next_run"] is None
    assert not list(path.parent.glob("*.tmp")), "no temp file left behind"


def test_once_runs_every_monitor_and_returns_the_worst_exit_code(tmp_path: Path) -> None:
    ok, partial = RecordingJob(), RecordingJob(status="partial")
    assert MonitoringScheduler([MonitorJob("a", ok), MonitorJob("b", partial)]).run_once() == 1
    assert len(ok.starts) == 1 and len(partial.starts) == 1
    assert MonitoringScheduler([MonitorJob("a", RecordingJob(status="dry_run"))]).run_once() == 0

    def bad_config() -> RecordingJob:
        raise ConfigError("unknown metric 'x'", field="metrics[0].key")

    assert MonitoringScheduler([MonitorJob("a", RecordingJob()), MonitorJob("c", bad_config)]).run_once() == 2


def test_scheduling_needs_a_schedule_block_and_unique_monitors() -> None:
    with pytest.raises(ConfigError, match="without a 'schedule' block: nosched"):
        MonitoringScheduler([MonitorJob("nosched", RecordingJob())]).start()
    with pytest.raises(ConfigError, match="more than once: dup"):
        MonitoringScheduler([MonitorJob("dup", RecordingJob()), MonitorJob("dup", RecordingJob())])


def test_cron_schedules_fire_in_utc_and_bad_cron_is_a_config_error() -> None:
    trigger = build_trigger(ScheduleConfig(cron="15 * * * *"))
    now = datetime(2026, 11, 22, 10, 20, tzinfo=UTC)
    fire = trigger.get_next_fire_time(None, now)
    assert fire == datetime(2026, 11, 22, 11, 15, tzinfo=UTC)
    with pytest.raises(ConfigError, match=r"schedule\.cron"):
        build_trigger(ScheduleConfig(cron="every hour"))


def test_an_unwritable_status_file_never_stops_the_monitors(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    job = RecordingJob()
    with caplog.at_level(logging.WARNING, logger="shared.monitoring.scheduler"):
        code = MonitoringScheduler([MonitorJob("a", job)], status_path=blocker / "status.json").run_once()
    assert code == 0 and len(job.starts) == 1
    assert "cannot write the status file" in caplog.text
