"""report.md and report.html for one run, written next to summary.json.

DATAFLOW:
  RunSummary (counts, alerts, warnings, errors)      ReportCollector (per-metric tallies, worst items)
        \\                                              /
         +--> MetricLine per metric (n, rate or mean with a 95% interval, direction, baseline delta)
         +--> render_markdown  -> report.md   (GitHub-flavoured: the job summary, Slack, humans)
         +--> render_html      -> report.html (the same content, self-contained, with PNG charts)
"""

from __future__ import annotations

import base64
import html
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import shared.reporting.charts as charts
from shared.reporting.collector import MetricTally, ReportCollector, WorstItem

log = logging.getLogger(__name__)

COUNT_LABELS = {
    "fetched": "fetched",
    "invalid": "invalid records",
    "duplicates": "already scored",
    "sampled": "sampled",
    "evaluated": "evaluated",
    "metric_errors": "metric errors",
    "published_postgres": "published to Postgres",
    "published_langfuse": "published to Langfuse",
    "recorded": "recorded in the ledger",
}


@dataclass(frozen=True)
class BaselineFigure:
    """A metric's level over earlier runs: the band the report compares this run with."""

    runs: int
    n: int
    value: float
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class MetricLine:
    name: str
    direction: str
    stat: str  # "pass rate" or "mean"
    n: int
    value: float | None
    low: float | None
    high: float | None
    errors: int
    skipped: int
    baseline: BaselineFigure | None
    worst: list[WorstItem]

    @property
    def delta(self) -> float | None:
        if self.value is None or self.baseline is None:
            return None
        return self.value - self.baseline.value


def metric_lines(collector: ReportCollector, baseline: Mapping[str, BaselineFigure] | None = None) -> list[MetricLine]:
    """One line per metric: a pass rate (Wilson interval) when it has verdicts, else a mean."""
    lines = []
    for name, tally in collector.tallies.items():
        lines.append(_line(name, tally, (baseline or {}).get(name)))
    return lines


def _line(name: str, tally: MetricTally, baseline: BaselineFigure | None) -> MetricLine:
    if tally.judged:
        interval = tally.pass_interval()
        stat, n, value = "pass rate", tally.judged, tally.pass_rate
    else:
        interval = tally.moments.interval()
        stat, n, value = "mean", tally.moments.n, tally.moments.mean if tally.moments.n else None
    low, high = interval if interval else (None, None)
    return MetricLine(
        name=name,
        direction=tally.direction,
        stat=stat,
        n=n,
        value=value,
        low=low,
        high=high,
        errors=tally.errors,
        skipped=tally.skipped,
        baseline=baseline,
        worst=tally.worst,
    )


def trace_link(base_url: str | None, trace_id: str | None) -> str | None:
    """Langfuse's `/trace/<id>` page redirects to the trace in whichever project holds it."""
    if not base_url or not trace_id:
        return None
    return f"{base_url.rstrip('/')}/trace/{trace_id}"


# -- markdown ----------------------------------------------------------------------------------
def format_value(value: float | None, stat: str) -> str:
    if value is None:
        return "-"
    return f"{value:.1%}" if stat == "pass rate" else f"{value:.4g}"


def _direction_label(direction: str) -> str:
    return "higher is better" if direction == "higher_is_better" else "lower is better"


def delta_text(line: MetricLine) -> str:
    """Change against the baseline, marked when it moved the bad way (a pass rate is bad going down)."""
    delta = line.delta
    if delta is None or line.baseline is None:
        return "no baseline"
    scale = 100 if line.stat == "pass rate" else 1
    shown = round(delta * scale, 1 if line.stat == "pass rate" else 4)
    higher_is_better = line.stat == "pass rate" or line.direction == "higher_is_better"
    worse = shown < 0 if higher_is_better else shown > 0
    amount = f"{abs(shown):.1f} pts" if line.stat == "pass rate" else f"{abs(shown):.4g}"
    sign = "-" if shown < 0 else "+"
    marker = " (worse)" if worse else ""
    return f"{sign}{amount}{marker} vs {format_value(line.baseline.value, line.stat)} over {line.baseline.runs} runs"


