"""One normalised trace model, whatever the trace came from (files, the Langfuse API, exports).

Langfuse v4 observation rows (`GET /api/public/v2/observations`, grouped by `traceId`) and the
older trace-with-observations shape (`GET /api/public/traces/{id}`) both become a `Trace`, so
extractors and notebooks never care where a trace came from.

Access is forgiving, because traces are written by many hands: `trace.recommendation` finds the
step (observations sharing a name) `recommendation`, `Recommendation` or `recommendation-step`;
`trace.created_at` finds `createdAt`; `trace.recommendation.generation.output` is the output of
that step's GENERATION. Missing things are `None`, never an exception, in dot access.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, overload

import orjson

from shared.evaluation.item import to_utc

# Every observation type Langfuse writes (v4 added the agent-era types after SPAN/GENERATION/EVENT).
OBSERVATION_TYPES = (
    "SPAN",
    "GENERATION",
    "EVENT",
    "AGENT",
    "TOOL",
    "CHAIN",
    "RETRIEVER",
    "EMBEDDING",
    "GUARDRAIL",
    "EVALUATOR",
)


@functools.lru_cache(maxsize=8192)
def normalise_key(name: str) -> str:
    """`created_at`, `createdAt`, `Created-At` -> `createdat` (for tolerant lookups)."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def parse_jsonish(value: Any) -> Any:
    """v2 returns input/output as raw strings: parse JSON where it parses, else keep the text."""
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in ("{", "[", '"') or text in ("true", "false", "null") or _is_number(text):
            try:
                return orjson.loads(text)
            except ValueError:  # orjson.JSONDecodeError is a ValueError
                return value
    return value


def parse_metadata(value: Any) -> Any:
    """v4 stores metadata values as strings (nested values JSON-encoded): parse each value."""
    if isinstance(value, Mapping):
        return {k: parse_jsonish(v) for k, v in value.items()}
    return value


def _is_number(text: str) -> bool:
    if not text or text[0] not in "-0123456789":
        return False
    return bool(re.fullmatch(r"-?\d+(\.\d+)?([eE][-+]?\d+)?", text))


def parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return to_utc(value)
    if isinstance(value, str) and value:
        try:
            return to_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


class Record:
    """Tolerant attribute access over a camelCase mapping.

    `input`, `output` and `metadata` arrive as raw JSON strings from the v2 API; they are parsed
    on first access only, because most observations of a trace are never read by an extractor.
    """

    LAZY_JSON: tuple[str, ...] = ()

    def __init__(self, data: Mapping[str, Any]) -> None:
        self._data = dict(data)
        self._index: dict[str, str] | None = None  # built on the first tolerant lookup
        self._unparsed = {k for k in self.LAZY_JSON if k in self._data}

    @property
    def raw(self) -> dict[str, Any]:
        for key in list(self._unparsed):
            self._parse(key)
        return self._data

    def _parse(self, key: str) -> None:
        self._unparsed.discard(key)
        value = parse_jsonish(self._data[key])
        self._data[key] = parse_metadata(value) if key == "metadata" else value

    def get(self, name: str, default: Any = None) -> Any:
        if name in self._data:
            key: str | None = name
        else:
            if self._index is None:
                self._index = {normalise_key(k): k for k in self._data}
            key = self._index.get(normalise_key(name))
        if key is None:
            return default
        if key in self._unparsed:
            self._parse(key)
        return self._data[key]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self.get(name)

    def __getitem__(self, name: str) -> Any:
        return self.get(name)


