"""Analyst read helpers: DataFrames filtered by monitor, metric and time; daily aggregates; latest."""

from __future__ import annotations

import asyncio
import math
from datetime import timedelta

import pandas as pd

from shared.database import read
from shared.database.sink import PostgresSink
from shared.evaluation.metric import MetricStatus
from shared.evaluation.results import EvaluationResult
from shared.monitoring.run_context import RunContext
from shared.settings import Settings

from .helpers import T0, item, results, row, run_context


def _publish(settings: Settings, run: RunContext, res: EvaluationResult) -> None:
    async def go() -> None:
        sink = PostgresSink(settings)
        try:
            report = await sink.publish(run, res)
            assert report.ok, report.error
        finally:
            await sink.aclose()

    asyncio.run(go())


def _seed(settings: Settings) -> None:
    day1, day2 = T0 - timedelta(days=1), T0
    a, b, c = item("a", source_timestamp=day1), item("b", source_timestamp=day1), item("c", source_timestamp=day2)
    _publish(
        settings,
        run_context(settings, run_id="run-1"),
        results(
            row(a, "m1", score=0.2, passed=False),
            row(b, "m1", score=0.8, passed=True),
            row(c, "m1", score=1.0, passed=True),
            row(c, "m2", score=None, status=MetricStatus.ERROR, error="boom"),
        ),
    )
    _publish(settings, run_context(settings, monitor="other", run_id="run-x"), results(row(a, "m1", score=0.0)))
    # A later run rescored item a for m1 (new metric version).
    _publish(settings, run_context(settings, run_id="run-2"), results(row(a, "m1", score=0.6, version="v2")))


def test_results_filter_by_monitor_metric_and_time(migrated: Settings) -> None:
    _seed(migrated)
    frame = read.results(monitor="mon", metric="m1", settings=migrated)
    assert sorted(zip(frame["run_id"], frame["item_id"], strict=True)) == [
        ("run-1", "a"),
        ("run-1", "b"),
        ("run-1", "c"),
        ("run-2", "a"),
    ]
    assert str(frame["ts"].dt.tz) == "UTC"
    assert frame.loc[frame["item_id"] == "c", "query"].iloc[0] == "q c"  # item fields joined in
    day2_only = read.results(monitor="mon", since=T0 - timedelta(hours=1), settings=migrated)
    assert set(day2_only["item_id"]) == {"c"}
    until = read.results(monitor="mon", until=(T0 - timedelta(hours=1)).isoformat(), settings=migrated)
    assert set(until["item_id"]) == {"a", "b"}
    assert set(read.results(settings=migrated)["monitor"]) == {"mon", "other"}


def test_daily_metrics_mean_and_pass_rate(migrated: Settings) -> None:
    _seed(migrated)
    daily = read.daily_metrics(monitor="mon", settings=migrated)
    by = {
        (d.date().isoformat(), m): r
        for d, m, r in zip(daily["day"], daily["metric_name"], daily.itertuples(), strict=True)
    }
    day1 = (T0 - timedelta(days=1)).date().isoformat()
    day2 = T0.date().isoformat()
    first = by[(day1, "m1")]
    assert first.n == 3 and math.isclose(first.mean, (0.2 + 0.8 + 0.6) / 3)
    assert math.isclose(first.pass_rate, 1 / 2)  # run-2's row has no pass/fail: not counted
    assert by[(day2, "m1")].mean == 1.0
    errors_only = by[(day2, "m2")]
    assert errors_only.n == 0 and pd.isna(errors_only.mean) and errors_only.errors == 1


def test_latest_scores_one_row_per_item_and_metric(migrated: Settings, pg_url: str) -> None:
    _seed(migrated)
    latest = read.latest_scores(monitor="mon", metric="m1", url=pg_url, settings=migrated)
    assert dict(zip(latest["item_id"], latest["score"], strict=True)) == {"a": 0.6, "b": 0.8, "c": 1.0}
    assert latest.loc[latest["item_id"] == "a", "metric_version"].iloc[0] == "v2"
