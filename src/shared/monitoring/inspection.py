"""`evalmon inspect`: look at what a monitor would score before trusting a number.

Reads a small sample from the config's source (the same source, filters and window a run uses),
then shows (1) the shape of the observation trees: names, types, how many traces have each
observation, which carry input and output, and the shape of outputs (`dict{status,steps}`,
`list[dict{page_content,metadata}] x4`, `str`); (2) per sampled trace, what the configured
extractor produced for each field, with a short preview and the observation it came from;
(3) the item-level extraction warnings of `shared.monitoring.guards`.

Origins come from the extractor when it can tell (`extract_with_origins` in
`shared.monitoring.extractors`); otherwise they are found by looking for the extracted text in
the trace's observations, which works for any extractor, custom ones included.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from shared.errors import InvalidRecordError
from shared.evaluation.item import DatasetItem
from shared.monitoring.guards import is_empty, item_warnings, preview
from shared.monitoring.proposal import Proposal, propose_fields
from shared.monitoring.shapes import describe, shape_of
from shared.monitoring.sources.base import DataSource, InvalidRecord
from shared.monitoring.window import Window, iso, resolve_window
from shared.traces import Observation, Trace

if TYPE_CHECKING:
    from rich.console import Console

    from shared.monitoring.monitor import OnlineMonitor

DEFAULT_LIMIT = 20
# Fields shown for every item even when empty: what most metrics read.
CORE_FIELDS = ("query", "actual_output", "retrieved_content")
OTHER_FIELDS = (
    "expected_output",
    "conversation",
    "tools_called",
    "additional_input",
    "additional_output",
    "latency",
    "session_id",
    "observation_id",
)
MAX_INVALID_SHOWN = 5
LOCATE_MIN_CHARS = 12  # shorter texts ("ok", "approve") match too many places to name one


# -- sampling ------------------------------------------------------------------------------
@dataclass
class Sample:
    """The first `limit` readable records of a window, and why others were left out."""

    records: list[Any]
    invalid: list[str]
    window: Window
    window_applied: bool
    more_available: bool


async def collect_sample(source: DataSource, window: Window, limit: int) -> Sample:
    """Fetch until `limit` records (invalid ones are listed, not counted); the source is closed after."""
    records: list[Any] = []
    invalid: list[str] = []
    more = False
    try:
        await source.check()
        stream = source.fetch(window)
        try:
            async for record in stream:
                if isinstance(record, InvalidRecord):
                    invalid.append(f"{record.ref}: {record.reason}" if record.ref else record.reason)
                    continue
                if len(records) >= limit:
                    more = True
                    break
                records.append(record)
        finally:
            await stream.aclose()  # type: ignore[attr-defined]
    finally:
        await source.aclose()
    applied = window.explicit or type(source).filters_by_default_window
    return Sample(records, invalid, window, applied, more or source.stats.more_available)


def monitor_window(monitor: OnlineMonitor, since: datetime | None, until: datetime | None) -> Window:
    """The window a run would read now (explicit bounds win), as `run` resolves it."""
    cfg = monitor.config.window
    return resolve_window(
        lookback_minutes=cfg.lookback_minutes,
        settle_minutes=cfg.settle_minutes,
        since=since or cfg.since,
        until=until or cfg.until,
    )


def sample_monitor(
    monitor: OnlineMonitor, *, since: datetime | None = None, until: datetime | None = None, limit: int = DEFAULT_LIMIT
) -> Sample:
    return asyncio.run(collect_sample(monitor.source, monitor_window(monitor, since, until), limit))


# -- observation tree shape ----------------------------------------------------------------
@dataclass
class OutputShape:
    shape: str
    traces: int = 0
    min_len: int | None = None
    max_len: int | None = None

    def text(self) -> str:
        if self.min_len is None or self.max_len is None:
            return self.shape
        size = str(self.min_len) if self.min_len == self.max_len else f"{self.min_len}..{self.max_len}"
        return f"{self.shape} x{size}"


@dataclass
class NodeShape:
    """One position in the observation tree (a name under its parents), over the sampled traces."""

    path: tuple[str, ...]
    name: str
    type: str
    traces: int = 0
    count: int = 0
    with_input: int = 0
    with_output: int = 0
    outputs: dict[str, OutputShape] = field(default_factory=dict)

    @property
    def depth(self) -> int:
        return len(self.path) - 1

    def output_text(self) -> str:
        ranked = sorted(self.outputs.values(), key=lambda o: -o.traces)
        return " | ".join(o.text() for o in ranked[:3]) + (" | ..." if len(ranked) > 3 else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": list(self.path),
            "name": self.name,
            "type": self.type,
            "depth": self.depth,
            "traces": self.traces,
            "count": self.count,
            "with_input": self.with_input,
            "with_output": self.with_output,
            "outputs": [asdict(o) | {"text": o.text()} for o in self.outputs.values()],
        }


def tree_shape(traces: Sequence[Trace]) -> list[NodeShape]:
    """The observation trees of `traces` merged by name path, parents before children."""
    nodes: dict[tuple[str, ...], NodeShape] = {}
    children: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
    roots: list[tuple[str, ...]] = []
    for trace in traces:
        seen: set[tuple[str, ...]] = set()
        seen_shapes: set[tuple[tuple[str, ...], str]] = set()
        for obs, path in _paths(trace):
            node = nodes.get(path)
            if node is None:
                node = nodes[path] = NodeShape(path, obs.name or "(unnamed)", obs.type or "?")
                (children.setdefault(path[:-1], []) if len(path) > 1 else roots).append(path)
            node.count += 1
            node.with_input += not is_empty(obs.input)
            node.with_output += not is_empty(obs.output)
            shape, size = shape_of(obs.output)
            out = node.outputs.setdefault(shape, OutputShape(shape))
            if (path, shape) not in seen_shapes:
                out.traces += 1
                seen_shapes.add((path, shape))
            if size is not None:
                out.min_len = size if out.min_len is None else min(out.min_len, size)
                out.max_len = size if out.max_len is None else max(out.max_len, size)
            if path not in seen:
                node.traces += 1
                seen.add(path)
    ordered: list[NodeShape] = []

    def walk(path: tuple[str, ...]) -> None:
        ordered.append(nodes[path])
        for child in children.get(path, []):
            walk(child)

    for root in roots:
        walk(root)
    return ordered


def _paths(trace: Trace) -> Iterator[tuple[Observation, tuple[str, ...]]]:
    """Each observation with the names from its root down (start order; orphans are roots)."""
    by_id = {o.id: o for o in trace.observations if o.id}
    cache: dict[str, tuple[str, ...]] = {}

    def path_of(obs: Observation, depth: int = 0) -> tuple[str, ...]:
        if obs.id and obs.id in cache:
            return cache[obs.id]
        label = f"{obs.name or '(unnamed)'} [{obs.type or '?'}]"
        parent = by_id.get(str(obs.get("parentObservationId") or ""))
        result = (label,) if parent is None or parent is obs or depth > 50 else (*path_of(parent, depth + 1), label)
        if obs.id:
            cache[obs.id] = result
        return result

    for obs in trace.observations:
        yield obs, path_of(obs)


# -- what the extractor produced -----------------------------------------------------------
@dataclass
class FieldView:
    name: str
    empty: bool
    preview: str
    origin: str | None = None
    count: int | None = None  # documents, messages, tool calls


@dataclass
class ItemView:
    record: str
    item_id: str | None = None
    timestamp: str | None = None
    fields: list[FieldView] = field(default_factory=list)
    error: str | None = None


def extract_item(monitor: OnlineMonitor, record: Any) -> tuple[DatasetItem, dict[str, str]]:
    """The monitor's extraction of one record, with field origins when the extractor reports them."""
    from shared.monitoring import extractors

    with_origins = getattr(extractors, "extract_with_origins", None)
    if with_origins is not None:
        item, origins = with_origins(monitor.extractor, record)
        origins = dict(origins or {})
    else:
        item, origins = monitor.extractor(record), {}
    if monitor.config.item_level == "observation":
        if not item.observation_id:
            raise InvalidRecordError("observation-level monitor: the extractor set no observation_id")
        item = item.model_copy(update={"id": item.observation_id})
    return item, origins


