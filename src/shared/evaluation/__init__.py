"""The evaluation core: items, metrics and their registry, the runner, and results."""

from shared.evaluation.item import DatasetItem, Message, ToolCall
from shared.evaluation.metric import (
    BaseMetric,
    MetricParams,
    MetricResult,
    MetricStatus,
    build_metric,
    metric,
    metric_registry,
)
from shared.evaluation.results import EvaluationResult, MetricSummary, ResultRow
from shared.evaluation.runner import EvaluationConfig, PendingItem, evaluate

__all__ = [
    "BaseMetric",
    "DatasetItem",
    "EvaluationConfig",
    "EvaluationResult",
    "Message",
    "MetricParams",
    "MetricResult",
    "MetricStatus",
    "MetricSummary",
    "PendingItem",
    "ResultRow",
    "ToolCall",
    "build_metric",
    "evaluate",
    "metric",
    "metric_registry",
]
