"""Incidents: an alert rule's life across runs, so people hear once when it starts, worsens and stops.

DATAFLOW (shared.monitoring.notify drives it):

    store.session(monitor)                lock, then load AlertState: the newest evaluated window
                                          and the open incidents (Postgres, or a state file)
    baseline_requests(rules, state, run)  a baseline rule with an open incident keeps comparing with
                                          the runs before the incident opened (see `baseline_request`)
    plan(state, outcomes, run)            -> Plan: the notices to send and the state to save
        firing, no incident     -> "opened"   (a new incident, its level = this run)
        firing, incident open   -> "worsened" when this run is worse than the announced level by
                                   more than chance (the rule's test and alpha, the announced run
                                   as baseline); the level becomes this run's. Otherwise silent.
        quiet,  incident open   -> "resolved" once clearly usual again (`RuleOutcome.cleared`:
                                   p >= min(0.5, 10 * alpha)); in between it stays open, silent
        unknown (too few items, no baseline): nothing changes
        window not after the newest evaluated one (backfill, rerun): no notices, nothing saved
    session.save(plan.state)              only after every notice was delivered, so a message that
                                          failed is sent again by the next run
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from filelock import FileLock, Timeout
from pydantic import BaseModel, Field, ValidationError

from shared.errors import EvalmonError
from shared.monitoring.alerts import BaselineRequest, IncidentMark, Notice, RuleOutcome, StatSample
from shared.monitoring.config import AlertRule, alert_state_path
from shared.monitoring.run_context import RunContext
from shared.monitoring.window import iso
from shared.settings import Settings

log = logging.getLogger(__name__)


class Incident(BaseModel):
    """An open incident: the rule, the run that opened it, and the level people were last told about."""

    rule: str
    metric: str
    opened_run_id: str
    opened_since: datetime
    opened_until: datetime
    runs_open: int = 1  # runs evaluated while open, the opening run included
    value: float  # the statistic as last announced (opened or worsened)
    level: dict[str, Any]  # StatSample.as_dict() of the announced run: what "worsened" compares with
    notified_run_id: str


class AlertState(BaseModel):
    """One monitor's alert state between runs."""

    last_until: datetime | None = None
    open: dict[str, Incident] = Field(default_factory=dict)


class IncidentStateError(EvalmonError):
    """The incident state cannot be read or written (locked, unreachable, not migrated)."""


@dataclass
class Plan:
    """What this run says and what it leaves for the next run."""

    notices: list[Notice]
    state: AlertState
    marks: dict[str, IncidentMark] = field(default_factory=dict)  # firing rule key -> its incident mark
    closed: dict[str, str] = field(default_factory=dict)  # rule key -> resolved | dropped
    backfill: bool = False


# -- baselines during an incident ----------------------------------------------------------------
def baseline_request(rule: AlertRule, incident: Incident | None, run: RunContext) -> BaselineRequest:
    """The earlier runs a baseline rule compares with.

    Normally those before this run's window. While the rule's incident is open, those before the
    window that opened it: a lasting drop must not drift into its own baseline and "resolve"
    itself. Once the incident has lasted a whole baseline span (`compare.runs` runs or
    `compare.days` days) the new level is accepted: the baseline rolls on again.
    """
    window = run.window
    if incident is not None and not _accepted(rule, incident, run):
        return BaselineRequest(rule, before_until=incident.opened_until, before_since=incident.opened_since)
    return BaselineRequest(rule, before_until=window.until, before_since=window.since)


def _accepted(rule: AlertRule, incident: Incident, run: RunContext) -> bool:
    compare = rule.compare
    if compare is None:
        return True
    if compare.runs is not None:
        return incident.runs_open >= compare.runs
    assert compare.days is not None
    return run.window.until - incident.opened_until >= timedelta(days=compare.days)


def baseline_requests(rules: Sequence[AlertRule], state: AlertState, run: RunContext) -> list[BaselineRequest]:
    return [baseline_request(rule, state.open.get(rule.key), run) for rule in rules if rule.compare is not None]


# -- transitions ---------------------------------------------------------------------------------
def plan(state: AlertState, outcomes: Sequence[RuleOutcome], run: RunContext) -> Plan:
    """Notices and next state from this run's rule outcomes (pure: no I/O)."""
    until = run.window.until
    if state.last_until is not None and until <= state.last_until:
        marks: dict[str, IncidentMark] = {o.rule.key: "backfill" for o in outcomes if o.alert is not None}
        return Plan(notices=[], state=state, marks=marks, backfill=True)
    after = AlertState(last_until=until, open=dict(state.open))
    result = Plan(notices=[], state=after)
    configured = {o.rule.key for o in outcomes}
    for key in [k for k in after.open if k not in configured]:  # the rule was removed or changed
        log.info("alert incident '%s' closed: its rule is no longer configured", key)
        del after.open[key]
        result.closed[key] = "dropped"
    for outcome in outcomes:
        _step(outcome, after, result, run)
    return result


