"""The long-running local scheduler behind `evalmon schedule CONFIG...`.

DATAFLOW
    configs -> MonitorJob(name, schedule, run)       one job per monitor, validated before start
      -> APScheduler 3 BackgroundScheduler (UTC)     interval or cron trigger per monitor,
                                                     max_instances=1, coalesce=True, misfire grace
      -> DaemonThreadExecutor                        each run in its own daemon thread, so a slow
                                                     monitor never delays another monitor's trigger
      -> MonitoringScheduler._execute(job)           calls job.run() (OnlineMonitor.run: its own
                                                     event loop), catches and logs every exception
      -> StatusFile                                  per monitor: last start/finish/status/exit
                                                     code/error, next run; replaced atomically

Why abandoning a running monitor on SIGTERM is safe: the ledger (architecture.md section 3) is written
last and only for items every required sink accepted, and sinks upsert on natural keys. A monitor
killed mid-run therefore leaves its unrecorded items for the next run, which redoes them and
overwrites rather than duplicates. So on a stop signal the scheduler gives running monitors a short
grace period and then exits; worker threads are daemons and do not hold the process open.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.executors.base import BaseExecutor, run_job
from apscheduler.job import Job
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from shared.errors import ConfigError
from shared.monitoring.config import ScheduleConfig
from shared.monitoring.window import iso

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
DEFAULT_STOP_GRACE_S = 3.0


class RunOutcome(Protocol):
    """What a job returns: `RunSummary` satisfies this (status ok|partial|failed|dry_run)."""

    @property
    def status(self) -> str: ...

    def exit_code(self) -> int: ...


@dataclass(frozen=True)
class MonitorJob:
    """One schedulable monitor. `run` is blocking and must create its own event loop if it needs one."""

    name: str
    run: Callable[[], RunOutcome]
    schedule: ScheduleConfig | None = None
    config_path: str | None = None


def build_trigger(schedule: ScheduleConfig, *, field_prefix: str = "schedule") -> BaseTrigger:
    """The APScheduler trigger of a `schedule` block, always in UTC."""
    if schedule.cron is not None:
        try:
            return CronTrigger.from_crontab(schedule.cron, timezone=UTC)
        except ValueError as exc:
            raise ConfigError(
                f"invalid cron expression '{schedule.cron}': {exc}", field=f"{field_prefix}.cron"
            ) from None
    assert schedule.interval_minutes is not None
    return IntervalTrigger(seconds=schedule.interval_minutes * 60.0, timezone=UTC)


def worst_exit_code(codes: Sequence[int]) -> int:
    """0 < 1 (failed or partial) < 2 (config); an empty list is a success."""
    return max(codes, default=EXIT_OK)


class DaemonThreadExecutor(BaseExecutor):
    """Runs every job in a fresh daemon thread.

    A thread pool would join its workers at interpreter exit, so a stop signal could hang until
    a long monitor finished. Daemon threads let the scheduler abandon a run after the grace period
    (safe by the ledger rules). `max_instances=1` bounds the thread count to one per monitor.
    """

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        def target() -> None:
            try:
                events = run_job(job, job._jobstore_alias, run_times, self._logger.name)
            except BaseException as exc:  # run_job catches job errors; this is a bug guard
                self._run_job_error(job.id, exc, exc.__traceback__)
            else:
                self._run_job_success(job.id, events)

        threading.Thread(target=target, name=f"monitor-{job.id}", daemon=True).start()


@dataclass
class MonitorStatus:
    """One monitor's line in the status file."""

    config: str | None = None
    trigger: str | None = None
    running: bool = False
    last_start: str | None = None
    last_finish: str | None = None
    last_status: str | None = None
    last_exit_code: int | None = None
    last_error: str | None = None
    last_duration_s: float | None = None
    next_run: str | None = None
    runs: int = 0
    failures: int = 0
    skipped_overlaps: int = 0
    missed: int = 0


