"""After a run is summarised: alert rules -> incidents -> Slack (the run report, the alerts in its thread).

DATAFLOW (OnlineMonitor._alerts, once the RunSummary is built and before summary.json is written):

    dry run: evaluate the rules (baselines read, nothing written) -> summary.alerts; nothing sent
    store.session(monitor)          lock + incident state (Postgres with DATABASE_URL, else the state file)
    load_baselines                  per baseline rule: earlier runs from Postgres, Langfuse or the runs
                                    folder, frozen at the incident's start while it is open
    evaluate_rules                  RuleOutcome per rule (firing | quiet | unknown)
    incidents.plan                  opened / worsened / resolved notices; a backfill or rerun: nothing
                                    is posted at all (no report, no alert)
    run report                      when publish.slack.on is `always`, or `alerts` and there are notices:
                                    one message in publish.slack.channel (shared.reporting.slack_report)
    deliver_notices                 in the report's thread, else alerts.channel / SLACK_ALERT_CHANNEL
    chart                           the report's chart uploaded into its thread (files_upload_v2)
    session.save                    only when every notice was delivered
    -> summary.alerts (each with its incident mark), summary.errors (undelivered alerts: the run
       fails, exit 1), summary.warnings (a history source down, the report not posted, the state
       not saved)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from shared.evaluation.results import ResultRow
from shared.monitoring.alerts import (
    Alert,
    HistoryReader,
    Notice,
    deliver_notices,
    evaluate_rules,
    load_baselines,
    template_url,
)
from shared.monitoring.incidents import AlertState, Plan, baseline_requests, make_store, plan
from shared.monitoring.run_context import RunContext
from shared.monitoring.summary import RunSummary
from shared.reporting import local_baseline, metric_lines
from shared.reporting.run_report import trace_link
from shared.reporting.slack_report import (
    Link,
    LinkedItem,
    ReportThread,
    chart_png,
    github_run_link,
    post_report,
    report_message,
    summary_lines,
    upload_chart,
)
from shared.settings import Settings
from shared.slack.service import SlackService

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
    """Evaluate the alert rules, post the report and what changed, record it in `summary` (see DATAFLOW)."""
    config = run.config.alerts
    if not config.rules and run.config.publish.slack is None:
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
                log.info("window ends at or before the last evaluated one (backfill or rerun): nothing posted")
                return
            undelivered = await _post(run, summary, decided.notices, settings, collector)
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
        line = f"alert incidents unavailable ({store.name}: {type(exc).__name__}: {exc}); nothing posted to Slack"
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


# -- Slack ---------------------------------------------------------------------------------------
async def _post(
    run: RunContext, summary: RunSummary, notices: Sequence[Notice], settings: Settings, collector: Any
) -> str | None:
    """The run report (when wanted), the notices in its thread, then its chart. Returns the error
    line when a notice was not delivered; a report or chart that fails is only a warning."""
    report = run.config.publish.slack
    wanted = report is not None and (report.on == "always" or (report.on == "alerts" and bool(notices)))
    if not wanted:
        return await deliver_notices(notices, run, settings)
    assert report is not None
    service: SlackService | None = None
    thread: ReportThread | None = None
    png: bytes | None = None
    try:
        service = SlackService(settings)
        lines = _lines(run, summary, collector)
        text, blocks = report_message(
            summary.model_dump(mode="json"),
            lines,
            links=await _links(run, settings),
            items=_linked_items(run, settings, lines),
            alerts={kind: sum(1 for n in notices if n.kind == kind) for kind in ("opened", "worsened", "resolved")},
        )
        thread = await post_report(service, report.channel, text, blocks)
        png = chart_png(lines, collector) if collector is not None else None
    except Exception as exc:  # a report is for reading: the alerts still go out, to alerts.channel
        _warn(summary, f"Slack run report not posted to {report.channel} ({type(exc).__name__}: {exc})")
    try:
        undelivered = await deliver_notices(
            notices,
            run,
            settings,
            service,
            channel=thread.channel if thread else None,
            thread_ts=thread.ts if thread else None,
        )
        if service is not None and thread is not None and png is not None:
            try:
                await upload_chart(service, thread, png, title=f"{run.monitor}: this run against its baseline")
            except Exception as exc:
                _warn(summary, f"Slack run report: chart not uploaded ({type(exc).__name__}: {exc})")
        return undelivered
    finally:
        if service is not None:
            await service.aclose()


def _lines(run: RunContext, summary: RunSummary, collector: Any) -> list[Any]:
    """The report's metric lines (as in report.md), or from the summary when no collector ran."""
    if collector is None:
        return summary_lines(summary.metrics)
    baseline = local_baseline(run.results_dir.parent, run.monitor, before_run_id=run.run_id)
    return metric_lines(collector, baseline)


def _uses_langfuse(run: RunContext) -> bool:
    return run.config.source.type == "langfuse" or run.config.publish.langfuse.enabled


async def _links(run: RunContext, settings: Settings) -> list[Link]:
    links = []
    if _uses_langfuse(run):
        try:
            from shared.langfuse.client import call_api, make_client

            client = make_client(settings)
            projects = await call_api(client.api.projects.get, attempts=2, initial_wait=0.2, max_wait=1.0)
            project = projects.data[0].id
            links.append(
                Link("traces in Langfuse", f"{settings.langfuse_base_url.rstrip('/')}/project/{project}/traces")
            )
        except Exception as exc:  # a link is a convenience
            log.debug("no Langfuse project link: %s", exc)
    github = github_run_link()
    if github is not None:
        links.append(github)
    return links


def _linked_items(run: RunContext, settings: Settings, lines: Sequence[Any]) -> list[LinkedItem]:
    """The worst items that have a trace link (Langfuse, or alerts.trace_url_template)."""
    template = run.config.alerts.trace_url_template
    base = settings.langfuse_base_url if _uses_langfuse(run) else None
    items = []
    for line in lines:
        for worst in getattr(line, "worst", []):
            url = template_url(template, item_id=worst.item_id, trace_id=worst.trace_id) or trace_link(
                base, worst.trace_id
            )
            if url:
                items.append(LinkedItem(line.name, worst.item_id, url, worst.score))
    return items


# -- outcomes ------------------------------------------------------------------------------------
async def _save(session: Any, decided: Plan, run: RunContext, summary: RunSummary) -> None:
    try:
        await session.save(decided.state, run_id=run.run_id, closed=decided.closed)
    except Exception as exc:  # the messages went out: a later run may repeat one, nothing is lost
        _not_saved(summary, exc)


def _not_saved(summary: RunSummary, exc: Exception) -> None:
    _warn(summary, f"alert incident state not saved ({type(exc).__name__}: {exc}); the next run may repeat a message")


def _warn(summary: RunSummary, line: str) -> None:
    log.warning("%s", line)
    summary.warnings.append(line)


def _fail(summary: RunSummary, line: str) -> None:
    summary.errors.append(line)
    if summary.status != "dry_run":
        summary.status = "failed"
