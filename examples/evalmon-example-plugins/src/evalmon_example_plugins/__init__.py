"""evalmon-example-plugins: importing this package registers its plug-ins.

evalmon imports it through the `evalmon.plugins` entry point (see pyproject.toml) the first time
a monitor names a sink or sampler evalmon does not know: `jsonl` and `per_session` here.
"""

from evalmon_example_plugins.jsonl_sink import JsonlSink, JsonlSinkParams
from evalmon_example_plugins.per_session import PerSessionParams, PerSessionSampler

__all__ = ["JsonlSink", "JsonlSinkParams", "PerSessionParams", "PerSessionSampler"]
