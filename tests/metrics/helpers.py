"""Build a metric from its registry key (as a config would) and score one item synchronously."""

from __future__ import annotations

import asyncio
from typing import Any

from shared.evaluation.item import DatasetItem
from shared.evaluation.metric import BaseMetric, MetricResult, build_metric
from shared.evaluation.runner import evaluate

ONE_MB = 1024 * 1024


def make(key: str, threshold: float | None = None, **params: Any) -> BaseMetric:
    return build_metric(key, params=params, threshold=threshold)


def item(**fields: Any) -> DatasetItem:
    fields.setdefault("id", "item-1")
    return DatasetItem(**fields)


def score(metric: BaseMetric, **fields: Any) -> MetricResult:
    """Run through the real runner, so required-field skips and error rows behave as in a run."""
    result = asyncio.run(evaluate([item(**fields)], [metric]))
    (row,) = result.rows
    return row.result