def view_item(
    record: Any, item: DatasetItem, origins: Mapping[str, str], configured: Mapping[str, Any] | None = None
) -> ItemView:
    """One item's fields with previews and origins; a configured path is followed to its observation."""
    configured = configured or {}
    view = ItemView(
        record=_record_ref(record),
        item_id=item.id,
        timestamp=iso(item.source_timestamp) if item.source_timestamp else None,
    )
    for name in (*CORE_FIELDS, *OTHER_FIELDS):
        value = getattr(item, name)
        empty = is_empty(value)
        if empty and name not in CORE_FIELDS:
            continue
        origin = origins.get(name)
        if (origin is None or name in configured) and not empty and isinstance(record, Trace):
            found = locate(record, value)
            if origin is None:
                origin = found
            elif found and found not in origin:
                origin = f"{origin} = {found}"
        view.fields.append(_field_view(name, value, empty, origin))
    return view


def _field_view(name: str, value: Any, empty: bool, origin: str | None) -> FieldView:
    if isinstance(value, list):
        texts = [preview(_plain(v), 40) for v in value[:3]]
        more = f" | +{len(value) - 3} more" if len(value) > 3 else ""
        return FieldView(name, empty, " | ".join(texts) + more, origin, count=len(value))
    if isinstance(value, Mapping):
        return FieldView(name, empty, describe(value), origin)
    return FieldView(name, empty, "" if value is None else preview(_plain(value), 80), origin)