def _step(outcome: RuleOutcome, state: AlertState, result: Plan, run: RunContext) -> None:
    key = outcome.rule.key
    incident = state.open.get(key)
    reading, sample = outcome.reading, outcome.sample
    if outcome.state == "unknown" or reading is None or sample is None:
        return
    if outcome.state == "quiet":
        if incident is not None and not outcome.cleared:  # better, not clearly usual yet: hold quietly
            state.open[key] = incident.model_copy(update={"runs_open": incident.runs_open + 1})
        elif incident is not None:
            del state.open[key]
            result.closed[key] = "resolved"
            result.notices.append(Notice("resolved", reading, _resolved_detail(outcome.rule, incident, run)))
        return
    if incident is None:
        state.open[key] = _new_incident(outcome, run)
        result.marks[key] = "opened"
        result.notices.append(Notice("opened", reading.model_copy(update={"incident": "opened"})))
        return
    if worsened(outcome, incident):
        announced = f"was {_num(incident.value)} when announced, open for {incident.runs_open + 1} runs"
        state.open[key] = incident.model_copy(
            update={
                "runs_open": incident.runs_open + 1,
                "value": reading.value,
                "level": sample.as_dict(),
                "notified_run_id": run.run_id,
            }
        )
        result.marks[key] = "worsened"
        result.notices.append(Notice("worsened", reading.model_copy(update={"incident": "worsened"}), announced))
        return
    state.open[key] = incident.model_copy(update={"runs_open": incident.runs_open + 1})
    result.marks[key] = "ongoing"


def worsened(outcome: RuleOutcome, incident: Incident) -> bool:
    """This run is worse than the announced level by more than chance (the rule's test at its alpha)."""
    if outcome.sample is None:
        return False
    level = StatSample.from_dict(incident.level)
    p_value = outcome.sample.p_worse_than(level, between_runs=outcome.between_runs)
    return p_value is not None and p_value < outcome.rule.alpha


def _new_incident(outcome: RuleOutcome, run: RunContext) -> Incident:
    assert outcome.reading is not None and outcome.sample is not None
    return Incident(
        rule=outcome.rule.key,
        metric=outcome.rule.metric,
        opened_run_id=run.run_id,
        opened_since=run.window.since,
        opened_until=run.window.until,
        value=outcome.reading.value,
        level=outcome.sample.as_dict(),
        notified_run_id=run.run_id,
    )


def _resolved_detail(rule: AlertRule, incident: Incident, run: RunContext) -> str:
    opened = f"open since the window ending {iso(incident.opened_until)} ({incident.runs_open} runs)"
    if rule.compare is not None and _accepted(rule, incident, run):
        return f"{opened}; the level held for the whole baseline span and is now the baseline"
    return opened


def _num(value: float) -> str:
    return f"{value:.3g}"


# -- stores --------------------------------------------------------------------------------------
class StateSession(Protocol):
    state: AlertState

    async def save(self, state: AlertState, *, run_id: str, closed: Mapping[str, str]) -> None: ...


class IncidentStore(Protocol):
    name: str

    def session(self, monitor: str) -> Any:  # an async context manager yielding a StateSession
        ...


def make_store(run: RunContext, settings: Settings) -> IncidentStore:
    """Postgres when DATABASE_URL is set, else the state file (alerts.state_path, default beside the ledger)."""
    if settings.database_url is not None and settings.database_url.get_secret_value().strip():
        return PostgresIncidentStore(settings)
    return FileIncidentStore(state_path(run), lock_timeout_s=run.config.dedup.lock_timeout_s)


def state_path(run: RunContext) -> Path:
    path = alert_state_path(run.config)
    return path if path.is_absolute() else run.base_dir / path


