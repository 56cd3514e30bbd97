"""`DatasetItem`: the one shape every metric reads, whatever the source (Axion's field names)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Message(BaseModel):
    """One turn of a multi-turn conversation."""

    model_config = ConfigDict(extra="allow")

    role: Literal["user", "assistant", "system", "tool", "human_agent"]
    content: str = ""
    name: str | None = None
    timestamp: datetime | None = None

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return to_utc(value)


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    output: Any = None


class DatasetItem(BaseModel):
    """An item to score. `id` is the source's own stable id (architecture.md section 3); never empty."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    query: str | None = None
    actual_output: str | None = None
    expected_output: str | None = None
    retrieved_content: list[str] | None = None
    additional_input: dict[str, Any] = Field(default_factory=dict)
    additional_output: dict[str, Any] = Field(default_factory=dict)
    conversation: list[Message] | None = None
    tools_called: list[ToolCall] | None = None
    latency: float | None = None
    trace_id: str | None = None
    observation_id: str | None = None
    session_id: str | None = None
    source_timestamp: datetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id")
    @classmethod
    def _strip_id(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("item id must not be empty")
        if "\n" in value or "\r" in value or "\x00" in value:
            raise ValueError("item id must not contain line breaks or NUL characters")
        return value

    @field_validator("source_timestamp")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return to_utc(value)

    def has_field(self, name: str) -> bool:
        """True when a field carries something a metric can use (not None, not empty)."""
        value = getattr(self, name, None)
        if value is None:
            return False
        if isinstance(value, str | list | dict):
            return len(value) > 0
        return True

    def content_hash(self) -> str:
        """A stable hash of what a metric sees; used for caches and change detection."""
        payload = self.model_dump(mode="json", exclude={"metadata"})
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]


def to_utc(value: datetime | None) -> datetime | None:
    """Naive datetimes are taken as UTC; aware ones are converted. Always UTC out."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