def _plain(value: Any) -> str:
    if isinstance(value, str):
        return value
    content = getattr(value, "content", None)  # a conversation Message
    if isinstance(content, str):
        role = getattr(value, "role", "")
        return f"{role}: {content}" if role else content
    return str(value)


def _record_ref(record: Any) -> str:
    if isinstance(record, Trace):
        return record.id or "?"
    for key in ("id", "ts", "thread_ts"):
        value = record.get(key) if isinstance(record, Mapping) else getattr(record, key, None)
        if value:
            return str(value)
    return type(record).__name__


def locate(trace: Trace, value: Any) -> str | None:
    """Where in the trace an extracted value was found: `llm [GENERATION] output`, or None.

    The first text of the value (the first document of a list) is looked for in the trace's and
    each observation's input and output, root first: an equal string (or, for JSON text, an equal
    structure) first, then a string containing it.
    """
    text = _first_text(value)
    if text is None:
        return None
    wanted = " ".join(text.split())
    if len(wanted) < LOCATE_MIN_CHARS and not isinstance(value, str):
        return None
    structure = _json_structure(text)
    places = list(_places(trace))
    for exact in (True, False):
        for label, part, node_path, node in places:
            if exact:
                hit = node == structure if structure is not None else _is_text(node, wanted)
            else:
                hit = len(wanted) >= LOCATE_MIN_CHARS and isinstance(node, str) and wanted in " ".join(node.split())
            if hit:
                where = f"{label} {part}{node_path}"
                return where if exact else f"{where} (inside)"
    return None


def _is_text(node: Any, wanted: str) -> bool:
    return isinstance(node, str) and " ".join(node.split()) == wanted


def _json_structure(text: str) -> Any:
    """The structure of JSON text (an object or list the extractor wrote out as text), else None."""
    if text[:1] not in ("{", "["):
        return None
    try:
        return orjson.loads(text)
    except ValueError:
        return None


