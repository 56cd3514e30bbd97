"""The evaluation core: items, metrics and their registry, the runner, and results."""

from shared.evaluation.config import EvaluationConfig
from shared.evaluation.item import DatasetItem, Message, ToolCall
from shared.evaluation.metric import (
    BaseMetric,
    CostEstimate,
    MetricContext,
    MetricParams,
    MetricResult,
    MetricStatus,
    build_metric,
    metric,
    metric_registry,
)
from shared.evaluation.results import EvaluationResult, MetricSummary, ResultRow
from shared.evaluation.runner import PendingItem, evaluate

__all__ = [
    "BaseMetric",
    "CostEstimate",
    "DatasetItem",
    "EvaluationConfig",
    "EvaluationResult",
    "Message",
    "MetricContext",
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
