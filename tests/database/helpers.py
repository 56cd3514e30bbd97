"""Plain-data builders for the database tests (run contexts, items, result rows)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from shared.evaluation.item import DatasetItem
from shared.evaluation.metric import MetricResult, MetricStatus
from shared.evaluation.results import EvaluationResult, ResultRow
from shared.monitoring.config import MonitorConfig
from shared.monitoring.run_context import RunContext, new_run_id
from shared.monitoring.window import Window
from shared.settings import Settings

T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def run_context(
    settings: Settings, *, monitor: str = "mon", source_key: str = "src", run_id: str | None = None
) -> RunContext:
    config = MonitorConfig.model_validate(
        {"monitor": monitor, "source": {"type": "file", "path": "x.jsonl"}, "metrics": [{"key": "m"}]}
    )
    return RunContext(
        run_id=run_id or new_run_id(monitor),
        monitor=monitor,
        config=config,
        config_hash=config.config_hash(),
        source_key=source_key,
        window=Window(T0 - timedelta(hours=1), T0),
        settings=settings,
        base_dir=Path("."),
    )


def item(item_id: str, **fields: Any) -> DatasetItem:
    base: dict[str, Any] = {
        "id": item_id,
        "query": f"q {item_id}",
        "actual_output": f"a {item_id}",
        "trace_id": f"trace-{item_id}",
        "source_timestamp": T0 - timedelta(minutes=5),
    }
    base.update(fields)
    return DatasetItem(**base)


def row(
    it: DatasetItem, metric: str = "m1", *, score: float | None = 0.5, version: str = "v1", **result: Any
) -> ResultRow:
    status = result.pop("status", MetricStatus.OK)
    return ResultRow(
        item=it,
        metric_name=metric,
        metric_key=metric,
        metric_version=version,
        score_type="numeric",
        result=MetricResult(score=score, status=status, **result),
    )


def results(*rows: ResultRow) -> EvaluationResult:
    return EvaluationResult(rows=list(rows))