class Observation(Record):
    """One observation (SPAN, GENERATION, EVENT, ...). input/output/metadata are parsed JSON."""

    LAZY_JSON = ("input", "output", "metadata")

    @property
    def id(self) -> str | None:
        value = self.get("id")
        return str(value) if value not in (None, "") else None

    @property
    def trace_id(self) -> str | None:
        value = self.get("traceId")
        return str(value) if value not in (None, "") else None

    @property
    def type(self) -> str:
        return str(self.get("type") or "").upper()

    @property
    def name(self) -> str:
        return str(self.get("name") or "")

    @property
    def input(self) -> Any:
        return self.get("input")

    @property
    def output(self) -> Any:
        return self.get("output")

    @property
    def metadata(self) -> Any:
        return self.get("metadata")

    @property
    def start_time(self) -> datetime | None:
        return parse_time(self.get("startTime"))

    @property
    def end_time(self) -> datetime | None:
        return parse_time(self.get("endTime"))

    @property
    def parent_id(self) -> str | None:
        value = self.get("parentObservationId")
        return str(value) if value not in (None, "") else None

    @property
    def is_root(self) -> bool:
        flag = self.get("isRootObservation")
        if flag is not None:
            return bool(flag)
        return not self.get("parentObservationId")

    @property
    def latency_s(self) -> float | None:
        latency = self.get("latency")
        if isinstance(latency, int | float):
            return float(latency) / 1000.0 if latency > 1000 and self.get("latencyMs") else float(latency)
        start, end = self.start_time, self.end_time
        return (end - start).total_seconds() if start and end else None

    def __repr__(self) -> str:
        return f"Observation({self.type} {self.name!r} id={self.id})"


class ObservationOfType:
    """`step.tool`: the step's first observation of one type, as a typed attribute (see Step.of_type)."""

    def __init__(self, type_: str) -> None:
        self.type = type_

    @overload
    def __get__(self, step: None, owner: type[Step]) -> ObservationOfType: ...

    @overload
    def __get__(self, step: Step, owner: type[Step]) -> Observation | None: ...

    def __get__(self, step: Step | None, owner: type[Step]) -> Observation | ObservationOfType | None:
        return self if step is None else step.of_type(self.type)


class Step:
    """The observations of a trace that share a name, in start order."""

    def __init__(self, name: str, observations: list[Observation], patterns: Any = None) -> None:
        self.name = name
        self.observations = observations
        self._patterns = patterns

    def __iter__(self) -> Iterator[Observation]:
        return iter(self.observations)

    def __len__(self) -> int:
        return len(self.observations)

    def of_type(self, type_: str) -> Observation | None:
        wanted = type_.upper()
        return next((o for o in self.observations if o.type == wanted), None)

    @property
    def first(self) -> Observation | None:
        return self.observations[0] if self.observations else None

    @property
    def last(self) -> Observation | None:
        return self.observations[-1] if self.observations else None

    generation = ObservationOfType("GENERATION")
    span = ObservationOfType("SPAN")
    # Langfuse v4 types, first-class like the two above (`trace.search.tool.output`).
    event = ObservationOfType("EVENT")
    agent = ObservationOfType("AGENT")
    tool = ObservationOfType("TOOL")
    chain = ObservationOfType("CHAIN")
    retriever = ObservationOfType("RETRIEVER")
    embedding = ObservationOfType("EMBEDDING")
    guardrail = ObservationOfType("GUARDRAIL")
    evaluator = ObservationOfType("EVALUATOR")

    @property
    def input(self) -> Any:
        return self.first.input if self.first else None

    @property
    def output(self) -> Any:
        return self.last.output if self.last else None

    @property
    def variables(self) -> dict[str, str]:
        """Prompt variables pulled from this step's input by the implementation's prompt patterns."""
        if self._patterns is None or self.first is None:
            return {}
        extracted: dict[str, str] = self._patterns.extract(self.name, prompt_text(self.first.input))
        return extracted

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        found = self.of_type(name)
        if found is not None:
            return found
        return self.last.get(name) if self.last else None

    def __repr__(self) -> str:
        return f"Step({self.name!r}, {len(self.observations)} observation(s))"


