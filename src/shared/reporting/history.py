"""A monitor's earlier runs, metric by metric: what baseline alerts compare a run with.

Three places hold a monitor's history; each reader returns the same `RunFigures` list, newest first:

- `postgres_history`: the runs table and the result rows (when the monitor publishes to Postgres);
- `langfuse_history`: the scores the monitor published to Langfuse, read back by score name and
  time range (GET /api/public/v3/scores) and grouped by the run id in their metadata;
- `runs_folder_history`: the summary.json files earlier runs left in the runs folder.

Postgres and Langfuse keep only rows of the metric's current version (a new judge prompt starts a
new history); the runs folder has no versions. Langfuse holds no error rows, so it cannot answer
an error-rate rule.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from shared.evaluation.item import to_utc
from shared.reporting.stats import RunningMoments
from shared.settings import Settings

log = logging.getLogger(__name__)

LANGFUSE_PAGE = 100  # the v3 scores endpoint's largest page
LANGFUSE_MAX_PAGES = 200  # per metric: 20,000 scores, newest first, is history enough


@dataclass
class MetricFigures:
    """One metric's figures over one run (or several, merged): enough for every rule statistic."""

    n: int = 0  # ok rows
    judged: int = 0  # ok rows with a pass/fail verdict
    passed: int = 0
    errors: int = 0
    moments: RunningMoments = field(default_factory=RunningMoments)  # finite scores; n == 0 when unknown

    @classmethod
    def from_summary(cls, figures: Mapping[str, Any]) -> MetricFigures | None:
        """From a MetricSummary (or its JSON in summary.json). Older summaries have no `judged` or
        `std`: every scored row then counts as judged, and a numeric mean has no variance (n = 0)."""
        n = int(figures.get("n") or 0)
        errors = int(figures.get("errors") or 0)
        if not n and not errors:
            return None
        pass_rate = figures.get("pass_rate")
        judged = int(figures.get("judged") or (n if pass_rate is not None else 0))
        passed = round(float(pass_rate) * judged) if pass_rate is not None else 0
        moments = RunningMoments()
        mean, std = figures.get("mean"), figures.get("std")
        if mean is not None and std is not None and n > 1:
            moments = RunningMoments(n=n, mean=float(mean), m2=float(std) ** 2 * (n - 1))
        elif mean is not None and figures.get("score_type") == "boolean":  # 0/1 scores: the mean says it all
            moments = RunningMoments(n=n, mean=float(mean), m2=n * float(mean) * (1 - float(mean)))
        return cls(n=n, judged=judged, passed=passed, errors=errors, moments=moments)

    def merge(self, other: MetricFigures) -> None:
        self.n += other.n
        self.judged += other.judged
        self.passed += other.passed
        self.errors += other.errors
        self.moments.merge(other.moments)


@dataclass(frozen=True)
class RunFigures:
    """One earlier run: its id, the end of its window, and its figures per metric."""

    run_id: str
    until: datetime
    metrics: dict[str, MetricFigures]


def select_runs(
    runs: Sequence[RunFigures], *, before: datetime, runs_limit: int | None, days: float | None
) -> list[RunFigures]:
    """The runs a baseline uses, newest first: windows ending before `before`, the last `runs_limit`
    of them or those of the last `days` days."""
    earlier = sorted((r for r in runs if r.until < before), key=lambda r: (r.until, r.run_id), reverse=True)
    if days is not None:
        start = before - timedelta(days=days)
        earlier = [r for r in earlier if r.until >= start]
    return earlier[:runs_limit] if runs_limit is not None else earlier


# -- runs folder ---------------------------------------------------------------------------------
def runs_folder_history(
    runs_root: Path,
    monitor: str,
    *,
    before: datetime,
    exclude_run_id: str,
    runs_limit: int | None = None,
    days: float | None = None,
) -> list[RunFigures]:
    """Finished runs (ok or partial) of `monitor` from their summary.json files; unreadable ones skipped."""
    found: list[RunFigures] = []
    marker = f"-{monitor}-"
    for path in runs_root.glob(f"*{marker}*/summary.json"):
        if path.parent.name == exclude_run_id:
            continue
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
            until = _parse_time(str((summary.get("window") or {}).get("until") or ""))
        except (OSError, ValueError) as exc:
            log.debug("history: skipping %s (%s)", path, exc)
            continue
        if summary.get("monitor") != monitor or summary.get("status") not in ("ok", "partial") or until is None:
            continue
        metrics = {
            name: parsed
            for name, figures in (summary.get("metrics") or {}).items()
            if isinstance(figures, dict) and (parsed := MetricFigures.from_summary(figures)) is not None
        }
        found.append(RunFigures(run_id=str(summary.get("run_id") or path.parent.name), until=until, metrics=metrics))
    return select_runs(found, before=before, runs_limit=runs_limit, days=days)


def _parse_time(value: str) -> datetime | None:
    if not value:
        return None
    return to_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))


# -- Postgres ------------------------------------------------------------------------------------
_RUNS_SQL = """
SELECT run_id, window_until FROM evaluation_runs
WHERE monitor = %s AND run_id <> %s AND status IN ('ok', 'partial')
  AND window_until IS NOT NULL AND window_until < %s AND window_until >= %s
ORDER BY window_until DESC, run_id DESC
LIMIT %s
"""