@dataclass
class StatusFile:
    """Per-monitor scheduler state, rewritten atomically (temp file + rename) on every change.

    Readers (a health check, `cat`, a dashboard) never see a half-written file.
    """

    path: Path | None
    monitors: dict[str, MonitorStatus] = field(default_factory=dict)
    state: str = "starting"
    started_at: str = field(default_factory=lambda: iso(datetime.now(UTC)))
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def update(self, name: str, *, increment: Sequence[str] = (), **changes: Any) -> None:
        """Set fields and add one to the `increment` counters, under one lock (threads race here)."""
        with self._lock:
            status = self.monitors.setdefault(name, MonitorStatus())
            for key, value in changes.items():
                setattr(status, key, value)
            for key in increment:
                setattr(status, key, getattr(status, key) + 1)
            self._write()

    def set_state(self, state: str) -> None:
        with self._lock:
            self.state = state
            self._write()

    def snapshot(self) -> dict[str, Any]:
        return {
            "scheduler": {"pid": os.getpid(), "state": self.state, "started_at": self.started_at},
            "updated_at": iso(datetime.now(UTC)),
            "monitors": {name: vars(status).copy() for name, status in sorted(self.monitors.items())},
        }

    def _write(self) -> None:
        """Best effort: a full disk or a bad path is logged, never allowed to stop the monitors."""
        if self.path is None:
            return
        try:
            self._replace(self.path)
        except OSError as exc:
            logger.warning("cannot write the status file %s: %s", self.path, exc)

    def _replace(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        blob = json.dumps(self.snapshot(), indent=2, sort_keys=False) + "\n"
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(blob)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class MonitoringScheduler:
    """Runs monitors on their `schedule` blocks until stopped.

    `jobs` are validated up front: duplicate names and monitors without a schedule are config
    errors (exit 2) before anything runs. `run_once()` ignores schedules.
    """

    def __init__(
        self,
        jobs: Sequence[MonitorJob],
        *,
        status_path: Path | None = None,
        stop_grace_s: float = DEFAULT_STOP_GRACE_S,
    ) -> None:
        names = [job.name for job in jobs]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ConfigError(f"monitor given more than once: {', '.join(duplicates)}")
        if not jobs:
            raise ConfigError("no monitor to schedule")
        self.jobs = list(jobs)
        self.stop_grace_s = stop_grace_s
        self.status = StatusFile(status_path)
        for job in self.jobs:
            self.status.monitors[job.name] = MonitorStatus(config=job.config_path)
        self._stop = threading.Event()
        self._stop_signal: int | None = None
        self._scheduler: BackgroundScheduler | None = None
        self._exit_codes: dict[str, int] = {}

    # -- scheduled mode -------------------------------------------------------------------

    def triggers(self) -> dict[str, BaseTrigger]:
        missing = [job.name for job in self.jobs if job.schedule is None]
        if missing:
            raise ConfigError(
                f"monitor(s) without a 'schedule' block: {', '.join(missing)} "
                "(add schedule.interval_minutes or schedule.cron, or use --once)",
                field="schedule",
            )
        return {job.name: build_trigger(job.schedule) for job in self.jobs if job.schedule is not None}

    def start(self, *, run_now: bool = False) -> None:
        """Start the background scheduler (non-blocking). `run_now` also fires every monitor at once."""
        triggers = self.triggers()
        scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": DaemonThreadExecutor()},
            job_defaults={"coalesce": True, "max_instances": 1},
        )
        scheduler.add_listener(self._on_skipped, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
        for job in self.jobs:
            assert job.schedule is not None
            extra: dict[str, Any] = {"next_run_time": datetime.now(UTC)} if run_now else {}
            scheduler.add_job(
                self._execute,
                trigger=triggers[job.name],
                args=[job],
                id=job.name,
                name=job.name,
                misfire_grace_time=job.schedule.misfire_grace_s,
                **extra,
            )
        scheduler.start()
        self._scheduler = scheduler
        for job in self.jobs:
            self.status.monitors[job.name].trigger = str(triggers[job.name])
            self.status.monitors[job.name].next_run = self._next_run(job.name)
        self.status.set_state("running")
        for job in self.jobs:
            logger.info(
                "scheduled monitor %s (%s), next run %s", job.name, triggers[job.name], self._next_run(job.name)
            )

    def stop(self, signum: int | None = None) -> None:
        """Ask the scheduler to stop (signal-handler safe: only sets flags)."""
        self._stop_signal = signum
        self._stop.set()

    def wait(self) -> None:
        """Block until `stop()` (or a signal), then shut down within the grace period."""
        while not self._stop.wait(0.5):
            pass
        self.shutdown()

    def shutdown(self) -> None:
        """Stop triggering, give running monitors `stop_grace_s`, then abandon them (daemon threads)."""
        self._stop.set()
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        running = self._wait_running(self.stop_grace_s)
        for name in running:
            logger.warning(
                "stopping while monitor %s is still running: abandoned; its unrecorded items are redone next run",
                name,
            )
            self.status.update(name, running=False, last_status="abandoned", last_error="stopped while running")
        for job in self.jobs:
            self.status.monitors[job.name].next_run = None
        self.status.set_state("stopped")

    def serve(self, *, run_now: bool = False) -> int:
        """`evalmon schedule`: run until SIGTERM/SIGINT, then exit 0 after a clean stop."""
        with self._signals():
            self.start(run_now=run_now)
            logger.info("scheduler running (pid %d); SIGTERM or Ctrl-C stops it", os.getpid())
            self.wait()
        logger.info("scheduler stopped")
        return EXIT_OK

    # -- once mode ------------------------------------------------------------------------

    def run_once(self) -> int:
        """`--once`: run every monitor once, concurrently, and return the worst exit code."""
        with self._signals():
            self.status.set_state("running")
            threads = [
                threading.Thread(target=self._execute, args=(job,), name=f"monitor-{job.name}", daemon=True)
                for job in self.jobs
            ]
            for thread in threads:
                thread.start()
            while any(thread.is_alive() for thread in threads) and not self._stop.wait(0.2):
                pass
            if self._stop.is_set():
                self.shutdown()
                signum = self._stop_signal or signal.SIGINT
                logger.warning("interrupted before every monitor finished")
                return 128 + int(signum)
            self.status.set_state("stopped")
        return worst_exit_code([self._exit_codes.get(job.name, EXIT_FAILED) for job in self.jobs])

    # -- internals ------------------------------------------------------------------------

    def _execute(self, job: MonitorJob) -> int:
        """One run of one monitor. Never raises: an error is logged, recorded and the scheduler goes on."""
        started = time.monotonic()
        self.status.update(job.name, running=True, last_start=iso(datetime.now(UTC)), last_error=None)
        logger.info("monitor %s: run started", job.name)
        error: str | None = None
        try:
            outcome = job.run()
            status, code = str(outcome.status), int(outcome.exit_code())
        except ConfigError as exc:
            status, code, error = "error", EXIT_CONFIG, exc.one_line()
            logger.error("monitor %s: config error: %s", job.name, error)
        except Exception as exc:
            status, code, error = "error", EXIT_FAILED, f"{type(exc).__name__}: {exc}"
            logger.exception("monitor %s: run raised %s", job.name, error)
        duration = round(time.monotonic() - started, 3)
        self._exit_codes[job.name] = code
        self.status.update(
            job.name,
            increment=("runs", "failures") if code != EXIT_OK else ("runs",),
            running=False,
            last_finish=iso(datetime.now(UTC)),
            last_status=status,
            last_exit_code=code,
            last_error=error,
            last_duration_s=duration,
            next_run=self._next_run(job.name),
        )
        log = logger.info if code == EXIT_OK else logger.warning
        log("monitor %s: run finished, status %s, exit code %d, %.1fs", job.name, status, code, duration)
        return code

    def _on_skipped(self, event: JobEvent) -> None:
        name = str(event.job_id)
        if name not in self.status.monitors:
            return
        if event.code == EVENT_JOB_MAX_INSTANCES:
            logger.warning("monitor %s: previous run still going, this trigger is skipped", name)
            self.status.update(name, increment=("skipped_overlaps",), next_run=self._next_run(name))
        else:
            logger.warning("monitor %s: run missed its misfire grace time, skipped", name)
            self.status.update(name, increment=("missed",), next_run=self._next_run(name))

    def _next_run(self, name: str) -> str | None:
        if self._scheduler is None or self._stop.is_set():
            return None
        job = self._scheduler.get_job(name)
        when = getattr(job, "next_run_time", None) if job is not None else None
        return iso(when) if when is not None else None

    def _wait_running(self, timeout_s: float) -> list[str]:
        deadline = time.monotonic() + timeout_s
        while True:
            running = [name for name, status in self.status.monitors.items() if status.running]
            if not running or time.monotonic() >= deadline:
                return running
            time.sleep(0.05)

    def _signals(self) -> _SignalScope:
        return _SignalScope(self.stop)


class _SignalScope:
    """Route SIGTERM/SIGINT to `stop` while active (main thread only), restoring handlers after."""

    def __init__(self, stop: Callable[[int], None]) -> None:
        self._stop = stop
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _SignalScope:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        logger.info("received %s, stopping", signal.Signals(signum).name)
        self._stop(signum)


# -- building jobs from monitor configs ---------------------------------------------------


def monitor_jobs(configs: Sequence[str], *, overrides: Sequence[str] = ()) -> list[MonitorJob]:
    """Jobs for `evalmon schedule`: each config loaded now (config errors exit 2 before start).

    Every run builds a fresh OnlineMonitor from the YAML, so no client or event loop outlives a
    run, and a run in one thread shares nothing mutable with another monitor's run.
    """
    from shared.monitoring.config import find_config
    from shared.monitoring.monitor import OnlineMonitor

    jobs: list[MonitorJob] = []
    for name_or_path in configs:
        path = find_config(name_or_path)
        monitor = OnlineMonitor.from_yaml(path, overrides=list(overrides))
        config = monitor.config

        def run(path: Path = path) -> RunOutcome:
            return OnlineMonitor.from_yaml(path, overrides=list(overrides)).run()

        jobs.append(MonitorJob(name=config.monitor, run=run, schedule=config.schedule, config_path=str(path)))
    return jobs
