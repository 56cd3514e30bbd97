"""`evalmon inspect --propose` and `evalmon init`: extractor_fields and a starter config from real traces.

A proposal is found, not guessed: for each field (the answer, the question, the documents) the
observation tree of the sampled traces gives candidate paths in an order of preference (the
root's output before a GENERATION's, a RETRIEVER before a span named "search"...), each is
resolved with the same `get_path` the extractor uses on every sampled trace, and the path that
yields usable values on the most traces wins. So a proposed path is one that worked on the
sample, whatever the trace shape.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from shared.errors import ConfigError, EvalmonError
from shared.langfuse.trace import Trace
from shared.monitoring.extractors import as_text, get_path
from shared.monitoring.guards import is_empty, is_prose, looks_like_status
from shared.monitoring.inspection import collect_sample, describe
from shared.monitoring.window import iso, resolve_window
from shared.settings import Settings

ANSWER_KEYS = ("answer", "output", "response", "content", "text", "result", "message", "completion")
QUESTION_KEYS = ("question", "query", "input", "text", "message", "content", "prompt")
DOCUMENT_KEYS = ("documents", "items", "results", "chunks", "nodes", "hits", "matches", "context", "docs", "sources")
RETRIEVAL_NAME = re.compile(r"retriev|search|context|\bkb\b|knowledge|docs?\b|lookup|rag", re.I)
NOT_ANSWERS = {"RETRIEVER", "TOOL", "EMBEDDING", "GUARDRAIL", "EVALUATOR", "EVENT"}
FIELD_ORDER = ("actual_output", "query", "retrieved_content")
STARTER_METRICS = ("non_empty", "pii_leakage", "refusal")


# -- what counts as a usable value ---------------------------------------------------------
def text_of(value: Any) -> str | None:
    """The text a metric would read from `value`; None for status objects, numbers, documents."""
    if value is None or isinstance(value, bool | int | float):
        return None
    if isinstance(value, str):
        text = value.strip()
        return None if is_empty(text) or looks_like_status(text) else text
    found = as_text(value)
    if found is None or found.lstrip()[:1] in ("{", "["):  # no text-bearing key: a JSON dump
        return None
    return found.strip() or None


def documents_of(value: Any) -> int:
    """How many non-empty documents `value` holds (a list of them, or one text)."""
    if isinstance(value, list | tuple):
        return sum(1 for v in value if not is_empty(v))
    if isinstance(value, str):
        return 0 if is_empty(value) else 1
    return 0


# -- proposal ------------------------------------------------------------------------------
@dataclass
class FieldChoice:
    path: str
    origin: str
    found: int
    total: int
    what: str

    def note(self) -> str:
        return f"{self.origin}: {self.what} on {self.found} of {self.total} sampled traces"


@dataclass
class Proposal:
    traces: int
    fields: dict[str, FieldChoice] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)

    def extractor_fields(self) -> dict[str, str]:
        return {name: choice.path for name, choice in self.fields.items()}

    def as_dict(self) -> dict[str, Any]:
        return {
            "traces": self.traces,
            "extractor_fields": self.extractor_fields(),
            "notes": {name: choice.note() for name, choice in self.fields.items()},
            "missing": self.missing,
        }

    def yaml_block(self) -> str:
        """`extractor_fields:` with one commented line per field (valid YAML, ready to paste)."""
        if not self.fields:
            lines = ["extractor_fields: {}"]
        else:
            lines = ["extractor_fields:"]
            rows = [(f"  {name}: {_scalar(c.path)}", c.note()) for name, c in self.fields.items()]
            width = max(len(r[0]) for r in rows)
            lines += [f"{left.ljust(width)}  # {note}" for left, note in rows]
        lines += [f"  # {name}: not found ({why})" for name, why in self.missing.items()]
        return "\n".join(lines)


@dataclass
class _Candidate:
    path: str
    origin: str


def propose_fields(traces: Sequence[Trace]) -> Proposal:
    """The extractor_fields that read the answer, question and documents on most sampled traces."""
    proposal = Proposal(traces=len(traces))
    if not traces:
        proposal.missing = dict.fromkeys(FIELD_ORDER, "no traces in the sample")
        return proposal
    steps = _step_summaries(traces)
    searches: dict[str, tuple[list[_Candidate], Callable[[Any], int], str, str]] = {
        "actual_output": (
            list(_answer_candidates(traces, steps)),
            _counts_text,
            "text",
            "no observation output holds text",
        ),
        "query": (list(_question_candidates(traces, steps)), _counts_text, "text", "no input holds text"),
        "retrieved_content": (
            list(_document_candidates(traces, steps)),
            documents_of,
            "documents",
            "no RETRIEVER or retrieve/search/context observation with a list output; "
            "the context may be inside the prompt",
        ),
    }
    for name in FIELD_ORDER:
        candidates, measure, what, why = searches[name]
        best: FieldChoice | None = None
        for candidate in candidates:
            values = [get_path(t, candidate.path) for t in traces]
            found = sum(1 for v in values if measure(v) > 0)
            if found and (best is None or found > best.found):
                shape = _common_shape(values) if what == "documents" else what
                best = FieldChoice(candidate.path, candidate.origin, found, len(traces), shape)
        if best is None:
            proposal.missing[name] = why
        else:
            proposal.fields[name] = best
    return proposal


def _counts_text(value: Any) -> int:
    return 1 if text_of(value) else 0


def _common_shape(values: Sequence[Any]) -> str:
    shapes = [describe(v).split(" x")[0] for v in values if v is not None]
    return max(set(shapes), key=shapes.count) if shapes else "documents"


@dataclass
class _Step:
    """Observations sharing a name over the sample: what the path `<name>.output` reads."""

    name: str
    type: str
    is_root: bool
    last_end: str = ""
    first_start: str = ""
    output_keys: set[str] = field(default_factory=set)
    input_keys: set[str] = field(default_factory=set)
    prose_keys: set[str] = field(default_factory=set)  # output keys holding sentences (`rationale`)


def _step_summaries(traces: Sequence[Trace]) -> list[_Step]:
    steps: dict[str, _Step] = {}
    for trace in traces:
        for obs in trace.observations:
            if not obs.name or "." in obs.name:  # a dotted name cannot be named in a dotted path
                continue
            step = steps.setdefault(obs.name, _Step(obs.name, obs.type, obs.is_root))
            end, start = str(obs.get("endTime") or ""), str(obs.get("startTime") or "")
            step.last_end = max(step.last_end, end)
            step.first_start = min(step.first_start, start) if step.first_start else start
            for keys, value in ((step.output_keys, obs.output), (step.input_keys, obs.input)):
                if isinstance(value, dict):
                    keys.update(str(k) for k in value)
            if isinstance(obs.output, dict):
                step.prose_keys.update(str(k) for k, v in obs.output.items() if isinstance(v, str) and is_prose(v))
    return list(steps.values())


def _label(step: _Step | None, part: str) -> str:
    if step is None:
        return f"root {part}"
    return f"{'root ' if step.is_root else ''}{step.type} {step.name!r} {part}"


def _keyed(base: str, keys: set[str], preferred: Sequence[str], prose: set[str] | None = None) -> Iterator[str]:
    """`base.key` for the text-bearing keys present (most telling first), `base` itself, then
    other keys seen holding sentences (an answer under `rationale` or `summary`)."""
    for key in preferred:
        if key in keys:
            yield f"{base}.{key}"
    yield base
    for key in sorted((prose or set()) - set(preferred)):
        if "." not in key:
            yield f"{base}.{key}"


def _answer_candidates(traces: Sequence[Trace], steps: list[_Step]) -> Iterator[_Candidate]:
    root = next((s for s in steps if s.is_root), None)
    for path in _keyed("output", root.output_keys if root else set(), ANSWER_KEYS, root.prose_keys if root else None):
        yield _Candidate(path, _label(root, path))
    generations = sorted((s for s in steps if s.type == "GENERATION"), key=lambda s: s.last_end, reverse=True)
    others = [s for s in steps if not s.is_root and s.type not in NOT_ANSWERS and s.type != "GENERATION"]
    for step in [*generations, *sorted(others, key=lambda s: s.last_end, reverse=True)]:
        for path in _keyed(f"{step.name}.output", step.output_keys, ANSWER_KEYS, step.prose_keys):
            yield _Candidate(path, _label(step, path.removeprefix(step.name + ".")))


def _question_candidates(traces: Sequence[Trace], steps: list[_Step]) -> Iterator[_Candidate]:
    root = next((s for s in steps if s.is_root), None)
    for path in _keyed("input", root.input_keys if root else set(), QUESTION_KEYS):
        yield _Candidate(path, _label(root, path))
    generations = sorted((s for s in steps if s.type == "GENERATION"), key=lambda s: s.first_start)
    for step in generations:
        for path in _keyed(f"{step.name}.input", step.input_keys, QUESTION_KEYS):
            yield _Candidate(path, _label(step, path.removeprefix(step.name + ".")))


def _document_candidates(traces: Sequence[Trace], steps: list[_Step]) -> Iterator[_Candidate]:
    retrievers = [s for s in steps if s.type == "RETRIEVER"]
    named = [
        s
        for s in steps
        if s.type not in ("RETRIEVER", "GENERATION") and not s.is_root and RETRIEVAL_NAME.search(s.name)
    ]
    for step in [*retrievers, *named]:
        for path in _keyed(f"{step.name}.output", step.output_keys, DOCUMENT_KEYS):
            yield _Candidate(path, _label(step, path.removeprefix(step.name + ".")))


# -- starter config ------------------------------------------------------------------------
def _scalar(value: Any) -> str:
    """A YAML scalar: plain when that reads back the same, else JSON-quoted (valid YAML)."""
    if isinstance(value, str):
        plain = value
        try:
            if yaml.safe_load(plain) == value and "#" not in plain and ": " not in plain:
                return plain
        except yaml.YAMLError:
            pass
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value)


def monitor_name(trace_name: str | None, fallback: str) -> str:
    """A valid monitor name (letters, digits, `_.-`, at most 80) from a trace name."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", trace_name or fallback).strip("-._") or "monitor"
    return base[:80]


