"""evalmon's public API: what notebooks and plug-ins import (docs/api.md).

    from evalmon import OnlineMonitor
    summary = OnlineMonitor.from_yaml("monitor.yaml").run()

These names stay put across minor versions; other modules under `shared` may move. Each loads on
first use, so `import evalmon` costs almost nothing (a plug-in package imports it while a config
is being checked).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared import __version__
from shared.exports import lazy_exports

if TYPE_CHECKING:
    from shared.errors import ConfigError, EvalmonError, InvalidRecordError, MetricError, TransientError
    from shared.evaluation.config import EvaluationConfig
    from shared.evaluation.item import DatasetItem, Message, ToolCall
    from shared.evaluation.metric import (
        BaseMetric,
        MetricContext,
        MetricParams,
        MetricResult,
        MetricStatus,
        build_metric,
        metric,
        metric_registry,
    )
    from shared.evaluation.results import EvaluationResult, ResultRow
    from shared.evaluation.runner import evaluate
    from shared.monitoring.config import MonitorConfig, SamplingConfig
    from shared.monitoring.extractors import extractor_registry, register_extractor
    from shared.monitoring.loader import load_monitor_config
    from shared.monitoring.monitor import OnlineMonitor
    from shared.monitoring.needs import ExtractorNeeds, declare_needs
    from shared.monitoring.run_context import RunContext
    from shared.monitoring.sampling import Sampler, SamplerParams, register_sampler, sampler_registry
    from shared.monitoring.sinks.base import Sink, SinkParams, SinkReport, register_sink, sink_registry
    from shared.monitoring.sinks.local import read_results
    from shared.monitoring.sources.base import (
        DataSource,
        InvalidRecord,
        SourceParams,
        register_source,
        source_registry,
    )
    from shared.monitoring.summary import RunSummary
    from shared.monitoring.window import Window
    from shared.registry import Registry
    from shared.reporting.run_report import write_run_report
    from shared.reporting.trends import build_trends, load_run_summaries, write_trend_report
    from shared.traces import Observation, Trace, TraceCollection

__all__ = [
    "BaseMetric",
    "ConfigError",
    "DataSource",
    "DatasetItem",
    "EvalmonError",
    "EvaluationConfig",
    "EvaluationResult",
    "ExtractorNeeds",
    "InvalidRecord",
    "InvalidRecordError",
    "Message",
    "MetricContext",
    "MetricError",
    "MetricParams",
    "MetricResult",
    "MetricStatus",
    "MonitorConfig",
    "Observation",
    "OnlineMonitor",
    "Registry",
    "ResultRow",
    "RunContext",
    "RunSummary",
    "Sampler",
    "SamplerParams",
    "SamplingConfig",
    "Sink",
    "SinkParams",
    "SinkReport",
    "SourceParams",
    "ToolCall",
    "Trace",
    "TraceCollection",
    "TransientError",
    "Window",
    "__version__",
    "build_metric",
    "build_trends",
    "declare_needs",
    "evaluate",
    "extractor_registry",
    "load_monitor_config",
    "load_run_summaries",
    "metric",
    "metric_registry",
    "read_results",
    "register_extractor",
    "register_sampler",
    "register_sink",
    "register_source",
    "sampler_registry",
    "sink_registry",
    "source_registry",
    "write_run_report",
    "write_trend_report",
]

if not TYPE_CHECKING:  # type checkers read the imports above; an unknown name stays an error
    __getattr__, __dir__ = lazy_exports(__name__, __file__)
