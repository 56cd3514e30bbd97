"""A tiny real monitor for end-to-end scheduler and backfill tests: a CSV trace file, the file
source, the `non_empty` metric, and a CSV ledger, all inside a temporary directory."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

T0 = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)
N_TRACES = 12  # one every 15 minutes: 4 per hour over [T0, T0 + 3h)

SLOW_METRIC = """
import asyncio

from shared.evaluation.item import DatasetItem
from shared.evaluation.metric import BaseMetric, MetricResult, metric


@metric(key="slow_sleep", description="sleeps, to keep a run busy", required_fields=(), kind="heuristic")
class SlowSleep(BaseMetric):
    async def execute(self, item: DatasetItem) -> MetricResult:
        await asyncio.sleep(30)
        return self.result(1.0, "slept")
"""


def write_monitor(
    root: Path, *, interval_minutes: float = 0.02, metric: str = "non_empty", name: str = "sched_e2e"
) -> Path:
    """Write traces.csv and <name>.yaml under `root`; paths in the config are relative to `root`."""
    with (root / "traces.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "timestamp", "query", "actual_output"])
        for i in range(N_TRACES):
            stamp = (T0 + timedelta(minutes=15 * i)).isoformat().replace("+00:00", "Z")
            writer.writerow([f"t{i}", stamp, f"question {i}", "" if i % 5 == 0 else f"answer {i}"])
    if metric == "slow_sleep":
        (root / "slow_metric_plugin.py").write_text(SLOW_METRIC, encoding="utf-8")
    config = root / f"{name}.yaml"
    lines = [
        f"monitor: {name}",
        *(["plugins: [slow_metric_plugin]"] if metric == "slow_sleep" else []),
        "source: {type: file, path: traces.csv}",
        "window: {lookback_minutes: 100000000}",
        f"metrics: [{{key: {metric}}}]",
        "dedup: {path: ledger.csv}",
        "publish: {local: {dir: runs}}",
        f"schedule: {{interval_minutes: {interval_minutes}}}",
    ]
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config
