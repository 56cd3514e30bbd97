"""Trends over runs: how each metric of a monitor moves from run to run (or hour, or day).

DATAFLOW (`evalmon report MONITOR`, and the notebook, which calls the same functions):
  load_run_summaries     Postgres `evaluation_runs.summary` when DATABASE_URL is set, else the
                         summary.json files in the monitor's runs folder -> RunSummary dicts
  -> metric_trends       per metric and bucket (run | hour | day): n, pass rate (Wilson band)
                         or mean (normal band), errors; buckets pool their runs' verdicts
  -> volume              per bucket: fetched, evaluated, alerts fired
  -> breakdown           (Postgres only) per value of an item field (environment, tag, model,
                         prompt version, ...) and metric: n and pass rate with its band
  -> write_trend_report  trend.html (self-contained) + one PNG per chart, or `--json` numbers
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import shared.reporting.charts as charts
from shared.errors import ConfigError
from shared.evaluation.item import to_utc
from shared.reporting.stats import wilson_interval, z_for
from shared.settings import Settings

log = logging.getLogger(__name__)

Bucket = Literal["run", "hour", "day"]
FINISHED = ("ok", "partial", "failed")


@dataclass(frozen=True)
class TrendPoint:
    metric: str
    bucket: str  # the run id, or the hour/day start (ISO 8601, UTC)
    at: str  # when: the window's end (ISO 8601, UTC)
    stat: str  # "pass_rate" or "mean"
    n: int
    value: float | None
    low: float | None
    high: float | None
    errors: int
    runs: int


@dataclass(frozen=True)
class VolumePoint:
    bucket: str
    at: str
    runs: int
    fetched: int
    evaluated: int
    alerts: int


@dataclass(frozen=True)
class BreakdownRow:
    field: str
    value: str
    metric: str
    n: int
    pass_rate: float | None
    low: float | None
    high: float | None
    mean: float | None


@dataclass
class Trends:
    monitor: str
    source: str  # "postgres" or the runs folder
    every: Bucket
    metrics: list[TrendPoint] = field(default_factory=list)
    volume: list[VolumePoint] = field(default_factory=list)
    breakdown: list[BreakdownRow] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- loading ---------------------------------------------------------------------------------------
def load_run_summaries(
    monitor: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    settings: Settings | None = None,
    runs_dir: Path = Path("data/runs"),
) -> tuple[list[dict[str, Any]], str]:
    """Finished runs of the monitor whose window ends in [since, until), oldest first, and where
    they came from. Postgres when the settings carry DATABASE_URL, else the runs folder."""
    if settings is not None and settings.database_url is not None:
        return _postgres_summaries(monitor, since, until, settings), "postgres"
    summaries = []
    for path in sorted(runs_dir.glob(f"*-{monitor}-*/summary.json")):
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("skipping unreadable run summary %s (%s)", path, exc)
            continue
        if summary.get("monitor") == monitor and _in_range(_ended(summary), since, until):
            summaries.append(summary)
    return [s for s in summaries if s.get("status") in FINISHED], str(runs_dir)


def _postgres_summaries(
    monitor: str, since: datetime | None, until: datetime | None, settings: Settings
) -> list[dict[str, Any]]:
    from shared.database.connection import connect, schema_name, sync_transaction

    query = (
        "SELECT summary FROM evaluation_runs WHERE monitor = %s AND summary IS NOT NULL"
        " AND status = ANY(%s) AND (%s::timestamptz IS NULL OR window_until >= %s)"
        " AND (%s::timestamptz IS NULL OR window_until < %s) ORDER BY window_until, run_id"
    )
    with connect(settings) as conn, sync_transaction(conn, schema_name(settings)), conn.cursor() as cur:
        cur.execute(query, [monitor, list(FINISHED), since, since, until, until])
        rows: list[tuple[dict[str, Any]]] = cur.fetchall()  # type: ignore[assignment]
        return [row[0] for row in rows]


def _ended(summary: Mapping[str, Any]) -> datetime | None:
    until = (summary.get("window") or {}).get("until")
    try:
        return to_utc(datetime.fromisoformat(str(until).replace("Z", "+00:00"))) if until else None
    except ValueError:
        return None


def _in_range(when: datetime | None, since: datetime | None, until: datetime | None) -> bool:
    if when is None:
        return since is None and until is None
    return (since is None or when >= since) and (until is None or when < until)


# -- numbers ---------------------------------------------------------------------------------------
def _bucket_of(summary: Mapping[str, Any], every: Bucket) -> tuple[str, str]:
    ended = _ended(summary)
    at = ended.isoformat() if ended else ""
    if every == "run" or ended is None:
        return str(summary.get("run_id")), at
    start = ended.replace(minute=0, second=0, microsecond=0)
    if every == "day":
        start = start.replace(hour=0)
    return start.isoformat(), start.isoformat()


def metric_trends(summaries: Iterable[Mapping[str, Any]], every: Bucket = "run") -> list[TrendPoint]:
    """Per metric and bucket: the pooled pass rate (Wilson band) or the mean (normal band)."""
    pools: dict[tuple[str, str], dict[str, Any]] = {}
    for summary in summaries:
        bucket, at = _bucket_of(summary, every)
        for name, figures in (summary.get("metrics") or {}).items():
            pool = pools.setdefault(
                (name, bucket),
                {"at": at, "n": 0, "judged": 0, "passed": 0.0, "sum": 0.0, "sq": 0.0, "err": 0, "runs": 0},
            )
            n = int(figures.get("n") or 0)
            judged = int(figures.get("judged") or n)
            pool["runs"] += 1
            pool["err"] += int(figures.get("errors") or 0)
            pool["n"] += n
            if figures.get("pass_rate") is not None:
                pool["judged"] += judged
                pool["passed"] += float(figures["pass_rate"]) * judged
            if figures.get("mean") is not None and n:
                mean = float(figures["mean"])
                std = float(figures.get("std") or 0.0)
                pool["sum"] += mean * n
                pool["sq"] += (std * std + mean * mean) * n
    points = []
    for (name, bucket), pool in pools.items():
        if pool["judged"]:
            passed = round(pool["passed"])
            interval = wilson_interval(passed, pool["judged"])
            value: float | None = passed / pool["judged"]
            stat, n = "pass_rate", pool["judged"]
        else:
            n = pool["n"]
            value = pool["sum"] / n if n else None
            interval = _mean_band(value, pool["sq"] / n if n else 0.0, n)
            stat = "mean"
        low, high = interval if interval else (None, None)
        points.append(TrendPoint(name, bucket, pool["at"], stat, n, value, low, high, pool["err"], pool["runs"]))
    return sorted(points, key=lambda p: (p.metric, p.at, p.bucket))


def _mean_band(mean: float | None, mean_of_squares: float, n: int) -> tuple[float, float] | None:
    if mean is None or n < 2:
        return None
    variance = max(0.0, mean_of_squares - mean * mean) * n / (n - 1)
    half = z_for(0.95) * (variance / n) ** 0.5
    return mean - half, mean + half


def volume(summaries: Iterable[Mapping[str, Any]], every: Bucket = "run") -> list[VolumePoint]:
    """Per bucket: runs, traces fetched, items evaluated and alerts fired."""
    pools: dict[str, dict[str, Any]] = {}
    for summary in summaries:
        bucket, at = _bucket_of(summary, every)
        counts = summary.get("counts") or {}
        pool = pools.setdefault(bucket, {"at": at, "runs": 0, "fetched": 0, "evaluated": 0, "alerts": 0})
        pool["runs"] += 1
        pool["fetched"] += int(counts.get("fetched") or 0)
        pool["evaluated"] += int(counts.get("evaluated") or 0)
        pool["alerts"] += len(summary.get("alerts") or [])
    return sorted((VolumePoint(bucket, **pool) for bucket, pool in pools.items()), key=lambda v: (v.at, v.bucket))


# Item fields a breakdown can use: result columns, else a key of the item's metadata.
_COLUMN_FIELDS = {"model": "model", "prompt_version": "prompt_version", "metric_version": "metric_version"}


def breakdown(
    monitor: str,
    by: str,
    *,
    since: datetime | None,
    until: datetime | None,
    settings: Settings | None,
) -> list[BreakdownRow]:
    """Per value of `by` and metric, over the latest result of each item in the range (Postgres)."""
    if settings is None or settings.database_url is None:
        raise ConfigError("a breakdown reads item fields from the results database: set DATABASE_URL", field="--by")
    from shared.database.connection import connect, schema_name, sync_transaction

    if by in _COLUMN_FIELDS:
        group = _COLUMN_FIELDS[by]
    elif by in ("tag", "tags"):
        group = "jsonb_array_elements_text(CASE WHEN jsonb_typeof(metadata->'tags') = 'array' THEN metadata->'tags' ELSE '[]'::jsonb END)"
    else:
        group = "metadata->>%(field)s"
    query = f"""
        SELECT {group} AS value, metric_name,
               count(*) FILTER (WHERE status = 'ok') AS n,
               count(*) FILTER (WHERE status = 'ok' AND passed IS NOT NULL) AS judged,
               count(*) FILTER (WHERE status = 'ok' AND passed) AS passed,
               avg(score) FILTER (WHERE status = 'ok') AS mean
        FROM evaluation_results_with_items
        WHERE monitor = %(monitor)s
          AND (%(since)s::timestamptz IS NULL OR ts >= %(since)s)
          AND (%(until)s::timestamptz IS NULL OR ts < %(until)s)
        GROUP BY 1, 2 ORDER BY 2, 1
    """
    params = {"monitor": monitor, "since": since, "until": until, "field": by}
    with connect(settings) as conn, sync_transaction(conn, schema_name(settings)), conn.cursor() as cur:
        cur.execute(query.encode("utf-8"), params)
        rows: list[tuple[Any, str, int, int, int, Any]] = cur.fetchall()  # type: ignore[assignment]
    out = []
    for value, metric, n, judged, passed, mean in rows:
        interval = wilson_interval(int(passed), int(judged)) if judged else None
        low, high = interval if interval else (None, None)
        out.append(
            BreakdownRow(
                field=by,
                value="(none)" if value is None else str(value),
                metric=str(metric),
                n=int(n),
                pass_rate=int(passed) / int(judged) if judged else None,
                low=low,
                high=high,
                mean=float(mean) if mean is not None else None,
            )
        )
    return out


def build_trends(
    monitor: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    every: Bucket = "run",
    by: str | None = None,
    settings: Settings | None = None,
    runs_dir: Path = Path("data/runs"),
) -> Trends:
    """Everything `evalmon report` shows, as plain numbers (the notebook calls this too)."""
    summaries, source = load_run_summaries(monitor, since=since, until=until, settings=settings, runs_dir=runs_dir)
    trends = Trends(monitor=monitor, source=source, every=every)
    trends.metrics = metric_trends(summaries, every)
    trends.volume = volume(summaries, every)
    if by:
        trends.breakdown = breakdown(monitor, by, since=since, until=until, settings=settings)
    return trends


# -- output ----------------------------------------------------------------------------------------
def write_trend_report(trends: Trends, out_dir: Path) -> list[Path]:
    """report.html (self-contained, charts inline) and one PNG per chart in `out_dir`."""
    import base64

    out_dir.mkdir(parents=True, exist_ok=True)
    charts = _trend_charts(trends)
    written = []
    for name, png in charts:
        path = out_dir / f"{name}.png"
        path.write_bytes(png)
        written.append(path)
    page = _trend_html(trends, [(name, base64.b64encode(png).decode("ascii")) for name, png in charts])
    html_path = out_dir / "report.html"
    html_path.write_text(page, encoding="utf-8")
    return [html_path, *written]


def _trend_charts(trends: Trends) -> list[tuple[str, bytes]]:
    """One PNG per metric (value and band over time), the volume, and the breakdown."""
    out: list[tuple[str, bytes]] = []
    by_metric: dict[str, list[TrendPoint]] = {}
    for point in trends.metrics:
        by_metric.setdefault(point.metric, []).append(point)
    for metric, points in by_metric.items():
        shown = [p for p in points if p.value is not None]
        if not shown:
            continue
        values = [p.value or 0.0 for p in shown]
        lows = [v if p.low is None else p.low for p, v in zip(shown, values, strict=True)]
        highs = [v if p.high is None else p.high for p, v in zip(shown, values, strict=True)]
        labels = [p.at[:16].replace("T", " ") for p in shown]
        title = f"{metric}: {shown[0].stat.replace('_', ' ')} per {trends.every} (95% interval)"
        out.append((f"trend_{_safe(metric)}", charts.series_chart(labels, values, lows, highs, title)))
    if trends.volume:
        labels = [v.at[:16].replace("T", " ") for v in trends.volume]
        png = charts.volume_chart(
            labels,
            [v.evaluated for v in trends.volume],
            [bool(v.alerts) for v in trends.volume],
            f"items evaluated per {trends.every}",
        )
        out.append(("volume", png))
    rated = [row for row in trends.breakdown if row.pass_rate is not None]
    if rated:
        rows = [
            charts.Interval(
                label=f"{row.metric} | {row.value}",
                value=row.pass_rate or 0.0,
                low=row.low if row.low is not None else row.pass_rate or 0.0,
                high=row.high if row.high is not None else row.pass_rate or 0.0,
            )
            for row in rated
        ]
        out.append((f"by_{_safe(rated[0].field)}", charts.interval_chart(rows, f"pass rate by {rated[0].field}")))
    return out


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def _trend_html(trends: Trends, charts: Sequence[tuple[str, str]]) -> str:
    import html

    def h(value: Any) -> str:
        return html.escape("" if value is None else str(value), quote=True)

    def fmt(value: float | None, stat: str) -> str:
        if value is None:
            return "-"
        return f"{value:.1%}" if stat == "pass_rate" else f"{value:.4g}"

    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>evalmon trends {h(trends.monitor)}</title><style>",
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse}",
        "th,td{border:1px solid #ccc;padding:3px 8px}td.num{text-align:right}img{max-width:100%}</style></head><body>",
        f"<h1>{h(trends.monitor)}: trends per {h(trends.every)}</h1>",
        f"<p>From {h(trends.source)}: {len(trends.volume)} {h(trends.every)}(s).</p>",
    ]
    if not trends.metrics:
        parts.append("<p>No finished runs in this range.</p>")
    parts += [f"<figure><img alt='{h(name)}' src='data:image/png;base64,{data}'></figure>" for name, data in charts]
    if trends.metrics:
        parts.append(
            "<h2>Numbers</h2><table><tr><th>metric</th><th>when</th><th>n</th><th>value</th><th>95% interval</th>"
            "<th>errors</th></tr>"
        )
        for p in trends.metrics:
            parts.append(
                f"<tr><td>{h(p.metric)}</td><td>{h(p.at)}</td><td class='num'>{p.n}</td>"
                f"<td class='num'>{fmt(p.value, p.stat)}</td><td>{fmt(p.low, p.stat)} - {fmt(p.high, p.stat)}</td>"
                f"<td class='num'>{p.errors}</td></tr>"
            )
        parts.append("</table>")
    if trends.breakdown:
        parts.append(f"<h2>By {h(trends.breakdown[0].field)}</h2><table><tr><th>metric</th><th>value</th><th>n</th>")
        parts.append("<th>pass rate</th><th>95% interval</th><th>mean</th></tr>")
        for row in trends.breakdown:
            parts.append(
                f"<tr><td>{h(row.metric)}</td><td>{h(row.value)}</td><td class='num'>{row.n}</td>"
                f"<td class='num'>{fmt(row.pass_rate, 'pass_rate')}</td>"
                f"<td>{fmt(row.low, 'pass_rate')} - {fmt(row.high, 'pass_rate')}</td>"
                f"<td class='num'>{fmt(row.mean, 'mean')}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)