def starter_config(
    *,
    source: dict[str, Any],
    monitor: str,
    proposal: Proposal,
    sampled: str,
    path: str = "THIS_FILE",
    unfiltered_trace_name: str | None = None,
) -> str:
    """A commented starter config: the sampled source, the proposed fields, cheap heuristic metrics."""
    lines = [
        f"# Starter monitor written by `evalmon init` from {sampled}.",
        "# Before trusting its numbers, look at what it extracts, trace by trace:",
        f"#   evalmon inspect {path}              (add --propose to re-derive extractor_fields)",
        f"#   evalmon validate --sample {path}    (the extraction warnings, before a first run)",
        f"monitor: {_scalar(monitor)}",
        f"description: {_scalar('Starter monitor from evalmon init; describe what it watches.')}",
        "",
        "source:",
    ]
    for key, value in source.items():
        lines.append(f"  {key}: {_scalar(value)}")
    if source.get("type") == "langfuse":
        lines += [
            "  # tags: [production]                 # only traces carrying these tags",
            "  # environment: [production]          # only these environments",
            "",
            "# Each run reads [now - 70 min, now - 10 min]: hourly runs overlap and the ledger skips what",
            "# was scored already; the 10 minutes let slow traces finish before they are read.",
            "window:",
            "  lookback_minutes: 70",
            "  settle_minutes: 10",
        ]
    else:
        if unfiltered_trace_name:
            lines.append(
                f"  # this file source cannot filter by trace name: every trace is read, not only {unfiltered_trace_name!r}"
            )
        lines += ["", "# A file is read whole unless a run gets --since/--until."]
    lines += [
        "",
        "# `default` reads the fields below; a field not listed falls back to the default extractor.",
        "extractor: default",
        "# Proposed from the sampled traces (`evalmon inspect --propose`): where each field comes from.",
        *proposal.yaml_block().splitlines(),
        "",
        "sampling:",
        "  strategy: random                     # at most n new items per run, seeded",
        "  n: 100",
        "  seed: 7",
        "",
        "metrics:",
    ]
    notes = {
        "non_empty": "the answer is there",
        "pii_leakage": "no e-mail, phone, card or SSN in the answer",
        "refusal": "the answer does not refuse",
    }
    for key in STARTER_METRICS:
        lines.append(f"  - key: {key:<30} # {notes[key]}")
    if "retrieved_content" in proposal.fields:
        lines.append(f"  - key: {'citation_validity':<30} # every [n] names a retrieved document")
    else:
        lines.append("  # - key: citation_validity            # needs retrieved_content (documents)")
    lines += [
        "  - key: latency",
        "    params:",
        "      max_seconds: 30",
        "",
        "dedup:",
        "  store: csv",
        "  path: data/scored_items.csv",
        "",
        "publish:",
        "  local:",
        "    dir: data/runs",
        "  langfuse: false                      # true: write the scores back onto the traces",
        "",
    ]
    return "\n".join(lines)