def _first_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, list) and value:
        return _first_text(value[0])
    content = getattr(value, "content", None)
    return content.strip() or None if isinstance(content, str) else None


def _places(trace: Trace) -> Iterator[tuple[str, str, str, Any]]:
    """(observation label, input|output, key path, value) for every nested value, root first."""
    observations = sorted(trace.observations, key=lambda o: not o.is_root)
    for obs in observations:
        label = f"{obs.name or '(unnamed)'} [{obs.type or '?'}]"
        for part in ("output", "input"):
            for node_path, node in _nodes(obs.get(part)):
                yield label, part, node_path, node
    for part in ("output", "input"):  # a v3 trace's own I/O, when no observation carries it
        for node_path, node in _nodes(trace.get(part)):
            yield "trace", part, node_path, node


def _nodes(value: Any, path: str = "", depth: int = 0) -> Iterator[tuple[str, Any]]:
    if value is None:
        return
    yield path, value
    if depth < 6 and isinstance(value, Mapping):
        for key, inner in value.items():
            yield from _nodes(inner, f"{path}.{key}", depth + 1)
    elif depth < 6 and isinstance(value, list | tuple):
        for index, inner in enumerate(value[:200]):
            yield from _nodes(inner, f"{path}[{index}]", depth + 1)


# -- the report ----------------------------------------------------------------------------
@dataclass
class Inspection:
    monitor: str
    source: str
    extractor: str
    window: dict[str, Any]
    sampled: int
    more_available: bool
    invalid: list[str]
    tree: list[NodeShape]
    items: list[ItemView]
    warnings: list[str]
    proposal: Proposal | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "monitor": self.monitor,
            "source": self.source,
            "extractor": self.extractor,
            "window": self.window,
            "sampled": self.sampled,
            "more_available": self.more_available,
            "invalid": self.invalid,
            "tree": [node.as_dict() for node in self.tree],
            "items": [asdict(view) for view in self.items],
            "warnings": self.warnings,
            "proposal": self.proposal.as_dict() if self.proposal else None,
        }


def inspect_monitor(
    monitor: OnlineMonitor,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = DEFAULT_LIMIT,
    propose: bool = False,
) -> Inspection:
    """DATAFLOW: window -> source.fetch (first `limit` records) -> tree shape -> extractor per record
    (item + origins) -> item-level guard warnings -> optional extractor_fields proposal."""
    sample = sample_monitor(monitor, since=since, until=until, limit=limit)
    traces = [r for r in sample.records if isinstance(r, Trace)]
    views: list[ItemView] = []
    items: list[DatasetItem] = []
    for record in sample.records:
        try:
            item, origins = extract_item(monitor, record)
        except Exception as exc:  # one record the extractor cannot read is shown, not fatal
            views.append(ItemView(record=_record_ref(record), error=f"{type(exc).__name__}: {exc}"))
            continue
        items.append(item)
        views.append(view_item(record, item, origins, monitor.config.extractor_fields))
    proposal = None
    if propose:
        proposal = propose_fields(traces)
    return Inspection(
        monitor=monitor.name,
        source=monitor.source.source_key,
        extractor=monitor.config.extractor,
        window={**sample.window.as_dict(), "applied": sample.window_applied},
        sampled=len(sample.records),
        more_available=sample.more_available,
        invalid=sample.invalid,
        tree=tree_shape(traces),
        items=views,
        warnings=item_warnings(items, monitor.metrics),
        proposal=proposal,
    )


def tree_lines(nodes: Sequence[NodeShape], traces: int) -> list[str]:
    """The merged tree as indented lines with guides (plain text: nothing is cut at any width)."""
    children: dict[tuple[str, ...], list[NodeShape]] = {}
    for node in nodes:
        children.setdefault(node.path[:-1], []).append(node)
    lines: list[str] = []

    def walk(parent: tuple[str, ...], indent: str) -> None:
        siblings = children.get(parent, [])
        for i, node in enumerate(siblings):
            last = i == len(siblings) - 1
            lines.append(indent + ("└── " if last else "├── ") + _node_label(node, traces))
            walk(node.path, indent + ("    " if last else "│   "))

    walk((), "")
    return lines


