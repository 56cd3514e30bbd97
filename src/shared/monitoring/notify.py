"""After a run is summarised: alert rules -> incidents -> Slack.

DATAFLOW (OnlineMonitor._alerts, once the RunSummary is built and before summary.json is written):

    dry run: evaluate the rules (baselines read, nothing written) -> summary.alerts; nothing sent
    store.session(monitor)          lock + incident state (Postgres with DATABASE_URL, else the state file)
    load_baselines                  per baseline rule: earlier runs from Postgres, Langfuse or the runs
                                    folder, frozen at the incident's start while it is open
    evaluate_rules                  RuleOutcome per rule (firing | quiet | unknown)
    incidents.plan                  opened / worsened / resolved notices; a backfill or rerun: none
    deliver_notices                 one Slack message (alerts.channel, else SLACK_ALERT_CHANNEL)
    session.save                    only when every notice was delivered
    -> summary.alerts (each with its incident mark), summary.errors (undelivered alerts: the run
       fails, exit 1), summary.warnings (a history source down, the state not saved)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from shared.evaluation.results import ResultRow
from shared.monitoring.alerts import (
    Alert,
    HistoryReader,
    deliver_notices,
    evaluate_rules,
    load_baselines,
)
from shared.monitoring.incidents import AlertState, Plan, baseline_requests, make_store, plan
from shared.monitoring.run_context import RunContext
from shared.monitoring.summary import RunSummary
from shared.settings import Settings

log = logging.getLogger(__name__)


async def alert_and_report(
    run: RunContext,
    summary: RunSummary,
    *,
    rows: Sequence[ResultRow],
    versions: Mapping[str, str],
    settings: Settings,
    collector: Any = None,
) -> None:
    """Evaluate the alert rules, send what changed, and record it in `summary` (see DATAFLOW)."""
    config = run.config.alerts
    if not config.rules:
        return
    reader = HistoryReader(run, versions, settings)
    if run.dry_run:
        await _without_state(run, summary, rows, reader)
        return
    store = make_store(run, settings)
    sent = False
    try:
        async with store.session(run.monitor) as session:
            requests = baseline_requests(config.rules, session.state, run)
            baselines = await load_baselines(requests, reader)
            outcomes = evaluate_rules(config, summary.metrics, rows, baselines=baselines)
            decided = plan(session.state, outcomes, run)
            _record_alerts(summary, outcomes, decided)
            summary.warnings.extend(reader.problems)
            if decided.backfill:
                log.info("window ends at or before the last evaluated one (backfill or rerun): no alert messages")
                return
            undelivered = await deliver_notices(decided.notices, run, settings)
            if undelivered:  # the scores stand; the run fails so that nobody mistakes it for a quiet one
                _fail(summary, undelivered)
                return
            sent = True
            await _save(session, decided, run, summary)
    except Exception as exc:  # the state store itself failed (locked, unreachable, not migrated)
        if sent:
            _not_saved(summary, exc)
            return
        fired = await _without_state(run, summary, rows, reader)
        line = f"alert incidents unavailable ({store.name}: {type(exc).__name__}: {exc}); no alert messages sent"
        if not fired:  # nothing to say this time; the next run will try again
            log.warning("%s", line)
            summary.warnings.append(line)
            return
        line += ": " + "; ".join(alert.describe() for alert in fired)
        log.error("%s", line)
        _fail(summary, line)


async def _without_state(
    run: RunContext, summary: RunSummary, rows: Sequence[ResultRow], reader: HistoryReader
) -> list[Alert]:
    """The rules evaluated as if no incident were open (dry runs; the state store down)."""
    requests = baseline_requests(run.config.alerts.rules, AlertState(), run)
    baselines = await load_baselines(requests, reader)
    fired = [o.alert for o in evaluate_rules(run.config.alerts, summary.metrics, rows, baselines=baselines) if o.alert]
    summary.alerts = [alert.model_dump(mode="json") for alert in fired]
    summary.warnings.extend(p for p in reader.problems if p not in summary.warnings)
    return fired


def _record_alerts(summary: RunSummary, outcomes: Sequence[Any], decided: Plan) -> None:
    summary.alerts = [
        o.alert.model_copy(update={"incident": decided.marks.get(o.rule.key)}).model_dump(mode="json")
        for o in outcomes
        if o.alert is not None
    ]


async def _save(session: Any, decided: Plan, run: RunContext, summary: RunSummary) -> None:
    try:
        await session.save(decided.state, run_id=run.run_id, closed=decided.closed)
    except Exception as exc:  # the messages went out: a later run may repeat one, nothing is lost
        _not_saved(summary, exc)


def _not_saved(summary: RunSummary, exc: Exception) -> None:
    line = f"alert incident state not saved ({type(exc).__name__}: {exc}); the next run may repeat a message"
    log.warning("%s", line)
    summary.warnings.append(line)


def _fail(summary: RunSummary, line: str) -> None:
    summary.errors.append(line)
    if summary.status != "dry_run":
        summary.status = "failed"
