"""What the Langfuse sink writes: one score body per (item, metric), under a deterministic id.

Kept apart from the sink so that the sink's helpers (experiment mode, the review loop) and
calibration (which finds evalmon's scores by these ids) read it without importing the sink.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from langfuse.api.scores.types import CreateScoreRequest

from shared.evaluation.results import ResultRow
from shared.monitoring.run_context import RunContext
from shared.monitoring.sinks.base import PairKey

# Fixed namespace: ids must be the same on every machine and every run, forever.
SCORE_NAMESPACE = uuid.UUID("6f1b7c1e-4c55-5a8e-9d3e-0e7a1f2c9b41")
DATA_TYPES = {"numeric": "NUMERIC", "boolean": "BOOLEAN", "categorical": "CATEGORICAL"}
# Langfuse environment names: lowercase letters, digits, `-` and `_`, not starting with `langfuse`.
_ENVIRONMENT_RE = re.compile(r"(?!langfuse)[a-z0-9_-]{1,40}")


def score_id(monitor: str, source_key: str, item_id: str, metric_name: str) -> str:
    """The deterministic Langfuse score id of one (item, metric) pair (architecture.md section 3)."""
    return str(uuid.uuid5(SCORE_NAMESPACE, "\x1f".join((monitor, source_key, item_id, metric_name))))


@dataclass
class PreparedScore:
    pair: PairKey
    body: CreateScoreRequest
    id: str


def score_value(row: ResultRow) -> tuple[str, float | str] | None:
    """(data type, value) for a row, or None when the metric gave nothing publishable."""
    result = row.result
    data_type = DATA_TYPES.get(row.score_type, "NUMERIC")
    if data_type == "CATEGORICAL":
        label = result.label if result.label is not None else None
        return (data_type, label) if label else None
    if data_type == "BOOLEAN":
        if result.passed is not None and result.score is None:
            return data_type, 1.0 if result.passed else 0.0
        if result.score is None or not math.isfinite(result.score):
            return None
        return data_type, 1.0 if result.score >= 0.5 else 0.0
    if result.score is None or not math.isfinite(result.score):
        return None
    return data_type, float(result.score)


def target_of(run: RunContext, row: ResultRow) -> str | None:
    """The id the score attaches to: the observation (observation-level) or the trace."""
    item = row.item
    if run.config.item_level == "observation":
        return item.observation_id if item.observation_id and item.trace_id else None
    return item.trace_id or item.id


def score_environment(configured: str | None, item_metadata: Mapping[str, Any]) -> str | None:
    """Where a score lands: the configured environment, else the scored trace's own (so a staging
    trace's score is seen in staging); None (Langfuse's default) when neither is a valid name."""
    if configured:
        return configured
    found = item_metadata.get("environment")
    return found if isinstance(found, str) and _ENVIRONMENT_RE.fullmatch(found) else None


def build_score(run: RunContext, row: ResultRow, environment: str | None) -> PreparedScore | None:
    """The score body of one ok row; None when there is nothing to attach it to or no value.

    `environment` is the configured one; without it the score takes the trace's environment."""
    item = row.item
    typed = score_value(row)
    trace_id = item.trace_id or (item.id if run.config.item_level == "trace" else None)
    if typed is None or not trace_id:
        return None
    data_type, value = typed
    observation_id = item.observation_id if run.config.item_level == "observation" else None
    if run.config.item_level == "observation" and not observation_id:
        return None
    metadata: dict[str, Any] = {**run.provenance(), "metric_version": row.metric_version, "metric_key": row.metric_key}
    for key in ("model", "prompt_name", "prompt_version"):
        value_of = getattr(row.result, key)
        if value_of:
            metadata[key] = value_of
    if row.result.threshold is not None:
        metadata["threshold"] = row.result.threshold
    if row.result.passed is not None:
        metadata["passed"] = row.result.passed
    sid = score_id(run.monitor, run.source_key, item.id, row.metric_name)
    body = CreateScoreRequest(
        id=sid,
        trace_id=trace_id,
        observation_id=observation_id,
        name=row.metric_name,
        value=value,
        data_type=data_type,
        comment=row.result.explanation or None,
        metadata=metadata,
        environment=score_environment(environment, item.metadata),
        timestamp=item.source_timestamp,
    )
    return PreparedScore(pair=(item.id, row.metric_name), body=body, id=sid)
