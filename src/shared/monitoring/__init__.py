"""Monitoring: config, sources, sampling, the ledger, publishing, and the OnlineMonitor.

The names below load on first use (`shared.exports`), so importing one module of this package
does not import the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.exports import lazy_exports

if TYPE_CHECKING:
    from shared.monitoring.config import MonitorConfig, SamplingConfig, SinkSpec
    from shared.monitoring.extractors import (
        Extractor,
        FieldPathExtractor,
        extractor_registry,
        register_extractor,
        resolve_extractor,
    )
    from shared.monitoring.loader import load_monitor_config
    from shared.monitoring.monitor import OnlineMonitor
    from shared.monitoring.run_context import RunContext
    from shared.monitoring.sampling import Sampler, SamplerParams, make_sampler, register_sampler, sampler_registry
    from shared.monitoring.sinks.base import Sink, SinkParams, SinkReport, register_sink, sink_registry
    from shared.monitoring.sources.base import (
        DataSource,
        InvalidRecord,
        SourceParams,
        build_source,
        register_source,
        source_registry,
    )
    from shared.monitoring.summary import RunSummary
    from shared.monitoring.window import Window

__all__ = [
    "DataSource",
    "Extractor",
    "FieldPathExtractor",
    "InvalidRecord",
    "MonitorConfig",
    "OnlineMonitor",
    "RunContext",
    "RunSummary",
    "Sampler",
    "SamplerParams",
    "SamplingConfig",
    "Sink",
    "SinkParams",
    "SinkReport",
    "SinkSpec",
    "SourceParams",
    "Window",
    "build_source",
    "extractor_registry",
    "load_monitor_config",
    "make_sampler",
    "register_extractor",
    "register_sampler",
    "register_sink",
    "register_source",
    "resolve_extractor",
    "sampler_registry",
    "sink_registry",
    "source_registry",
]

if not TYPE_CHECKING:  # type checkers read the imports above; an unknown name stays an error
    __getattr__, __dir__ = lazy_exports(__name__, __file__)
