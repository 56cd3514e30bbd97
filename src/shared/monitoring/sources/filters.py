"""Trace filters of the Langfuse source, for sources that read everything (trace files): one file
can then feed several monitors, each taking its app's traces (`trace_name`, `tags`, `environment`,
`user_id`), and a monitor keeps its filters when its source moves from a file to Langfuse."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, field_validator

from shared.monitoring.sources.base import SourceParams
from shared.traces import Trace, parse_jsonish


class TraceFilterParams(SourceParams):
    """The Langfuse source's trace filters (same names, same meaning)."""

    trace_name: str | None = Field(default=None, description="only traces with this name")
    tags: list[str] = Field(default_factory=list, description="only traces carrying these tags")
    tags_match: Literal["any", "all"] = Field(default="any", description="any or all of `tags`")
    environment: list[str] = Field(default_factory=list, description="only these environments")
    user_id: str | None = Field(default=None, description="only this user's traces")

    @field_validator("environment", "tags", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @property
    def filters_anything(self) -> bool:
        return bool(self.trace_name or self.tags or self.environment or self.user_id)


def keeps(record: Any, params: SourceParams) -> bool:
    """True when a record passes every configured filter. Traces are read by their fields; table rows
    by columns `trace_name`, `tags` (a list, JSON list or comma-separated), `environment`, `user_id`."""
    if not isinstance(params, TraceFilterParams) or not params.filters_anything:
        return True
    if isinstance(record, Trace):
        name, tags, environment, user = record.name, record.get("tags"), record.get("environment"), record.get("userId")
    elif isinstance(record, Mapping):
        name = _first(record, "trace_name", "traceName")
        tags = _first(record, "tags")
        environment = _first(record, "environment")
        user = _first(record, "user_id", "userId")
    else:
        return True
    if params.trace_name and name != params.trace_name:
        return False
    if params.environment and environment not in params.environment:
        return False
    if params.user_id and str(user or "") != params.user_id:
        return False
    if params.tags:
        have = set(_tag_list(tags))
        matches = have.issuperset if params.tags_match == "all" else lambda wanted: bool(have & set(wanted))
        if not matches(params.tags):
            return False
    return True


def _first(row: Mapping[str, Any], *keys: str) -> Any:
    return next((row[k] for k in keys if row.get(k) not in (None, "")), None)


def _tag_list(value: Any) -> list[str]:
    value = parse_jsonish(value) if isinstance(value, str) else value
    if isinstance(value, str):
        return [t.strip() for t in value.split(",") if t.strip()]
    if isinstance(value, list | tuple):
        return [str(t) for t in value]
    return []