def render_markdown(summary: Mapping[str, Any], lines: Sequence[MetricLine], *, langfuse_url: str | None) -> str:
    """GitHub-flavoured markdown: what ran, counts, metrics with intervals, alerts, worst items."""
    window = summary.get("window") or {}
    counts = summary.get("counts") or {}
    out = [
        f"## evalmon: {summary.get('monitor')} - {summary.get('status')}",
        "",
        f"Run `{summary.get('run_id')}` over {_window_text(window)}"
        f" in {summary.get('duration_s', 0):.1f} s; judge cost ${summary.get('cost_usd', 0):.4f}.",
        "",
        "| " + " | ".join(COUNT_LABELS.values()) + " |",
        "|" + "---:|" * len(COUNT_LABELS),
        "| " + " | ".join(str(counts.get(key, 0)) for key in COUNT_LABELS) + " |",
        "",
    ]
    if lines:
        out += [
            "| metric | direction | n | value | 95% interval | errors | skipped | change |",
            "|---|---|---:|---:|---|---:|---:|---|",
        ]
        for line in lines:
            interval = (
                f"{format_value(line.low, line.stat)} - {format_value(line.high, line.stat)}"
                if line.low is not None
                else "-"
            )
            out.append(
                f"| {line.name} | {_direction_label(line.direction)} | {line.n} | "
                f"{line.stat} {format_value(line.value, line.stat)} | {interval} | {line.errors} | {line.skipped} | "
                f"{delta_text(line)} |"
            )
        out.append("")
    else:
        out += ["Nothing was scored in this run.", ""]
    out += _bullets("Alerts", [_alert_text(a) for a in summary.get("alerts") or []])
    out += _bullets("Warnings", summary.get("warnings") or [])
    out += _bullets("Errors", summary.get("errors") or [])
    worst = [(line, item) for line in lines for item in line.worst]
    if worst:
        out += ["### Worst items", "", "| metric | item | score | why | answer |", "|---|---|---:|---|---|"]
        for line, item in worst:
            link = trace_link(langfuse_url, item.trace_id)
            ref = f"[{item.item_id}]({link})" if link else f"`{item.item_id}`"
            score = "-" if item.score is None else f"{item.score:.3g}"
            out.append(f"| {line.name} | {ref} | {score} | {_cell(item.explanation)} | {_cell(item.preview)} |")
        out.append("")
    return "\n".join(out)


def _window_text(window: Mapping[str, Any]) -> str:
    if window.get("applied") is False:
        return "every record of the source (no time window applied)"
    return f"{window.get('since', '?')} .. {window.get('until', '?')}"


def _bullets(title: str, entries: Sequence[str]) -> list[str]:
    if not entries:
        return []
    return [f"### {title}", "", *(f"- {_cell(e)}" for e in entries), ""]


