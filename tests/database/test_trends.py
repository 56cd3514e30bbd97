"""`evalmon report` against Postgres: run history from evaluation_runs, breakdowns from the item fields."""

from __future__ import annotations

from pathlib import Path

from shared.monitoring.monitor import OnlineMonitor
from shared.reporting.trends import build_trends
from shared.settings import Settings
from tests.core.conftest import write_config, write_traces


def test_trends_and_breakdown_come_from_the_database(tmp_path: Path, migrated: Settings) -> None:
    traces = tmp_path / "traces.jsonl"
    write_traces(traces, 40, seed=5)
    config = write_config(tmp_path, traces, publish={"local": {"dir": str(tmp_path / "runs")}, "postgres": True})
    first = OnlineMonitor.from_yaml(config, settings=migrated).run()
    second = OnlineMonitor.from_yaml(config, overrides=["dedup.store=none"], settings=migrated).run()
    assert first.status == second.status == "ok"

    trends = build_trends("core_test", settings=migrated, by="environment")
    assert trends.source == "postgres"
    pii = [p for p in trends.metrics if p.metric == "pii_leakage"]
    assert [p.n for p in pii] == [first.metrics["pii_leakage"].n, second.metrics["pii_leakage"].n]
    assert [p.bucket for p in pii] == [first.run_id, second.run_id]
    rows = [row for row in trends.breakdown if row.metric == "pii_leakage"]
    assert rows and sum(row.n for row in rows) == first.metrics["pii_leakage"].n  # one row per item, latest run
    assert all(row.low is not None and row.low <= (row.pass_rate or 0) <= (row.high or 1) for row in rows)