class Trace(Record):
    """A trace: its own fields (from the root observation or a v3 trace) plus observations."""

    LAZY_JSON = ("input", "output", "metadata")

    def __init__(self, data: Mapping[str, Any], observations: Iterable[Observation] = (), patterns: Any = None) -> None:
        super().__init__(data)
        self.observations: list[Observation] = sorted(observations, key=_start_order)
        self.patterns = patterns
        self._steps: dict[str, Step] | None = None
        self._ids: dict[str | None, Observation] | None = None

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_observations(
        cls,
        rows: Iterable[Mapping[str, Any]],
        patterns: Any = None,
        *,
        target_observation_id: str | None = None,
    ) -> Trace:
        """A trace from v2 observation rows of one traceId; the root observation carries I/O.

        `target_observation_id` marks the observation an observation-level monitor scores
        (`trace.target`).
        """
        observations = [Observation(r) for r in _mappings(rows, "observation rows")]
        if not observations:
            raise ValueError("a trace needs at least one observation")
        root = next((o for o in observations if o.is_root), None)
        # without a root (a partial export), the earliest observation stands in, whatever the row order
        base = root or min(observations, key=_start_order)
        data: dict[str, Any] = {
            "id": base.trace_id,
            "name": base.get("traceName") or (root.name if root else None),
            "timestamp": base.get("startTime"),
            "input": root.input if root else None,
            "output": root.output if root else None,
            "metadata": root.metadata if root else None,
            "userId": base.get("userId"),
            "sessionId": base.get("sessionId"),
            "environment": base.get("environment"),
            "tags": base.get("tags") or [],
            "release": base.get("release"),
            "rootObservationId": root.id if root else None,
        }
        if target_observation_id is not None:
            data["targetObservationId"] = target_observation_id
        return cls(data, observations, patterns)

    @classmethod
    def from_v3(cls, payload: Mapping[str, Any], patterns: Any = None) -> Trace:
        """A trace from the v3 / export shape: trace fields plus an `observations` list."""
        data = {k: v for k, v in payload.items() if k != "observations"}
        rows = _mappings(payload.get("observations") or [], "observations")
        observations = [Observation({**o, "traceId": o.get("traceId") or data.get("id")}) for o in rows]
        return cls(data, observations, patterns)

    # -- access ------------------------------------------------------------------------
    @property
    def id(self) -> str | None:
        value = self.get("id")
        return str(value) if value not in (None, "") else None

    @property
    def name(self) -> str | None:
        return self.get("name")

    @property
    def timestamp(self) -> datetime | None:
        """The root observation's start (what the Langfuse source windows on), else the trace's own
        `timestamp`, else the earliest observation's start: one trace, one timestamp, whatever the shape."""
        root = self.root
        found = root.start_time if root is not None else None
        return (
            found
            or parse_time(self.get("timestamp"))
            or (self.observations[0].start_time if self.observations else None)
        )

    @property
    def root(self) -> Observation | None:
        return next((o for o in self.observations if o.is_root), None)

    def of_type(self, type_: str) -> list[Observation]:
        """Observations of one type (`RETRIEVER`, `TOOL`, ...; any case), in start order."""
        wanted = type_.upper()
        return [o for o in self.observations if o.type == wanted]

    def parent(self, observation: Observation) -> Observation | None:
        parent_id = observation.parent_id
        return self._by_id().get(parent_id) if parent_id else None

    def ancestors(self, observation: Observation) -> list[Observation]:
        """Parent, grandparent, ... up to the root (a cycle in bad data ends the walk)."""
        found: list[Observation] = []
        seen = {observation.id}
        current = self.parent(observation)
        while current is not None and current.id not in seen:
            found.append(current)
            seen.add(current.id)
            current = self.parent(current)
        return found

    def _by_id(self) -> dict[str | None, Observation]:
        if self._ids is None:
            self._ids = {}
            for obs in self.observations:
                self._ids.setdefault(obs.id, obs)  # a duplicated id keeps its first observation
        return self._ids

    @property
    def target(self) -> Observation | None:
        """The observation an observation-level monitor scores (None for trace-level reads)."""
        target_id = self.get("targetObservationId")
        return self.observation(str(target_id)) if target_id else None

    @property
    def steps(self) -> dict[str, Step]:
        if self._steps is None:
            grouped: dict[str, list[Observation]] = {}
            for obs in self.observations:
                grouped.setdefault(obs.name, []).append(obs)
            self._steps = {name: Step(name, obs, self.patterns) for name, obs in grouped.items()}
        return self._steps

    def step(self, name: str) -> Step | None:
        if name in self.steps:
            return self.steps[name]
        wanted = normalise_key(name)
        for step_name, step in self.steps.items():
            if normalise_key(step_name) == wanted:
                return step
        for step_name, step in self.steps.items():  # `recommendation` finds `recommendation-step`
            if normalise_key(step_name).startswith(wanted):
                return step
        return None

    def observation(self, observation_id: str) -> Observation | None:
        return self._by_id().get(observation_id)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        value = self.get(name)
        if value is not None:
            return value
        return self.step(name)

    def to_dict(self) -> dict[str, Any]:
        """The v3/export shape, so `TraceCollection.save_json` round-trips."""
        return {**self.raw, "observations": [o.raw for o in self.observations]}

    def __repr__(self) -> str:
        return f"Trace(id={self.id!r}, name={self.name!r}, {len(self.observations)} observation(s))"


