"""Run alerts: rules over one run's metric summaries, and one Slack message per breaching run.

DATAFLOW (called by the monitor after publishing, never in dry runs):

    evaluate_alerts(config.alerts, result.summary(), result)
      per rule: the metric's mean / pass rate / error rate -> skip below `min_n` -> compare
      with `op threshold` -> Alert (with the worst items and links to their traces)
    deliver_alerts(alerts, run, settings) -> None, or the error line for the RunSummary
      send_alerts: no alerts -> nothing; else one Block Kit message to `alerts.channel` (or
      SLACK_ALERT_CHANNEL); a message that cannot be delivered fails the run (exit 1)

`Alert.model_dump()` is what goes into the RunSummary `alerts` list.
"""

from __future__ import annotations

import logging
import math
import operator
import string
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel

from shared.errors import ConfigError
from shared.evaluation.metric import MetricStatus
from shared.evaluation.results import EvaluationResult, MetricSummary, ResultRow
from shared.monitoring.config import AlertRule, AlertsConfig
from shared.monitoring.run_context import RunContext
from shared.monitoring.window import iso
from shared.settings import Settings
from shared.slack.mrkdwn import code, escape
from shared.slack.service import SlackService

log = logging.getLogger(__name__)

OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
# Slack caps: a section's text at 3000 characters, a header at 150, a message at 50 blocks.
SECTION_LIMIT = 2900
MAX_ALERT_SECTIONS = 20


class AlertItem(BaseModel):
    """One of the worst items behind an alert, with a link to look at it."""

    id: str
    score: float | None = None
    passed: bool | None = None
    error: str | None = None
    url: str | None = None


class Alert(BaseModel):
    """A rule that this run breached: the number against the threshold, and the worst items."""

    metric: str
    stat: Literal["mean", "pass_rate", "error_rate"]
    op: Literal["<", "<=", ">", ">="]
    threshold: float
    value: float
    n: int
    worst_items: list[AlertItem] = []

    def describe(self) -> str:
        return f"{self.metric} {self.stat} {_num(self.value)} {self.op} {_num(self.threshold)} (n={self.n})"


def evaluate_alerts(
    config: AlertsConfig, metrics: Mapping[str, MetricSummary], result: EvaluationResult
) -> list[Alert]:
    """The rules this run breaches. A rule on a metric absent from the run, or with fewer than
    `min_n` scored items, or whose statistic is undefined (no threshold for a pass rate), is quiet."""
    alerts: list[Alert] = []
    for rule in config.rules:
        summary = metrics.get(rule.metric)
        if summary is None:
            log.warning("alert rule on metric '%s', which this run did not compute", rule.metric)
            continue
        value, n = _statistic(rule, summary, result)
        if value is None or n < rule.min_n or not OPS[rule.op](value, rule.threshold):
            continue
        rows = [row for row in result if row.metric_name == rule.metric]
        worst = [_alert_item(row, config.trace_url_template) for row in _worst(rule, rows)[: config.worst_items]]
        alerts.append(
            Alert(
                metric=rule.metric,
                stat=rule.stat,
                op=rule.op,
                threshold=rule.threshold,
                value=round(value, 6),
                n=n,
                worst_items=worst,
            )
        )
    return alerts


def _statistic(rule: AlertRule, summary: MetricSummary, result: EvaluationResult) -> tuple[float | None, int]:
    """The rule's number and the sample it stands on (scored items; scored + errors for error_rate)."""
    if rule.stat == "mean":
        return summary.mean, summary.n
    if rule.stat == "pass_rate":
        judged = sum(
            1
            for row in result
            if row.metric_name == rule.metric and row.status is MetricStatus.OK and row.result.passed is not None
        )
        return summary.pass_rate, judged
    attempted = summary.n + summary.errors
    return (summary.errors / attempted if attempted else None), attempted


def _worst(rule: AlertRule, rows: list[ResultRow]) -> list[ResultRow]:
    """The items that pull the statistic across the threshold, worst first, one row per item."""
    if rule.stat == "error_rate":
        picked = [row for row in rows if row.status is MetricStatus.ERROR]
    else:
        scored = [r for r in rows if r.status is MetricStatus.OK and _finite(r.result.score)]
        if rule.stat == "pass_rate":
            # failed items first, furthest from their threshold first
            scored = [r for r in scored if r.result.passed is False]
            picked = sorted(scored, key=lambda r: -abs((r.result.score or 0.0) - (r.result.threshold or 0.0)))
        else:
            # a rule firing on low values ("mean < x") wants the lowest scores, and vice versa
            low_is_bad = rule.op in ("<", "<=")
            picked = sorted(scored, key=lambda r: (r.result.score or 0.0) * (1 if low_is_bad else -1))
    seen: set[str] = set()
    unique = []
    for row in picked:
        if row.item.id not in seen:
            seen.add(row.item.id)
            unique.append(row)
    return unique


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _alert_item(row: ResultRow, template: str | None) -> AlertItem:
    return AlertItem(
        id=row.item.id,
        score=row.result.score,
        passed=row.result.passed,
        error=(row.result.error or "")[:200] or None,
        url=item_url(row, template),
    )


