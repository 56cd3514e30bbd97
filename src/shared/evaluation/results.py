"""Evaluation results: one row per (item, metric), a DataFrame view and per-metric summaries."""

from __future__ import annotations

import math
import statistics
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from shared.evaluation.columns import RESULT_COLUMNS
from shared.evaluation.item import DatasetItem
from shared.evaluation.metric import MetricResult, MetricStatus

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class ResultRow:
    """One (item, metric) outcome, with the metric identity needed by sinks and the ledger."""

    item: DatasetItem
    metric_name: str
    metric_key: str
    metric_version: str
    score_type: str
    result: MetricResult
    direction: str = "higher_is_better"

    @property
    def status(self) -> MetricStatus:
        return self.result.status

    def as_record(self) -> dict[str, Any]:
        return dict(zip(RESULT_COLUMNS, [*item_values(self.item), *self.metric_values()], strict=True))

    def metric_values(self) -> list[Any]:
        """The metric columns of this row (columns.METRIC_FIELDS), in column order.

        Split from the item columns so writers can encode an item's (long) text once for all of
        its metric rows.
        """
        r = self.result
        return [
            self.metric_name,
            self.metric_key,
            self.metric_version,
            r.score,
            r.passed,
            r.threshold,
            r.label,
            r.status.value,
            r.explanation,
            r.error,
            r.signals,
            r.cost_usd,
            r.latency_s,
            r.model,
            r.prompt_name,
            r.prompt_version,
            r.input_tokens,
            r.output_tokens,
            self.direction,
        ]


def item_values(item: DatasetItem) -> list[Any]:
    """The item columns of a result row (columns.ITEM_FIELDS), in column order."""
    return [
        item.id,
        item.trace_id,
        item.observation_id,
        item.session_id,
        item.source_timestamp.isoformat() if item.source_timestamp else None,
        item.query,
        item.actual_output,
        item.expected_output,
    ]


class MetricSummary(BaseModel):
    """Aggregate of one metric over a run. Errors/skips/deferrals are not part of n or mean.

    `direction` says how to read the mean: a rising mean is good only for higher_is_better
    (a lower_is_better boolean is a flag, its mean the share of items with the problem).
    """

    direction: str = "higher_is_better"
    score_type: str = "numeric"
    n: int = 0
    mean: float | None = None
    median: float | None = None
    min: float | None = None
    max: float | None = None
    pass_rate: float | None = None
    judged: int = 0  # ok rows with a pass/fail verdict: the pass rate's sample size
    std: float | None = None  # sample standard deviation of the scores (baseline alerts on means)
    errors: int = 0
    skipped: int = 0
    deferred: int = 0
    cost_usd: float = 0.0


@dataclass
class EvaluationResult:
    rows: list[ResultRow] = field(default_factory=list)

    def __iter__(self) -> Iterator[ResultRow]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def extend(self, rows: Iterable[ResultRow]) -> None:
        self.rows.extend(rows)

    def to_dataframe(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([row.as_record() for row in self.rows], columns=RESULT_COLUMNS)

    def metric_names(self) -> list[str]:
        return list(dict.fromkeys(row.metric_name for row in self.rows))

    def count(self, status: MetricStatus) -> int:
        return sum(1 for row in self.rows if row.result.status is status)

    @property
    def cost_usd(self) -> float:
        return sum(row.result.cost_usd for row in self.rows)

    def summary(self) -> dict[str, MetricSummary]:
        grouped: dict[str, list[ResultRow]] = {}  # one pass over the rows, metrics in first-seen order
        for row in self.rows:
            grouped.setdefault(row.metric_name, []).append(row)
        return {name: summarise(rows) for name, rows in grouped.items()}


def summarise(rows: list[ResultRow]) -> MetricSummary:
    """One pass over the rows (this runs on every run's full result)."""
    tally = MetricTally(rows[0].direction, rows[0].score_type) if rows else MetricTally()
    for row in rows:
        tally.add(row)
    return tally.summary()


class MetricTally:
    """One metric's figures added up row by row, so a run can summarise chunk after chunk without
    keeping its rows. Scores are kept as 8-byte floats (the median needs them all)."""

    def __init__(self, direction: str = "higher_is_better", score_type: str = "numeric") -> None:
        self.direction = direction
        self.score_type = score_type
        self.n = self.errors = self.skipped = self.deferred = self.judged = self.passed = 0
        self.scores = array("d")
        self.cost_usd = 0.0

    def add(self, row: ResultRow) -> None:
        r = row.result
        status = r.status
        self.cost_usd += r.cost_usd
        if status is MetricStatus.OK:
            self.n += 1
            if r.score is not None and math.isfinite(r.score):
                self.scores.append(r.score)
            if r.passed is not None:
                self.judged += 1
                self.passed += bool(r.passed)
        elif status is MetricStatus.ERROR:
            self.errors += 1
        elif status is MetricStatus.SKIPPED:
            self.skipped += 1
        elif status is MetricStatus.DEFERRED:
            self.deferred += 1

    def summary(self) -> MetricSummary:
        scores = self.scores
        return MetricSummary(
            direction=self.direction,
            score_type=self.score_type,
            n=self.n,
            mean=round(statistics.fmean(scores), 6) if scores else None,
            median=round(statistics.median(scores), 6) if scores else None,
            min=min(scores) if scores else None,
            max=max(scores) if scores else None,
            pass_rate=round(self.passed / self.judged, 6) if self.judged else None,
            judged=self.judged,
            std=round(statistics.stdev(scores), 6) if len(scores) > 1 else None,
            errors=self.errors,
            skipped=self.skipped,
            deferred=self.deferred,
            cost_usd=round(self.cost_usd, 6),
        )


class ResultTally:
    """What a run's results add up to, chunk by chunk: per-metric summaries, status counts, cost,
    items evaluated. Holds numbers, never rows, so memory does not grow with item text."""

    def __init__(self) -> None:
        self.metrics: dict[str, MetricTally] = {}  # first-seen order, like EvaluationResult.summary
        self.rows = 0
        self.items_evaluated = 0  # items with at least one row that was not deferred
        self.cost_usd = 0.0
        self._statuses: Counter[MetricStatus] = Counter()

    def add(self, result: EvaluationResult) -> None:
        """Add one chunk (its items are not in any other chunk)."""
        evaluated: set[str] = set()
        for row in result:
            tally = self.metrics.get(row.metric_name)
            if tally is None:
                tally = self.metrics[row.metric_name] = MetricTally(row.direction, row.score_type)
            tally.add(row)
            status = row.result.status
            self._statuses[status] += 1
            self.cost_usd += row.result.cost_usd
            if status is not MetricStatus.DEFERRED:
                evaluated.add(row.item.id)
        self.rows += len(result)
        self.items_evaluated += len(evaluated)

    def count(self, status: MetricStatus) -> int:
        return self._statuses[status]

    def __len__(self) -> int:
        return self.rows

    def summary(self) -> dict[str, MetricSummary]:
        return {name: tally.summary() for name, tally in self.metrics.items()}