@dataclass
class InitResult:
    path: Path
    proposal: Proposal
    sampled: int


def init_config(
    *,
    source_type: str,
    out: Path,
    trace_name: str | None = None,
    path: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    lookback_hours: float = 24.0,
    limit: int = 20,
    force: bool = False,
    settings: Settings | None = None,
    base_dir: Path | None = None,
) -> InitResult:
    """DATAFLOW: flags -> source (langfuse or file) -> sample of traces (window: --since/--until or the
    last `lookback_hours`) -> propose_fields -> starter YAML -> loaded as a monitor (must be valid)
    -> written atomically to `out`."""
    from shared.monitoring.monitor import OnlineMonitor
    from shared.monitoring.sources.base import build_source, source_registry
    from shared.settings import load_settings

    base_dir = base_dir or Path.cwd()
    if source_type not in ("langfuse", "file"):
        raise ConfigError(f"unknown source '{source_type}'", field="--source", choices=["file", "langfuse"])
    if source_type == "langfuse" and not trace_name:
        raise ConfigError("name the traces to monitor", field="--trace-name")
    if source_type == "file" and not path:
        raise ConfigError("name the trace file", field="--path")
    if out.exists() and not force:
        raise ConfigError(f"{out} exists (use --force to replace it)", field="--out")
    params: dict[str, Any] = {"path": path} if source_type == "file" else {}
    filter_locally = False
    if trace_name:
        params_model = source_registry.resolve(source_type).Params
        if "trace_name" in params_model.model_fields:
            params["trace_name"] = trace_name
        else:
            filter_locally = True
    source = build_source(source_type, params, settings=settings or load_settings(), base_dir=base_dir)
    window = resolve_window(lookback_minutes=lookback_hours * 60, settle_minutes=0, since=since, until=until)
    sample = asyncio.run(collect_sample(source, window, limit if not filter_locally else 10 * limit))
    traces = [r for r in sample.records if isinstance(r, Trace)]
    if filter_locally:
        traces = [t for t in traces if t.name == trace_name][:limit]
    named = f" named {trace_name!r}" if trace_name else ""
    if not traces:
        if source_type == "file":
            raise EvalmonError(f"no traces{named} in the file {path}; nothing written")
        raise EvalmonError(
            f"no traces{named} in Langfuse between {iso(window.since)} and {iso(window.until)}; nothing written "
            "(widen the window with --since or --lookback-hours)"
        )
    proposal = propose_fields(traces)
    sampled = f"{len(traces)} trace(s){named} ({source.source_key}, read {iso(window.since)} .. {iso(window.until)})"
    if source_type == "file":
        sampled = f"{len(traces)} trace(s){named} of {path}"
    text = starter_config(
        source={"type": source_type, **params},
        monitor=monitor_name(trace_name, Path(path or "monitor").stem),
        proposal=proposal,
        sampled=sampled,
        path=str(out),
        unfiltered_trace_name=trace_name if filter_locally else None,
    )
    _write_checked(text, out, base_dir, OnlineMonitor)
    return InitResult(out, proposal, len(traces))


def _write_checked(text: str, out: Path, base_dir: Path, monitor_cls: Any) -> None:
    """Write `text` to `out` only once it loads as a monitor (what `evalmon validate` checks)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".yaml", dir=out.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        monitor_cls.from_yaml(temp, base_dir=base_dir)
        os.replace(temp, out)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