def _mappings(rows: Any, what: str) -> list[Mapping[str, Any]]:
    """`rows` as a list of objects, or a ValueError naming what is wrong (never an AttributeError later)."""
    if isinstance(rows, Mapping | str | bytes) or not isinstance(rows, Iterable):
        raise ValueError(f"{what} must be a list of objects, not {type(rows).__name__}")
    listed = list(rows)
    for row in listed:
        if not isinstance(row, Mapping):
            raise ValueError(f"{what} must be a list of objects; found {type(row).__name__}")
    return listed


def _start_order(observation: Observation) -> tuple[bool, datetime]:
    """Sort key: by start time, observations without one last (start time parsed once)."""
    start = observation.start_time
    return (start is None, start or datetime.min)


def prompt_text(value: Any) -> str:
    """Flatten a prompt input (string, chat messages, dict) into text for pattern matching."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(prompt_text(m.get("content") if isinstance(m, dict) else m) for m in value)
    if isinstance(value, dict):
        for key in ("prompt", "content", "text", "messages"):
            if key in value:
                return prompt_text(value[key])
        return json.dumps(value, ensure_ascii=False)
    return str(value)


class TraceCollection(Sequence[Trace]):
    """A list of traces for analysis: load (file or Langfuse), filter, save, turn into items.

    Loading from Langfuse uses the monitor's source (same filters, same bulk reads), so what a
    notebook sees is what a monitor would score.
    """

    def __init__(self, traces: Iterable[Trace] = ()) -> None:
        self.traces: list[Trace] = list(traces)
        self.invalid: list[str] = []  # why records were left out (to_items, from_file)

    # -- construction --------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: str | Path, patterns: Any = None) -> TraceCollection:
        """JSON or JSONL, in either shape: v2 observation rows (grouped by traceId, any order),
        or v3 traces with an `observations` list; also a JSON list or an API page `{"data": [...]}`.
        """
        from shared.monitoring.sources.file_rows import BadLine, json_records  # bytes-level: BOM, bad bytes

        rows: list[dict[str, Any]] = []
        traces: list[Trace] = []
        collection = cls()
        for number, record in json_records(Path(path)):
            if isinstance(record, BadLine):
                collection.invalid.append(f"record {number}: {record.reason}")
            elif not isinstance(record, Mapping):
                collection.invalid.append(f"record {number}: not a JSON object")
            elif "observations" in record or "traceId" not in record:
                try:
                    traces.append(Trace.from_v3(record, patterns))
                except ValueError as exc:
                    collection.invalid.append(f"record {number}: {exc}")
            else:
                rows.append(dict(record))
        grouped: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            trace_id = row.get("traceId")
            if not trace_id:
                collection.invalid.append(f"observation {row.get('id')!r} without traceId")
                continue
            grouped.setdefault(str(trace_id), []).append(row)
        for trace_id, group in grouped.items():
            try:
                traces.append(Trace.from_observations(group, patterns))
            except ValueError as exc:
                collection.invalid.append(f"trace {trace_id!r}: {exc}")
        collection.traces = traces
        return collection

    @classmethod
    def from_langfuse(
        cls,
        settings: Any = None,
        *,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        lookback_minutes: float = 24 * 60,
        patterns: Any = None,
        limit: int | None = None,
        **filters: Any,
    ) -> TraceCollection:
        """Traces of a window from Langfuse, with the source's filters (`trace_name`, `tags`,
        `environment`, `user_id`, `session_id`, `observation_name`, `page_size`, ...).

        Safe to call from a notebook (where an event loop is already running).
        """
        from shared.process import run_sync

        coroutine = cls.afrom_langfuse(
            settings,
            since=since,
            until=until,
            lookback_minutes=lookback_minutes,
            patterns=patterns,
            limit=limit,
            **filters,
        )
        return run_sync(coroutine)

    @classmethod
    async def afrom_langfuse(
        cls,
        settings: Any = None,
        *,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        lookback_minutes: float = 24 * 60,
        patterns: Any = None,
        limit: int | None = None,
        **filters: Any,
    ) -> TraceCollection:
        # Built by its registry key, as a monitor builds it: this module stays below the Langfuse adapter.
        from shared.monitoring.sources.base import build_source
        from shared.monitoring.window import resolve_window
        from shared.settings import Settings

        window = resolve_window(
            lookback_minutes=lookback_minutes,
            settle_minutes=0,
            since=parse_time(since) if isinstance(since, str) else since,
            until=parse_time(until) if isinstance(until, str) else until,
        )
        params = {**filters, "max_traces": limit}
        source = build_source("langfuse", params, settings=settings or Settings(), base_dir=Path.cwd())
        collection = cls()
        async for record in source.fetch(window):
            if isinstance(record, Trace):
                if patterns is not None:
                    record.patterns = patterns
                collection.traces.append(record)
            else:
                collection.invalid.append(str(getattr(record, "reason", record)))
        await source.aclose()
        return collection

    # -- sequence ------------------------------------------------------------------------
    @overload
    def __getitem__(self, index: int) -> Trace: ...

    @overload
    def __getitem__(self, index: slice) -> TraceCollection: ...

    def __getitem__(self, index: int | slice) -> Trace | TraceCollection:
        if isinstance(index, slice):
            return TraceCollection(self.traces[index])
        return self.traces[index]

    def __len__(self) -> int:
        return len(self.traces)

    def __iter__(self) -> Iterator[Trace]:
        return iter(self.traces)

    def __repr__(self) -> str:
        return f"TraceCollection({len(self.traces)} trace(s))"

    def get(self, trace_id: str) -> Trace | None:
        return next((t for t in self.traces if t.id == trace_id), None)

    # -- analysis ------------------------------------------------------------------------
    def filter_by(self, predicate: Callable[[Trace], bool] | None = None, **fields: Any) -> TraceCollection:
        """Traces matching `predicate` and every `field=value` (tolerant names; a list field
        matches when it contains the value; `has_step="name"` keeps traces with that step)."""

        def matches(trace: Trace) -> bool:
            if predicate is not None and not predicate(trace):
                return False
            for name, wanted in fields.items():
                if name == "has_step":
                    if trace.step(str(wanted)) is None:
                        return False
                    continue
                value = trace.get(name)
                if isinstance(value, list | tuple | set):
                    if wanted not in value:
                        return False
                elif value != wanted:
                    return False
            return True

        return TraceCollection(t for t in self.traces if matches(t))

    def save_json(self, path: str | Path) -> Path:
        """Write the v3/export shape: JSON lines for `.jsonl`, else one JSON list. Round-trips."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("w", encoding="utf-8") as handle:
            if target.suffix.lower() == ".jsonl":
                for trace in self.traces:
                    handle.write(json.dumps(trace.to_dict(), ensure_ascii=False, default=str) + "\n")
            else:
                json.dump([t.to_dict() for t in self.traces], handle, ensure_ascii=False, default=str, indent=1)
        return target

    def to_items(self, extractor: Callable[[Trace], Any]) -> list[Any]:
        """Run an extractor (trace -> DatasetItem) over every trace; failures land in `invalid`."""
        items: list[Any] = []
        for trace in self.traces:
            try:
                item = extractor(trace)
            except Exception as exc:  # an extractor failing on one trace must not stop analysis
                self.invalid.append(f"{trace.id}: {type(exc).__name__}: {exc}")
                continue
            if item is not None:
                items.append(item)
        return items

    def to_dataframe(self) -> Any:
        """One row per trace: id, name, timestamp, number of observations, step names."""
        import pandas as pd

        return pd.DataFrame(
            [
                {
                    "id": t.id,
                    "name": t.name,
                    "timestamp": t.timestamp,
                    "observations": len(t.observations),
                    "steps": ", ".join(t.steps),
                }
                for t in self.traces
            ]
        )
