"""Extractors: `record -> DatasetItem`, pure functions named by dotted path in YAML.

`extractor: default` uses the source's own default (Slack threads) or the field-path extractor
below, which covers common chat and RAG trace shapes with no code: each DatasetItem field can be
pointed at a path such as `recommendation.generation.output.rationale` in `extractor_fields`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from shared.errors import ConfigError, InvalidRecordError
from shared.evaluation.item import DatasetItem
from shared.langfuse.trace import Observation, Record, Step, Trace, normalise_key, parse_time
from shared.registry import import_dotted

Extractor = Callable[[Any], DatasetItem]

TEXT_KEYS = ("content", "text", "answer", "output", "response", "completion", "query", "question", "input", "message")
ITEM_FIELDS = set(DatasetItem.model_fields)


def resolve_extractor(name: str, fields: Mapping[str, str], source_default: str | None) -> Extractor:
    """The extractor a config names; unknown paths and fields are config errors."""
    unknown = sorted(set(fields) - ITEM_FIELDS)
    if unknown:
        raise ConfigError(f"unknown item field '{unknown[0]}'", field="extractor_fields", choices=ITEM_FIELDS)
    if name == "default":
        if source_default and not fields:
            return _as_callable(import_dotted(source_default, field="extractor"), source_default)
        return FieldPathExtractor(fields)
    return _as_callable(import_dotted(name, field="extractor"), name)


def _as_callable(value: Any, name: str) -> Extractor:
    if not callable(value):
        raise ConfigError(f"'{name}' is not callable", field="extractor")
    return value


def get_path(record: Any, path: str) -> Any:
    """Follow a dotted path through traces, steps, observations, mappings and lists; None if absent."""
    value = record
    for part in path.split("."):
        if value is None:
            return None
        if isinstance(value, list | tuple):
            value = value[int(part)] if part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value) else None
        elif isinstance(value, Trace | Step | Observation | Record):
            value = getattr(value, part)
        elif isinstance(value, Mapping):
            value = _tolerant_get(value, part)
        else:
            value = getattr(value, part, None)
    return value


def _tolerant_get(mapping: Mapping[str, Any], key: str) -> Any:
    if key in mapping:
        return mapping[key]
    wanted = normalise_key(key)
    return next((v for k, v in mapping.items() if normalise_key(str(k)) == wanted), None)


def as_text(value: Any) -> str | None:
    """Text a metric can read: strings as-is, common message shapes unwrapped, the rest as JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        for key in TEXT_KEYS:
            inner = _tolerant_get(value, key)
            if isinstance(inner, str):
                return inner
        if "messages" in value and isinstance(value["messages"], list) and value["messages"]:
            return as_text(value["messages"][-1])
    if isinstance(value, list) and value and all(isinstance(m, Mapping) and "content" in m for m in value):
        return as_text(value[-1])
    return json.dumps(value, ensure_ascii=False, default=str)


class FieldPathExtractor:
    """Maps DatasetItem fields to paths; defaults fit a plain chat or RAG trace (or a table row)."""

    TRACE_DEFAULTS: Mapping[str, str] = {
        "id": "id",
        "query": "input",
        "actual_output": "output",
        "expected_output": "metadata.expected_output",
        "trace_id": "id",
        "session_id": "sessionId",
    }

    def __init__(self, fields: Mapping[str, str]) -> None:
        self.fields = dict(fields)

    def __call__(self, record: Any) -> DatasetItem:
        if isinstance(record, Trace):
            return self._from_trace(record)
        if isinstance(record, Mapping):
            return self._from_row(record)
        raise InvalidRecordError(f"the default extractor cannot read a {type(record).__name__}")

    TARGET_DEFAULTS: Mapping[str, str] = {
        "query": "target.input",
        "actual_output": "target.output",
        "observation_id": "target.id",
    }

    def _from_trace(self, trace: Trace) -> DatasetItem:
        # observation-level monitors: the source marks the observation to score (`trace.target`)
        target_defaults = self.TARGET_DEFAULTS if trace.target is not None else {}
        paths = {**self.TRACE_DEFAULTS, **target_defaults, **self.fields}
        data: dict[str, Any] = {name: get_path(trace, path) for name, path in paths.items()}
        if "retrieved_content" not in self.fields:
            data["retrieved_content"] = _retrieved(trace)
        if "source_timestamp" not in self.fields:
            data["source_timestamp"] = trace.timestamp
        if "latency" not in self.fields and trace.root is not None:
            data["latency"] = trace.root.latency_s
        data.setdefault("metadata", {})
        data["metadata"] = {
            **(data["metadata"] if isinstance(data["metadata"], dict) else {}),
            "trace_name": trace.name,
            "tags": trace.get("tags") or [],
            "environment": trace.get("environment"),
            "user_id": trace.get("userId"),
        }
        return build_item(data)

    def _from_row(self, row: Mapping[str, Any]) -> DatasetItem:
        data: dict[str, Any] = {
            name: _tolerant_get(row, name) for name in ITEM_FIELDS if _tolerant_get(row, name) is not None
        }
        for name, path in self.fields.items():
            data[name] = get_path(row, path)
        data.setdefault("source_timestamp", parse_time(_tolerant_get(row, "timestamp")))
        return build_item(data)


def _retrieved(trace: Trace) -> list[str] | None:
    docs: list[str] = []
    for obs in trace.observations:
        if obs.type == "RETRIEVER" or "retriev" in obs.name.lower():
            output = obs.output
            items = output.get("documents", output) if isinstance(output, Mapping) else output
            for doc in items if isinstance(items, list) else [items]:
                text = as_text(doc)
                if text:
                    docs.append(text)
    return docs or None


def build_item(data: Mapping[str, Any]) -> DatasetItem:
    """Coerce loosely typed values into a DatasetItem; a missing id makes the record invalid."""
    raw_id = data.get("id")
    if raw_id is None or not str(raw_id).strip():
        raise InvalidRecordError("record has no id")
    clean: dict[str, Any] = {}
    for name, value in data.items():
        if value is None or name not in ITEM_FIELDS:
            continue
        if name in ("id", "trace_id", "observation_id", "session_id"):
            clean[name] = str(value)
        elif name in ("query", "actual_output", "expected_output"):
            clean[name] = as_text(value)
        elif name == "retrieved_content":
            values = value if isinstance(value, list) else [value]
            clean[name] = [t for t in (as_text(v) for v in values) if t]
        elif name == "latency":
            clean[name] = float(value) if _is_number(value) else None
        elif name in ("additional_input", "additional_output", "metadata"):
            clean[name] = value if isinstance(value, dict) else {"value": value}
        elif name == "source_timestamp":
            clean[name] = parse_time(value) if not hasattr(value, "tzinfo") else value
        else:
            clean[name] = value
    return DatasetItem(**clean)


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