def _node_label(node: NodeShape, traces: int) -> str:
    repeated = f" ({node.count} observations)" if node.count != node.traces else ""
    output = f"  -> {node.output_text()}" if node.with_output else ""
    return (
        f"{node.name} {node.type}  in {node.traces}/{traces} traces{repeated}"
        f"  input {node.with_input}  output {node.with_output}{output}"
    )


def render(inspection: Inspection, console: Console) -> None:
    """The human view: tree, per-item fields with their origin, warnings, proposal."""
    from rich.markup import escape

    def say(text: str) -> None:
        console.print(text, highlight=False)

    w = inspection.window
    window = f"{w['since']} .. {w['until']}" if w.get("applied", True) else "all records of the file"
    say(f"[bold]{escape(inspection.monitor)}[/bold]  source {escape(inspection.source)}  window {window}")
    more = " (more in the window: raise --limit)" if inspection.more_available else ""
    say(f"sampled {inspection.sampled} record(s){more}, unreadable {len(inspection.invalid)}")
    for reason in inspection.invalid[:MAX_INVALID_SHOWN]:
        say(f"  unreadable: {escape(reason)}")
    if inspection.tree:
        say(f"\n[bold]observation tree[/bold] (merged over {inspection.sampled} traces)")
        for line in tree_lines(inspection.tree, inspection.sampled):
            say(escape(line))
    say(f"\n[bold]extracted[/bold] (extractor: {escape(inspection.extractor)})")
    width = max((len(fv.name) for view in inspection.items for fv in view.fields), default=10) + 2
    for view in inspection.items:
        say(f"[bold]{escape(view.record)}[/bold]" + (f"  {view.timestamp}" if view.timestamp else ""))
        if view.error:
            say(f"  [red]extraction failed:[/red] {escape(view.error)}")
            continue
        for fv in view.fields:
            if fv.empty:
                shown = "[yellow](empty)[/yellow]"
            else:
                shown = (f"{fv.count} x " if fv.count is not None else "") + escape(fv.preview)
            say(f"  {fv.name:<{width}}{shown}")
            if fv.origin:
                say(f"  {'':<{width}}[dim]<- {escape(fv.origin)}[/dim]")
    for warning in inspection.warnings:
        say(f"[yellow]warning:[/yellow] {escape(warning)}")
    if inspection.proposal is not None:
        say("\n[bold]proposed extractor_fields[/bold] (paste into the config):")
        say(escape(inspection.proposal.yaml_block()))


# -- validate --sample ---------------------------------------------------------------------
@dataclass
class SampleCheck:
    """The extraction over a sample: how many records became items, and the item-level warnings."""

    records: int
    items: int
    invalid: list[str]
    failed: list[str]
    warnings: list[str]
    window: dict[str, Any]


def check_sample(
    monitor: OnlineMonitor,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
) -> SampleCheck:
    """DATAFLOW: window -> source.fetch (first `limit` records) -> extractor -> guard item warnings."""
    sample = sample_monitor(monitor, since=since, until=until, limit=limit)
    items: list[DatasetItem] = []
    failed: list[str] = []
    for record in sample.records:
        try:
            items.append(extract_item(monitor, record)[0])
        except Exception as exc:  # counted and listed, as a run counts it invalid
            failed.append(f"{_record_ref(record)}: {type(exc).__name__}: {exc}")
    return SampleCheck(
        records=len(sample.records),
        items=len(items),
        invalid=sample.invalid,
        failed=failed,
        warnings=item_warnings(items, monitor.metrics),
        window={**sample.window.as_dict(), "applied": sample.window_applied},
    )