def item_url(row: ResultRow, template: str | None) -> str | None:
    """The trace link from `trace_url_template` (fields: trace_id, observation_id, session_id, id),
    else the item's own link (a Slack permalink), else None."""
    item = row.item
    if template:
        values = {
            "trace_id": item.trace_id,
            "observation_id": item.observation_id,
            "session_id": item.session_id,
            "id": item.id,
            "item_id": item.id,
        }
        try:
            needed = {name for _, name, _, _ in string.Formatter().parse(template) if name}
        except ValueError:
            needed = {"?"}
        if needed and all(values.get(name) for name in needed):
            return template.format(**{k: quote(str(v), safe="") for k, v in values.items() if v})
    for key in ("permalink", "url", "trace_url"):
        link = item.metadata.get(key)
        if isinstance(link, str) and link.startswith(("http://", "https://")):
            return link
    return None


# -- Slack ---------------------------------------------------------------------------------------


async def deliver_alerts(
    alerts: Sequence[Alert], run: RunContext, settings: Settings, slack: SlackService | None = None
) -> str | None:
    """Send the run's alerts; on failure, log and return one line for the RunSummary's `errors`.

    An alert that fired and reached nobody must not look like a healthy run: the caller adds the
    line to the errors, so the run ends failed with exit code 1. The scores stand either way.
    """
    try:
        await send_alerts(alerts, run, settings, slack)
    except Exception as exc:
        rules = "; ".join(alert.describe() for alert in alerts)
        line = f"{len(alerts)} alert(s) fired but were not delivered to Slack ({_reason(exc)}): {rules}"
        log.error("%s", line)
        return line
    return None


def _reason(exc: Exception) -> str:
    if isinstance(exc, ConfigError):
        return exc.one_line()
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def send_alerts(
    alerts: Sequence[Alert], run: RunContext, settings: Settings, slack: SlackService | None = None
) -> None:
    """Post one message for a breaching run; nothing for a healthy run or a dry run.

    Raises ConfigError when no channel is configured, and the SlackService errors (TransientError
    after its retries, SlackError) when Slack refuses: the caller records them in the RunSummary.
    """
    if not alerts or run.dry_run:
        return
    channel = run.config.alerts.channel or settings.slack_alert_channel
    if not channel:
        raise ConfigError("alerts fired but no Slack channel is set (or SLACK_ALERT_CHANNEL)", field="alerts.channel")
    text, blocks = alert_message(alerts, run)
    service = slack or SlackService(settings)
    try:
        await service.post_message(channel, text, blocks)
    finally:
        if slack is None:
            await service.aclose()


def alert_message(alerts: Sequence[Alert], run: RunContext) -> tuple[str, list[dict[str, Any]]]:
    """The notification text and the Block Kit blocks of one run's alerts."""
    window = f"{iso(run.window.since)} → {iso(run.window.until)}"
    text = f"evalmon alert: {run.monitor}: " + "; ".join(a.describe() for a in alerts)
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": f":rotating_light: {run.monitor}: {len(alerts)} alert rule(s) breached"[:150],
            },
        },
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Monitor*\n{escape(run.monitor)}"},
                {"type": "mrkdwn", "text": f"*Window*\n{escape(window)}"},
            ],
        },
    ]
    for alert in alerts[:MAX_ALERT_SECTIONS]:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _alert_text(alert)}})
    if len(alerts) > MAX_ALERT_SECTIONS:
        blocks.append(_context(f"... and {len(alerts) - MAX_ALERT_SECTIONS} more (see the run summary)"))
    blocks.append(_context(f"run {code(run.run_id)} · config {run.config_hash} · evalmon {run.evalmon_version}"))
    return text[:3000], blocks


def _alert_text(alert: Alert) -> str:
    head = (
        f"*{escape(alert.metric)}* {alert.stat.replace('_', ' ')} is *{_num(alert.value)}*, "
        f"rule `{alert.op} {_num(alert.threshold)}` (n={alert.n})"
    )
    lines = [head]
    for item in alert.worst_items:
        link = f"<{item.url}|{escape(item.id)}>" if item.url else code(item.id)
        detail = f"error: {escape(item.error)}" if item.error else f"score {_num(item.score)}"
        lines.append(f"• {link} {detail}")
    out = "\n".join(lines)
    return out if len(out) <= SECTION_LIMIT else out[: SECTION_LIMIT - 1] + "…"


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _num(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