def _alert_text(alert: Mapping[str, Any]) -> str:
    message = alert.get("message")
    return str(message) if message else json.dumps(alert, default=str)


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell (no pipes or line breaks)."""
    return " ".join(str(text).split()).replace("|", "\\|")


# -- html --------------------------------------------------------------------------------------
def render_html(
    summary: Mapping[str, Any], lines: Sequence[MetricLine], collector: ReportCollector, *, langfuse_url: str | None
) -> str:
    """One self-contained page (no CDN, no network): the report's content plus inline PNG charts."""
    window = summary.get("window") or {}
    counts = summary.get("counts") or {}
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>evalmon {_h(summary.get('monitor'))} {_h(summary.get('run_id'))}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{_h(summary.get('monitor'))} <span class='status {_h(summary.get('status'))}'>"
        f"{_h(summary.get('status'))}</span></h1>",
        f"<p>Run <code>{_h(summary.get('run_id'))}</code> over {_h(_window_text(window))}, {float(summary.get('duration_s') or 0):.1f} s, judge cost "
        f"${float(summary.get('cost_usd') or 0):.4f}.</p>",
        "<table><tr>" + "".join(f"<th>{_h(label)}</th>" for label in COUNT_LABELS.values()) + "</tr><tr>",
        "".join(f"<td class='num'>{_h(counts.get(key, 0))}</td>" for key in COUNT_LABELS) + "</tr></table>",
    ]
    if lines:
        parts.append(
            "<h2>Metrics</h2><table><tr><th>metric</th><th>direction</th><th>n</th><th>value</th>"
            "<th>95% interval</th><th>errors</th><th>skipped</th><th>change</th></tr>"
        )
        for line in lines:
            interval = (
                f"{format_value(line.low, line.stat)} - {format_value(line.high, line.stat)}"
                if line.low is not None
                else "-"
            )
            parts.append(
                f"<tr><td>{_h(line.name)}</td><td>{_direction_label(line.direction)}</td>"
                f"<td class='num'>{line.n}</td><td class='num'>{line.stat} {format_value(line.value, line.stat)}</td>"
                f"<td>{interval}</td><td class='num'>{line.errors}</td><td class='num'>{line.skipped}</td>"
                f"<td>{_h(delta_text(line))}</td></tr>"
            )
        parts.append("</table>")
        drawn = report_charts(lines, collector)
        if drawn:
            parts.append("<h2>Charts</h2>")
            parts += [f"<figure><img alt='{_h(alt)}' src='data:image/png;base64,{png}'></figure>" for alt, png in drawn]
    else:
        parts.append("<p>Nothing was scored in this run.</p>")
    for title, entries in (
        ("Alerts", [_alert_text(a) for a in summary.get("alerts") or []]),
        ("Warnings", summary.get("warnings") or []),
        ("Errors", summary.get("errors") or []),
    ):
        if entries:
            parts.append(f"<h2>{title}</h2><ul>" + "".join(f"<li>{_h(e)}</li>" for e in entries) + "</ul>")
    worst = [(line, item) for line in lines for item in line.worst]
    if worst:
        parts.append("<h2>Worst items</h2><table><tr><th>metric</th><th>item</th><th>score</th><th>why</th>")
        parts.append("<th>answer</th></tr>")
        for line, item in worst:
            link = trace_link(langfuse_url, item.trace_id)
            ref = f"<a href='{_h(link)}'>{_h(item.item_id)}</a>" if link else f"<code>{_h(item.item_id)}</code>"
            score = "-" if item.score is None else f"{item.score:.3g}"
            parts.append(
                f"<tr><td>{_h(line.name)}</td><td>{ref}</td><td class='num'>{score}</td>"
                f"<td>{_h(item.explanation)}</td><td>{_h(item.preview)}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _h(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


_CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}"
    "td.num{text-align:right}.status{font-size:60%;padding:2px 8px;border-radius:4px;background:#ddd}"
    ".status.ok{background:#c8e6c9}.status.failed{background:#ffcdd2}.status.partial{background:#ffe0b2}"
    "figure{margin:1em 0}img{max-width:100%}"
)


def report_charts(lines: Sequence[MetricLine], collector: ReportCollector) -> list[tuple[str, str]]:
    """PNG charts as base64: score distributions, and each pass rate against its baseline band."""
    if not charts.available():
        log.info("matplotlib is not installed: report.html has no charts")
        return []
    out: list[tuple[str, str]] = []
    scored = [line for line in lines if collector.tallies[line.name].scores]
    if scored:
        png = charts.distribution_strips(
            [line.name for line in scored], [collector.tallies[line.name].scores for line in scored]
        )
        out.append(("score distribution per metric", _b64(png)))
    rated = [line for line in lines if line.value is not None and line.stat == "pass rate"]  # one 0..1 axis
    if rated:
        rows = [_interval(line) for line in rated]
        title = "pass rate of this run (95% interval) against the baseline band (grey)"
        out.append(("pass rates against the baseline", _b64(charts.interval_chart(rows, title))))
    return out


def _interval(line: MetricLine) -> charts.Interval:
    value = line.value or 0.0
    baseline = line.baseline
    band = None
    if baseline is not None and baseline.low is not None and baseline.high is not None:
        band = (baseline.low, baseline.high)
    low = value if line.low is None else line.low
    high = value if line.high is None else line.high
    return charts.Interval(label=line.name, value=value, low=low, high=high, band=band)


def _b64(png: bytes) -> str:
    return base64.b64encode(png).decode("ascii")


# -- files -------------------------------------------------------------------------------------
def write_run_report(
    directory: Path,
    summary: Mapping[str, Any],
    collector: ReportCollector,
    *,
    baseline: Mapping[str, BaselineFigure] | None = None,
    langfuse_url: str | None = None,
) -> tuple[Path, Path]:
    """Write report.md and report.html into the run folder; returns both paths."""
    lines = metric_lines(collector, baseline)
    directory.mkdir(parents=True, exist_ok=True)
    markdown_path = directory / "report.md"
    html_path = directory / "report.html"
    markdown_path.write_text(render_markdown(summary, lines, langfuse_url=langfuse_url), encoding="utf-8")
    html_path.write_text(render_html(summary, lines, collector, langfuse_url=langfuse_url), encoding="utf-8")
    return markdown_path, html_path
