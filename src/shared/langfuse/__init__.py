"""Langfuse: the trace model, the Langfuse source and sink, prompts and the webhook.

The names below load on first use (`shared.exports`): the Langfuse SDK is imported only by what
needs it, not by `shared.traces`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.exports import lazy_exports

if TYPE_CHECKING:
    from shared.langfuse.client import make_client
    from shared.langfuse.sink import LangfuseSink
    from shared.langfuse.source import LangfuseDataSource, LangfuseSourceParams
    from shared.traces import Observation, Trace, TraceCollection

__all__ = [
    "LangfuseDataSource",
    "LangfuseSink",
    "LangfuseSourceParams",
    "Observation",
    "Trace",
    "TraceCollection",
    "make_client",
]

if not TYPE_CHECKING:  # type checkers read the imports above; an unknown name stays an error
    __getattr__, __dir__ = lazy_exports(__name__, __file__)
