"""Build a metric from its registry key (as a config would) and score one item synchronously."""

from __future__ import annotations

import asyncio
from typing import Any

from shared.evaluation.item import DatasetItem
from shared.evaluation.metric import BaseMetric, MetricResult, build_metric
from shared.evaluation.results import ResultRow
from shared.evaluation.runner import evaluate

ONE_MB = 1024 * 1024


def make(key: str, threshold: float | None = None, **params: Any) -> BaseMetric:
    return build_metric(key, params=params, threshold=threshold)


def item(**fields: Any) -> DatasetItem:
    fields.setdefault("id", "item-1")
    return DatasetItem(**fields)


def run_rows(items: list[DatasetItem], metrics: list[BaseMetric]) -> list[ResultRow]:
    """`evaluate` under asyncio.run, returning the rows.

    The rows leave through a list built after the loop closes: Python 3.11's asyncio.run reprs
    its main task (and so the task's result) while restoring the SIGINT handler, which costs
    seconds when the result holds 1 MB strings.
    """
    out: list[ResultRow] = []

    async def main() -> None:
        out.extend((await evaluate(items, metrics)).rows)

    asyncio.run(main())
    return out


def score(metric: BaseMetric, **fields: Any) -> MetricResult:
    """Run through the real runner, so required-field skips and error rows behave as in a run."""
    (row,) = run_rows([item(**fields)], [metric])
    return row.result