# Only ok rows count towards n, scores and verdicts (as in a run summary); NaN and infinities are no score.
_FIGURES_SQL = """
SELECT r.run_id, r.metric_name,
       count(*) FILTER (WHERE r.status = 'ok') AS n,
       count(*) FILTER (WHERE r.status = 'ok' AND r.passed IS NOT NULL) AS judged,
       count(*) FILTER (WHERE r.status = 'ok' AND r.passed) AS passed,
       count(*) FILTER (WHERE r.status = 'error') AS errors,
       count(*) FILTER (WHERE r.status = 'ok' AND r.score NOT IN ('NaN', 'Infinity', '-Infinity')) AS scored,
       avg(r.score) FILTER (WHERE r.status = 'ok' AND r.score NOT IN ('NaN', 'Infinity', '-Infinity')) AS mean,
       var_samp(r.score) FILTER (WHERE r.status = 'ok' AND r.score NOT IN ('NaN', 'Infinity', '-Infinity')) AS var
FROM evaluation_results r
JOIN unnest(%s::text[], %s::text[]) AS wanted(metric_name, metric_version)
  ON wanted.metric_name = r.metric_name AND wanted.metric_version = r.metric_version
WHERE r.monitor = %s AND r.run_id = ANY(%s)
GROUP BY r.run_id, r.metric_name
"""


async def postgres_history(
    settings: Settings,
    monitor: str,
    versions: Mapping[str, str],
    *,
    before: datetime,
    exclude_run_id: str,
    runs_limit: int | None = None,
    days: float | None = None,
) -> list[RunFigures]:
    """Finished runs from `evaluation_runs`, their figures summed from `evaluation_results` rows of
    each metric's current version. A row redone by a later run counts for that later run."""
    return await asyncio.to_thread(
        _postgres_history, settings, monitor, dict(versions), before, exclude_run_id, runs_limit, days
    )


def _postgres_history(
    settings: Settings,
    monitor: str,
    versions: dict[str, str],
    before: datetime,
    exclude_run_id: str,
    runs_limit: int | None,
    days: float | None,
) -> list[RunFigures]:
    from shared.database.connection import connect, schema_name, sync_transaction

    start = before - timedelta(days=days) if days is not None else datetime.min.replace(tzinfo=before.tzinfo)
    limit = runs_limit if runs_limit is not None else 100_000
    names = list(versions)
    with connect(settings) as conn, sync_transaction(conn, schema_name(settings)), conn.cursor() as cur:
        cur.execute(_RUNS_SQL, [monitor, exclude_run_id, before, start, limit])
        found: list[Any] = cur.fetchall()
        runs = {str(run_id): to_utc(until) for run_id, until in found}
        if not runs:
            return []
        cur.execute(_FIGURES_SQL, [names, [versions[n] for n in names], monitor, list(runs)])
        rows: list[Any] = cur.fetchall()
    per_run: dict[str, dict[str, MetricFigures]] = {run_id: {} for run_id in runs}
    for run_id, metric, n, judged, passed, errors, scored, mean, var in rows:
        moments = RunningMoments()
        if scored and mean is not None:
            moments = RunningMoments(n=int(scored), mean=float(mean), m2=float(var or 0.0) * (int(scored) - 1))
        per_run[str(run_id)][str(metric)] = MetricFigures(
            n=int(n), judged=int(judged), passed=int(passed), errors=int(errors), moments=moments
        )
    return [
        RunFigures(run_id=run_id, until=until, metrics=per_run[run_id])
        for run_id, until in runs.items()
        if until is not None
    ]


# -- Langfuse ------------------------------------------------------------------------------------
async def langfuse_history(
    client: Any,
    monitor: str,
    versions: Mapping[str, str],
    *,
    since: datetime,
    until: datetime,
    exclude_run_id: str,
) -> list[RunFigures]:
    """Scores this monitor published in [since, until) (score time: the trace's time), per run.

    Reads each metric's scores by name and time range, newest first, keeps those whose metadata
    names this monitor and the metric's current version, and groups them by the run that wrote
    them. A run's `until` is its newest score's time. Errors were never published: `errors` is 0.
    """
    from shared.langfuse.client import call_api

    per_run: dict[str, dict[str, MetricFigures]] = {}
    newest: dict[str, datetime] = {}
    for metric, version in versions.items():
        cursor: str | None = None
        for _ in range(LANGFUSE_MAX_PAGES):
            page = await call_api(
                client.api.scores.get_many,
                name=metric,
                from_timestamp=since,
                to_timestamp=until,
                fields="details",
                limit=LANGFUSE_PAGE,
                cursor=cursor,
            )
            for score in page.data:
                metadata = score.metadata if isinstance(score.metadata, dict) else {}
                run_id = metadata.get("run_id")
                if metadata.get("monitor") != monitor or metadata.get("metric_version") != version:
                    continue
                if not isinstance(run_id, str) or run_id == exclude_run_id:
                    continue
                figures = per_run.setdefault(run_id, {}).setdefault(metric, MetricFigures())
                _add_score(figures, score.value, metadata.get("passed"))
                stamp = to_utc(score.timestamp)
                if stamp is not None and (run_id not in newest or stamp > newest[run_id]):
                    newest[run_id] = stamp
            cursor = getattr(page.meta, "cursor", None)
            if not cursor:
                break
        else:
            log.warning("Langfuse history of '%s' stops at %d scores", metric, LANGFUSE_PAGE * LANGFUSE_MAX_PAGES)
    return sorted(
        (RunFigures(run_id=r, until=newest[r], metrics=m) for r, m in per_run.items() if r in newest),
        key=lambda r: (r.until, r.run_id),
        reverse=True,
    )


def _add_score(figures: MetricFigures, value: Any, passed: Any) -> None:
    figures.n += 1
    if isinstance(value, bool):
        value = 1.0 if value else 0.0
    if isinstance(value, int | float) and math.isfinite(value):
        figures.moments.add(float(value))
    if isinstance(passed, bool):
        figures.judged += 1
        figures.passed += passed
