"""The run report in Slack: one message (header, counts, the metric table, links), its chart in the thread.

DATAFLOW (shared.monitoring.notify, when `publish.slack.on` says so):

    report_message(summary, lines, links, alerts) -> (text, blocks)   Block Kit; every text from the
                                                    run is escaped (shared.slack.mrkdwn)
    post_report(service, channel, text, blocks)   -> ReportThread(channel id, ts)   chat.postMessage
    (the caller posts the alerts in that thread)
    upload_chart(service, thread, png)            slack_sdk's files_upload_v2 into the thread:
                                                    files.getUploadURLExternal, the upload,
                                                    files.completeUploadExternal

The numbers are the report's (`run_report.metric_lines`: pass rates with Wilson intervals, means
with normal intervals, the change against the runs folder's baseline), so report.md, report.html
and Slack agree.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.evaluation.results import MetricSummary
from shared.reporting.collector import ReportCollector
from shared.reporting.run_report import MetricLine, delta_text, format_value, report_charts
from shared.reporting.stats import RunningMoments, wilson_interval
from shared.slack.mrkdwn import code, escape
from shared.slack.service import SlackService

log = logging.getLogger(__name__)

SECTION_LIMIT = 2900  # Slack caps a section's text at 3000 characters
NAME_WIDTH = 24
MAX_LINKED_ITEMS = 5
STATUS_ICONS = {"ok": ":white_check_mark:", "partial": ":warning:", "failed": ":x:", "dry_run": ":test_tube:"}
COUNTS = (
    ("fetched", "fetched"),
    ("sampled", "sampled"),
    ("evaluated", "evaluated"),
    ("metric_errors", "metric errors"),
    ("skipped", "skipped"),
    ("deferred", "deferred"),
    ("published_postgres", "to Postgres"),
    ("published_langfuse", "to Langfuse"),
)


@dataclass(frozen=True)
class Link:
    label: str
    url: str


@dataclass(frozen=True)
class LinkedItem:
    """One of the worst items, with the link to its trace."""

    metric: str
    item_id: str
    url: str
    score: float | None


@dataclass(frozen=True)
class ReportThread:
    channel: str  # the channel id Slack answered with (file uploads need the id, not a #name)
    ts: str


def report_message(
    summary: Mapping[str, Any],
    lines: Sequence[MetricLine],
    *,
    links: Sequence[Link] = (),
    items: Sequence[LinkedItem] = (),
    alerts: Mapping[str, int] | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """The notification text and Block Kit blocks of one run's report.

    `alerts` counts the notices going into the thread (opened / worsened / resolved).
    """
    monitor = str(summary.get("monitor"))
    status = str(summary.get("status"))
    said = ", ".join(f"{count} {kind}" for kind, count in (alerts or {}).items() if count)
    icon = ":rotating_light:" if said else STATUS_ICONS.get(status, ":bar_chart:")
    header = f"{icon} evalmon {monitor}: {status}" + (f", alerts {said}" if said else "")
    window = summary.get("window") or {}
    counts = summary.get("counts") or {}
    text = f"evalmon {monitor}: {status}, {counts.get('evaluated', 0)} evaluated" + (f"; alerts {said}" if said else "")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": header[:150]}},
        {
            "type": "section",
            "fields": [
                {
                    "type": "mrkdwn",
                    "text": f"*Window*\n{escape(str(window.get('since')))} → {escape(str(window.get('until')))}",
                },
                {"type": "mrkdwn", "text": f"*Run*\n{code(str(summary.get('run_id')))}"},
            ],
        },
        _section(
            " · ".join(f"{label} *{counts.get(key, 0)}*" for key, label in COUNTS if key in counts)
            + f" · {float(summary.get('duration_s') or 0):.1f} s · judge ${float(summary.get('cost_usd') or 0):.4f}"
        ),
    ]
    blocks.append(_section(metric_table(lines) if lines else "_Nothing was scored in this run._"))
    if said:
        blocks.append(_section(f":rotating_light: Alerts {escape(said)}: see the thread."))
    for title, entries in (("Errors", summary.get("errors") or []), ("Warnings", summary.get("warnings") or [])):
        if entries:
            shown = "\n".join(f"• {escape(str(e))}" for e in entries[:5])
            more = f"\n… and {len(entries) - 5} more" if len(entries) > 5 else ""
            blocks.append(_section(f"*{title}*\n{shown}{more}"))
    if items:
        blocks.append(
            _section(
                "*Worst items*\n"
                + "\n".join(
                    f"• <{item.url}|{escape(item.item_id)}> {escape(item.metric)}"
                    + ("" if item.score is None else f" score {item.score:.3g}")
                    for item in items[:MAX_LINKED_ITEMS]
                )
            )
        )
    if links:
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": " · ".join(f"<{link.url}|{escape(link.label)}>" for link in links)}
                ],
            }
        )
    return text[:3000], blocks


def summary_lines(metrics: Mapping[str, MetricSummary]) -> list[MetricLine]:
    """Metric lines from a run's MetricSummary figures, for callers without a ReportCollector."""
    lines = []
    for name, figures in metrics.items():
        value: float | None
        if figures.judged and figures.pass_rate is not None:
            stat, n, value = "pass rate", figures.judged, figures.pass_rate
            interval = wilson_interval(round(figures.pass_rate * n), n)
        else:
            stat, n, value = "mean", figures.n, figures.mean
            moments = RunningMoments(n=n, mean=value or 0.0, m2=(figures.std or 0.0) ** 2 * max(0, n - 1))
            interval = moments.interval() if value is not None else None
        low, high = interval if interval else (None, None)
        lines.append(
            MetricLine(name, figures.direction, stat, n, value, low, high, figures.errors, figures.skipped, None, [])
        )
    return lines


