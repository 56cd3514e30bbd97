"""Helpers for athena's tests: grouping generated rows the way sources group them."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from implementations.athena.generate_traces import GeneratedTrace
from shared.evaluation.item import DatasetItem
from shared.evaluation.metric import BaseMetric, MetricResult
from shared.traces import Trace

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "data" / "samples" / "athena_traces.jsonl"


def group_rows(rows: Iterable[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Consecutive rows sharing a traceId, as the file source groups them."""
    return [list(group) for _, group in itertools.groupby(rows, key=lambda r: r.get("traceId"))]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def by_defect(traces: list[GeneratedTrace], defect: str | None) -> list[GeneratedTrace]:
    """Traces of one defect that still have a usable trace id."""
    return [t for t in traces if t.defect == defect and (t.trace_id or "").strip()]


def as_trace(generated: GeneratedTrace) -> Trace:
    return Trace.from_observations(generated.rows)


def score(metric: BaseMetric, item: DatasetItem) -> MetricResult:
    return asyncio.run(metric.execute(item))
