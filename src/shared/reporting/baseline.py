"""A monitor's recent level per metric, from the summaries its earlier runs left in the runs folder.

Enough for the report's "change" column and baseline band on any machine that keeps its runs
folder (a laptop, a scheduler host, a cron that caches it); it needs no database.
"""

from __future__ import annotations

import json
import logging
import statistics
from pathlib import Path

from shared.reporting.run_report import BaselineFigure

log = logging.getLogger(__name__)


def local_baseline(
    runs_root: Path, monitor: str, *, before_run_id: str, max_runs: int = 24
) -> dict[str, BaselineFigure]:
    """Per metric: the pooled level of the monitor's last `max_runs` finished runs before this one.

    Pass rates pool verdicts (weighted by n); the band is the 10th-90th percentile of the runs'
    own values, which shows what normal run-to-run movement looks like.
    """
    summaries = []
    prefix_marker = f"-{monitor}-"
    started = before_run_id.split("-", 1)[0]  # run ids start with their UTC start second
    candidates = sorted(
        (
            p
            for p in runs_root.glob("*/summary.json")
            if prefix_marker in p.parent.name
            and p.parent.name != before_run_id
            and p.parent.name.split("-", 1)[0] <= started
        ),
        key=lambda p: p.parent.name,
        reverse=True,
    )
    for path in candidates:
        try:
            summary = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.debug("baseline: skipping %s (%s)", path, exc)
            continue
        if summary.get("monitor") != monitor or summary.get("status") not in ("ok", "partial"):
            continue
        summaries.append(summary)
        if len(summaries) >= max_runs:
            break
    per_metric: dict[str, list[tuple[int, float]]] = {}
    for summary in summaries:
        for name, figures in (summary.get("metrics") or {}).items():
            n = int(figures.get("n") or 0)
            value = figures.get("pass_rate")
            if value is None:
                value = figures.get("mean")
            if n and value is not None:
                per_metric.setdefault(name, []).append((n, float(value)))
    baseline = {}
    for name, runs in per_metric.items():
        total = sum(n for n, _ in runs)
        pooled = sum(n * value for n, value in runs) / total
        values = sorted(value for _, value in runs)
        low, high = (values[0], values[-1]) if len(values) < 5 else _decile_band(values)
        baseline[name] = BaselineFigure(runs=len(runs), n=total, value=pooled, low=low, high=high)
    return baseline


def _decile_band(values: list[float]) -> tuple[float, float]:
    deciles = statistics.quantiles(values, n=10)
    return deciles[0], deciles[-1]
