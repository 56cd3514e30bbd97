"""Extractors: `record -> DatasetItem`, pure functions named by dotted path in YAML.

`extractor: default` uses the source's own default (Slack threads) or `FieldPathExtractor`, which
reads any traced app with no code (rules in `shared.monitoring.extraction.default`: the answer,
the question and the retrieved documents, whatever framework wrote the trace). Any field can be
pointed elsewhere in `extractor_fields`, by path or prompt section (`shared.monitoring.extraction.paths`).

`extract_with_origins` tells where each field came from (for `evalmon inspect`); an extractor's
`needs` says which observations it reads (so a source can skip fetching the others).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from shared.errors import ConfigError, InvalidRecordError
from shared.evaluation.item import DatasetItem
from shared.evaluation.metric import FIELD_PATHS_KEY  # where metric `field:` paths land in an item
from shared.monitoring.extraction.default import read_trace
from shared.monitoring.extraction.documents import documents_of, numbered
from shared.monitoring.extraction.paths import FieldSpec, as_spec, get_path, resolve_spec, tolerant_get
from shared.monitoring.extraction.text import as_text
from shared.monitoring.needs import EVERYTHING, ExtractorNeeds, declare_needs, needs_of
from shared.registry import Registry
from shared.traces import Trace, parse_time

__all__ = [
    "EVERYTHING",
    "ITEM_FIELDS",
    "Extractor",
    "ExtractorNeeds",
    "FieldPathExtractor",
    "FieldSpec",
    "as_text",
    "build_item",
    "declare_needs",
    "extract_with_origins",
    "extractor_registry",
    "get_path",
    "needs_of",
    "register_extractor",
    "resolve_extractor",
]

Extractor = Callable[[Any], DatasetItem]
ITEM_FIELDS = set(DatasetItem.model_fields)
# Item fields the default rules fill from a trace's observations (the others come from the root).
RULE_FIELDS = ("query", "actual_output", "retrieved_content")
# The document numbers the model saw, when they are not simply 1..n (citation_validity reads them).
NUMBERS_KEY = "retrieved_numbers"
# The v2 field groups the default rules read (not model, usage, prompt): what a source must fetch.
DEFAULT_FIELD_GROUPS = frozenset({"core", "basic", "io", "metadata", "metrics", "trace_context"})
# First path parts that are the trace's (root observation's) own fields, not a step name.
_TRACE_ATTRIBUTES = {
    "id",
    "name",
    "input",
    "output",
    "metadata",
    "timestamp",
    "root",
    "sessionid",
    "userid",
    "tags",
    "environment",
    "release",
    "target",
    "version",
}


# `default` (the source's own default, else FieldPathExtractor) depends on the config, so it is
# reserved rather than registered. Built-ins register with @register_extractor in these modules.
extractor_registry: Registry[Extractor] = Registry("extractor", reserved=("default",))
extractor_registry.register_lazy("slack_thread", "shared.slack.thread")

E = TypeVar("E", bound=Extractor)


def register_extractor(key: str) -> Callable[[E], E]:
    """Decorator: `extractor: KEY` uses this `record -> DatasetItem` function (docs/plugins.md)."""

    def wrap(extractor: E) -> E:
        extractor_registry.register(key, extractor)
        return extractor

    return wrap


def resolve_extractor(
    name: str,
    fields: Mapping[str, str | FieldSpec | Mapping[str, Any]],
    source_default: str | None,
    *,
    field_paths: Iterable[str] = (),
) -> Extractor:
    """The extractor a config names; unknown paths and fields are config errors.

    `field_paths`: paths named by metrics' `field:` params, extracted into each item as text.
    """
    unknown = sorted(set(fields) - ITEM_FIELDS)
    if unknown:
        raise ConfigError(f"unknown item field '{unknown[0]}'", field="extractor_fields", choices=ITEM_FIELDS)
    if name == "default":
        if source_default and not fields:
            return _as_callable(extractor_registry.resolve(source_default, field="extractor"), source_default)
        return FieldPathExtractor(fields, field_paths=field_paths)
    return _as_callable(extractor_registry.resolve(name, field="extractor"), name)


def _as_callable(value: Any, name: str) -> Extractor:
    if not callable(value):
        raise ConfigError(f"'{name}' is not callable", field="extractor")
    needs_of(value)  # a malformed `needs` is a config error when the config loads, not mid-run
    return value


def extract_with_origins(extractor: Extractor, record: Any) -> tuple[DatasetItem, dict[str, str]]:
    """The item and, per filled field, where it came from (`GENERATION 'chat' (obs 1a2b).output`).

    Extractors other than the default give no origins (their code is the only record of that).
    """
    if isinstance(extractor, FieldPathExtractor):
        return extractor.extract(record, want_origins=True)
    return extractor(record), {}


class FieldPathExtractor:
    """The default extractor: default rules for traces, overridden field by field by paths; for table
    rows, columns named like item fields plus the configured paths."""

    TRACE_DEFAULTS: Mapping[str, str] = {
        "id": "id",
        "trace_id": "id",
        "session_id": "sessionId",
    }

    def __init__(
        self, fields: Mapping[str, str | FieldSpec | Mapping[str, Any]], *, field_paths: Iterable[str] = ()
    ) -> None:
        self.specs: dict[str, FieldSpec] = {name: as_spec(value) for name, value in fields.items()}
        self.fields = {name: spec.path for name, spec in self.specs.items()}
        self.field_paths = tuple(dict.fromkeys(p for p in field_paths if p))
        self.needs = self._needs()

    def __call__(self, record: Any) -> DatasetItem:
        item, _ = self.extract(record)
        return item

    def extract(self, record: Any, *, want_origins: bool = False) -> tuple[DatasetItem, dict[str, str]]:
        if isinstance(record, Trace):
            return self._from_trace(record, want_origins)
        if isinstance(record, Mapping):
            return self._from_row(record, want_origins)
        raise InvalidRecordError(f"the default extractor cannot read a {type(record).__name__}")

    # -- traces --------------------------------------------------------------------------
    def _from_trace(self, trace: Trace, want_origins: bool) -> tuple[DatasetItem, dict[str, str]]:
        data: dict[str, Any] = {name: get_path(trace, path) for name, path in self.TRACE_DEFAULTS.items()}
        origins: dict[str, str] = {}
        root = trace.root
        if any(name not in self.specs for name in RULE_FIELDS):
            reading = read_trace(trace, want_origins=want_origins)
            origins.update(reading.origins or {})
            data["query"] = reading.query
            data["actual_output"] = reading.actual_output
            data["retrieved_content"] = reading.retrieved
            _set_numbers(data, reading.numbers or [])
        if trace.target is not None:
            data["observation_id"] = trace.target.id
        expected_source = root.metadata if root is not None else trace.get("metadata")
        data["expected_output"] = (
            tolerant_get(expected_source, "expected_output") if isinstance(expected_source, Mapping) else None
        )
        data["source_timestamp"] = trace.timestamp
        data["latency"] = root.latency_s if root is not None else None
        for name, spec in self.specs.items():
            data[name] = self._explicit(trace, name, spec, data)
            if want_origins:
                origins[name] = spec.describe()
        given = data.get("metadata")
        data["metadata"] = {
            **(given if isinstance(given, dict) else {}),
            "trace_name": trace.name,
            "tags": trace.get("tags") or [],
            "environment": trace.get("environment"),
            "user_id": trace.get("userId"),
        }
        self._add_field_paths(trace, data)
        item = build_item(data)
        return item, ({k: v for k, v in origins.items() if item.has_field(k)} if want_origins else {})

    def _explicit(self, record: Any, name: str, spec: FieldSpec, data: dict[str, Any]) -> Any:
        """A configured field's value; configured documents bring their own numbering."""
        value = resolve_spec(record, spec)
        if name != "retrieved_content":
            return value
        texts, numbers = numbered(documents_of(value))
        _set_numbers(data, numbers)
        return texts or None

    def _add_field_paths(self, record: Any, data: dict[str, Any]) -> None:
        if not self.field_paths:
            return
        found = {path: as_text(get_path(record, path)) for path in self.field_paths}
        data["metadata"][FIELD_PATHS_KEY] = found

    # -- rows ----------------------------------------------------------------------------
    def _from_row(self, row: Mapping[str, Any], want_origins: bool) -> tuple[DatasetItem, dict[str, str]]:
        data: dict[str, Any] = {}
        origins: dict[str, str] = {}
        for name in ITEM_FIELDS:
            value = tolerant_get(row, name)
            if value is not None:
                data[name] = value
                origins[name] = f"column {name}"
        for name, spec in self.specs.items():
            data[name] = (
                self._explicit(row, name, spec, data) if name == "retrieved_content" else resolve_spec(row, spec)
            )
            origins[name] = spec.describe()
        data.setdefault("source_timestamp", parse_time(tolerant_get(row, "timestamp")))
        if self.field_paths:
            data["metadata"] = dict(data["metadata"]) if isinstance(data.get("metadata"), dict) else {}
            self._add_field_paths(row, data)
        item = build_item(data)
        return item, ({k: v for k, v in origins.items() if item.has_field(k)} if want_origins else {})

    # -- needs ---------------------------------------------------------------------------
    def _needs(self) -> ExtractorNeeds:
        """Root only when every field is a path on the trace's own fields; else what the paths name.
        Field groups are narrowed only when no path is configured (a path may read any field).
        An `id` path of its own means items are not known by the source's ids until extracted."""
        paths = [*self.fields.values(), *self.field_paths]
        keeps_ids = self.fields.get("id", "id") == "id"
        if any(name not in self.specs for name in RULE_FIELDS):
            return ExtractorNeeds(field_groups=None if paths else DEFAULT_FIELD_GROUPS, keeps_source_ids=keeps_ids)
        names: set[str] = set()
        types: set[str] = set()
        for path in paths:
            head = path.split(".", 1)[0]
            if head.lower().startswith("type:"):
                types.add(head[5:].upper())
            elif head.lower() not in _TRACE_ATTRIBUTES:
                names.add(head)
        return ExtractorNeeds(
            root_only=not names and not types,
            observation_names=frozenset(names),
            observation_types=frozenset(types),
            keeps_source_ids=keeps_ids,
        )


def _set_numbers(data: dict[str, Any], numbers: list[int]) -> None:
    """Record document numbers when they are not simply 1..n (else positions say it all)."""
    extra = data.get("additional_input")
    extra = dict(extra) if isinstance(extra, dict) else {}
    extra.pop(NUMBERS_KEY, None)
    if numbers and numbers != list(range(1, len(numbers) + 1)):
        extra[NUMBERS_KEY] = numbers
    data["additional_input"] = extra or None


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