def metric_table(lines: Sequence[MetricLine]) -> str:
    """The per-metric table as a code block: name, n, value, 95% interval, change, errors."""
    rows = [f"{'metric':<{NAME_WIDTH}} {'n':>6}  {'value':<16} {'95% interval':<17} change"]
    for line in lines:
        value = f"{'pass' if line.stat == 'pass rate' else 'mean'} {format_value(line.value, line.stat)}"
        interval = (
            f"{format_value(line.low, line.stat)}-{format_value(line.high, line.stat)}" if line.low is not None else "-"
        )
        arrow = "↑" if line.direction == "higher_is_better" else "↓"
        name = (line.name if len(line.name) <= NAME_WIDTH - 2 else line.name[: NAME_WIDTH - 3] + "…") + f" {arrow}"
        errors = f", {line.errors} errors" if line.errors else ""
        rows.append(f"{name:<{NAME_WIDTH}} {line.n:>6}  {value:<16} {interval:<17} {delta_text(line)}{errors}")
    body = "\n".join(rows)
    if len(body) > SECTION_LIMIT - 8:
        body = body[: SECTION_LIMIT - 9] + "…"
    return f"```\n{escape(body)}\n```"


def chart_png(lines: Sequence[MetricLine], collector: ReportCollector) -> bytes | None:
    """The report's chart for Slack: pass rates against their baseline band, else the distributions."""
    charts = dict(report_charts(lines, collector))
    chosen = charts.get("pass rates against the baseline") or next(iter(charts.values()), None)
    return base64.b64decode(chosen) if chosen else None


async def post_report(service: SlackService, channel: str, text: str, blocks: Sequence[dict[str, Any]]) -> ReportThread:
    data = await service.call("chat.postMessage", channel=channel, text=text, blocks=list(blocks))
    return ReportThread(channel=str(data.get("channel") or channel), ts=str(data["ts"]))


async def upload_chart(service: SlackService, thread: ReportThread, png: bytes, *, title: str) -> None:
    """The chart as a file in the report's thread (slack_sdk's `files_upload_v2`, through the service's retries)."""
    await service.call(
        "files.upload_v2",  # SlackService.call runs the SDK's method of that name: the three upload steps
        channel=thread.channel,
        thread_ts=thread.ts,
        content=png,
        filename="evalmon-chart.png",
        title=title,
        alt_txt=title,
    )


def github_run_link() -> Link | None:
    """The GitHub Actions run (its job summary and the report.html artifact), when running there."""
    server, repository, run_id = (
        os.environ.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")
    )
    if server and repository and run_id:
        return Link("workflow run (report.html)", f"{server}/{repository}/actions/runs/{run_id}")
    return None


def _section(text: str) -> dict[str, Any]:
    if len(text) > SECTION_LIMIT:
        text = text[: SECTION_LIMIT - 1] + "…"
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}