@dataclass
class FileSession:
    path: Path
    monitor: str
    state: AlertState

    async def save(self, state: AlertState, *, run_id: str, closed: Mapping[str, str]) -> None:
        """Rewrite the file with this monitor's state (others' untouched), atomically."""
        everything = _read_file(self.path)
        everything[self.monitor] = state.model_dump(mode="json")
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps({"monitors": everything}, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(temporary, self.path)


class FileIncidentStore:
    """A JSON file of every monitor's state, carried across cron runs like the CSV ledger."""

    name = "state file"

    def __init__(self, path: Path, *, lock_timeout_s: float = 600.0) -> None:
        self.path = path
        self.lock_timeout_s = lock_timeout_s

    @asynccontextmanager
    async def session(self, monitor: str) -> AsyncIterator[FileSession]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(f"{self.path}.lock")
        try:
            lock.acquire(timeout=self.lock_timeout_s)
        except Timeout:
            raise IncidentStateError(
                f"{lock.lock_file} is held by another run (waited {self.lock_timeout_s:g}s)"
            ) from None
        try:
            raw = _read_file(self.path).get(monitor)
            try:
                state = AlertState.model_validate(raw) if raw else AlertState()
            except ValidationError as exc:
                log.warning("alert state of '%s' in %s is unreadable, starting afresh: %s", monitor, self.path, exc)
                state = AlertState()
            yield FileSession(self.path, monitor, state)
        finally:
            lock.release()


def _read_file(path: Path) -> dict[str, Any]:
    """Every monitor's state; a damaged file is kept aside (renamed) and read as empty."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        data = json.loads(text)
        monitors = data["monitors"]
        if not isinstance(monitors, dict):
            raise TypeError("'monitors' is not an object")
        return monitors
    except (ValueError, KeyError, TypeError) as exc:
        aside = path.with_name(f"{path.name}.damaged-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
        log.warning("alert state file %s is damaged (%s): kept as %s, starting afresh", path, exc, aside.name)
        os.replace(path, aside)
        return {}


_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"
_LOAD_MONITOR_SQL = "SELECT last_window_until FROM alert_monitors WHERE monitor = %s"
_LOAD_OPEN_SQL = """
SELECT rule_key, metric_name, opened_run_id, opened_since, opened_until, runs_open, value, level, notified_run_id
FROM alert_incidents WHERE monitor = %s AND status = 'open'
"""
_INSERT_SQL = """
INSERT INTO alert_incidents (monitor, rule_key, metric_name, opened_run_id, opened_since, opened_until,
                             runs_open, value, level, notified_run_id)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""
_UPDATE_SQL = """
UPDATE alert_incidents SET runs_open = %s, value = %s, level = %s, notified_run_id = %s, updated_at = now()
WHERE monitor = %s AND rule_key = %s AND status = 'open'
"""
_CLOSE_SQL = """
UPDATE alert_incidents SET status = %s, closed_run_id = %s, closed_at = now(), updated_at = now()
WHERE monitor = %s AND rule_key = %s AND status = 'open'
"""
_SAVE_MONITOR_SQL = """
INSERT INTO alert_monitors (monitor, last_window_until) VALUES (%s, %s)
ON CONFLICT (monitor) DO UPDATE SET last_window_until = greatest(alert_monitors.last_window_until,
    EXCLUDED.last_window_until), updated_at = now()
"""


@dataclass
class PostgresSession:
    conn: Any
    monitor: str
    state: AlertState

    async def save(self, state: AlertState, *, run_id: str, closed: Mapping[str, str]) -> None:
        """Write what changed since the load, in the transaction that holds the monitor's lock."""
        from psycopg.types.json import Jsonb

        before = self.state.open
        for key, incident in state.open.items():
            if key not in before:
                await self.conn.execute(
                    _INSERT_SQL,
                    [
                        self.monitor,
                        key,
                        incident.metric,
                        incident.opened_run_id,
                        incident.opened_since,
                        incident.opened_until,
                        incident.runs_open,
                        incident.value,
                        Jsonb(incident.level),
                        incident.notified_run_id,
                    ],
                )
            elif incident != before[key]:
                await self.conn.execute(
                    _UPDATE_SQL,
                    [
                        incident.runs_open,
                        incident.value,
                        Jsonb(incident.level),
                        incident.notified_run_id,
                        self.monitor,
                        key,
                    ],
                )
        for key in before:
            if key not in state.open:
                await self.conn.execute(_CLOSE_SQL, [closed.get(key, "resolved"), run_id, self.monitor, key])
        if state.last_until is not None:
            await self.conn.execute(_SAVE_MONITOR_SQL, [self.monitor, state.last_until])


class PostgresIncidentStore:
    """Incidents in `alert_incidents` (migration 0003); one transaction per run, under a per-monitor lock."""

    name = "postgres"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @asynccontextmanager
    async def session(self, monitor: str) -> AsyncIterator[PostgresSession]:
        import psycopg

        from shared.database.connection import describe_error, open_pool, schema_name, transaction

        pool = await open_pool(self.settings, min_size=1, max_size=1)
        try:
            async with transaction(pool, schema_name(self.settings)) as conn:
                try:
                    state = await _load(conn, monitor)
                except psycopg.errors.UndefinedTable:
                    raise IncidentStateError("the alert_incidents table is missing: run `evalmon db migrate`") from None
                except psycopg.Error as exc:
                    raise IncidentStateError(describe_error(exc, self.settings)) from None
                yield PostgresSession(conn, monitor, state)
        finally:
            await pool.close()


async def _load(conn: Any, monitor: str) -> AlertState:
    await conn.execute(_LOCK_SQL, [f"evalmon alerts {monitor}"])
    async with conn.cursor() as cur:
        await cur.execute(_LOAD_MONITOR_SQL, [monitor])
        row = await cur.fetchone()
        await cur.execute(_LOAD_OPEN_SQL, [monitor])
        incidents = await cur.fetchall()
    state = AlertState(last_until=row[0] if row else None)
    for key, metric, run_id, since, until, runs_open, value, level, notified in incidents:
        state.open[key] = Incident(
            rule=key,
            metric=metric,
            opened_run_id=run_id,
            opened_since=since,
            opened_until=until,
            runs_open=runs_open,
            value=value,
            level=dict(level),
            notified_run_id=notified,
        )
    return state
