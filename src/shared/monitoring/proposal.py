"""`evalmon inspect --propose`: the `extractor_fields` that read the answer, question and documents.

A proposal is found on the sample, not guessed. For each field, the sampled observation trees
give candidate specs in an order of preference (the root's output before a GENERATION's, a
RETRIEVER before a tool named `search`, a prompt section when the question or the context only
exists inside a prompt). Each candidate is resolved on every sampled trace exactly as the
extractor resolves a configured path (`resolve_spec`), and read with the extractor's own text
and document rules (`answer_of`, `question_of`, `documents_of`). The first candidate, in order of
preference, that works on nearly as many traces as the best one does, and on at least 80% of the
sample, is proposed. A field that no single path reads on 80% of the traces (a tool used by some
traces, a retriever by others) is left to the default extractor's rules, and the block says why.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from shared.monitoring.extraction.default import names_retrieval
from shared.monitoring.extraction.documents import documents_of
from shared.monitoring.extraction.paths import FieldSpec, get_path, resolve_spec
from shared.monitoring.extraction.text import answer_of, question_of
from shared.monitoring.guards import is_empty, is_prose, looks_like_status
from shared.monitoring.shapes import describe
from shared.traces import Trace, prompt_text

FIELD_ORDER = ("actual_output", "query", "retrieved_content")
MIN_COVERAGE = 0.8  # of the sampled traces: below that, one path does not describe the app
NEAR_BEST = 0.8  # an earlier (preferred) candidate wins when it reads this share of the best one's traces
NOT_ANSWERS = {"RETRIEVER", "TOOL", "EMBEDDING", "GUARDRAIL", "EVALUATOR", "EVENT"}
ANSWER_MIN_WORDS = 3  # `tools`, `__end__`, `approve`: routing labels and codes, not answers
_HEADER = re.compile(r"^[ \t]*(?:#{1,6}[ \t]+)?(?:\*\*)?([A-Za-z][A-Za-z0-9 _/&()-]{1,40}?)(?:\*\*)?:", re.M)
_QUESTION_HEADER = re.compile(r"question|query|ask", re.I)

Measure = Callable[[Any], bool]


@dataclass(frozen=True)
class Candidate:
    spec: FieldSpec
    origin: str
    # Where the field sits as a whole (`input` for `input.kwargs.question`). When the whole reads the
    # field on most traces but none of its paths does, the field moves around inside it: a later,
    # worse place (the whole prompt) is not proposed instead.
    within: str = ""
    # `(base, where)`: the key path `where` at which the extractor's rules find the answer in `base`
    # on every trace (an empty slot there still counts: `{"output": null}` is an empty answer).
    via: tuple[str, str] | None = None


@dataclass
class FieldChoice:
    spec: FieldSpec
    origin: str
    found: int
    total: int
    what: str

    @property
    def path(self) -> str:
        return self.spec.path

    def value(self) -> str | dict[str, Any]:
        """As written in YAML: the path, or `{path, section}` for a prompt section."""
        if self.spec.section is None:
            return self.spec.path
        return {"path": self.spec.path, "section": self.spec.section}

    def note(self) -> str:
        return f"{self.origin}: {self.what} on {self.found} of {self.total} sampled traces"


@dataclass
class Proposal:
    traces: int
    fields: dict[str, FieldChoice] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)

    def extractor_fields(self) -> dict[str, str | dict[str, Any]]:
        return {name: choice.value() for name, choice in self.fields.items()}

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
            rows = [(f"  {name}: {_yaml_value(c.value())}", c.note()) for name, c in self.fields.items()]
            width = max(len(left) for left, _ in rows)
            lines += [f"{left.ljust(width)}  # {note}" for left, note in rows]
        lines += [f"  # {name}: not proposed ({why})" for name, why in self.missing.items()]
        return "\n".join(lines)


def yaml_scalar(value: Any) -> str:
    """A YAML scalar: plain when that reads back the same, else JSON-quoted (valid YAML)."""
    if isinstance(value, str):
        try:
            if yaml.safe_load(value) == value and "#" not in value and ": " not in value:
                return value
        except yaml.YAMLError:
            pass
    return json.dumps(value, ensure_ascii=False)


def _yaml_value(value: str | dict[str, Any]) -> str:
    if isinstance(value, str):
        return yaml_scalar(value)
    return "{" + ", ".join(f"{k}: {yaml_scalar(v)}" for k, v in value.items()) + "}"


# -- what counts as reading a field --------------------------------------------------------
def reads_answer(value: Any) -> bool:
    """The value carries an answer as the extractor reads it: answer text, or a declared empty slot."""
    found = answer_of(value)
    if found is None:
        return False
    if found.text is None:
        return True  # `{"output": null}`: the app's answer slot, empty this time
    words = sum(1 for w in found.text.split() if any(c.isalpha() for c in w))
    return words >= ANSWER_MIN_WORDS and not looks_like_status(found.text)


def reads_any_answer(value: Any) -> bool:
    found = answer_of(value)
    return found is not None and not (found.text and looks_like_status(found.text))


def reads_question(value: Any) -> bool:
    """A path to the question must end on its text (a configured path is read as text as-is)."""
    return isinstance(value, str) and not is_empty(value) and value.lstrip()[:1] not in ("{", "[")


def reads_documents(value: Any) -> bool:
    return any(d.text.strip() for d in documents_of(value))


# -- proposal ------------------------------------------------------------------------------
def propose_fields(traces: Sequence[Trace]) -> Proposal:
    """DATAFLOW: sampled traces -> steps (observations by name) -> candidates per field in order of
    preference -> each resolved on every trace -> the preferred candidate that reads the field."""
    proposal = Proposal(traces=len(traces))
    if not traces:
        proposal.missing = dict.fromkeys(FIELD_ORDER, "no traces in the sample")
        return proposal
    steps = _steps(traces)
    sections = sections_supported()
    searches: dict[str, tuple[list[Candidate], list[Measure], str]] = {
        "actual_output": (
            _precise(traces, list(_answer_candidates(steps))),
            [reads_answer, reads_any_answer],
            "the answer",
        ),
        "query": (list(_question_candidates(traces, steps, sections)), [reads_question], "the question"),
        "retrieved_content": (list(_document_candidates(traces, steps, sections)), [reads_documents], "documents"),
    }
    for name in FIELD_ORDER:
        candidates, measures, what = searches[name]
        choice, why = _choose(traces, candidates, measures, what, _question_text if name == "query" else None)
        if choice is None:
            proposal.missing[name] = why
        else:
            proposal.fields[name] = choice
    return proposal


def _choose(
    traces: Sequence[Trace],
    candidates: list[Candidate],
    measures: list[Measure],
    what: str,
    whole: Callable[[Any], bool] | None = None,
) -> tuple[FieldChoice | None, str]:
    """The first candidate, in order of preference, reading the field on nearly as many traces as
    the best one and on at least MIN_COVERAGE of them (strict measures first)."""
    if not candidates:
        return None, _nothing_to_try(what)
    needed = MIN_COVERAGE * len(traces)
    best_seen: tuple[int, Candidate] | None = None
    for measure in measures:
        values = {c: [resolve_spec(t, c.spec) for t in traces] for c in candidates}
        found = {
            c: sum(1 for t, v in zip(traces, values[c], strict=True) if _reads(c, t, v, measure)) for c in candidates
        }
        best = max(found.values())
        if best == 0:
            continue
        top = max(candidates, key=lambda c: found[c])
        best_seen = best_seen or (found[top], top)
        moving = ""  # set once the field was seen moving around inside a value: only sections may follow
        for candidate in candidates:
            qualifies = found[candidate] >= max(math.ceil(NEAR_BEST * best), needed)
            if qualifies and (not moving or candidate.spec.section):
                shape = _common_shape(values[candidate]) if what == "documents" else what
                return FieldChoice(candidate.spec, candidate.origin, found[candidate], len(traces), shape), ""
            if whole is not None and not moving and candidate.within and _last_of(candidates, candidate):
                reads = sum(1 for t in traces if whole(get_path(t, candidate.within)))
                if reads >= needed:
                    moving = (
                        f"it moves around inside {candidate.within} (read on {reads} of {len(traces)} traces, no "
                        "single path on 80%): leave it to the default extractor"
                    )
        if moving:
            return None, moving
    if best_seen is not None:
        count, top = best_seen
        return None, (
            f"no single path reads it on {MIN_COVERAGE:.0%} of the traces; best {top.spec.describe()} on {count} of "
            f"{len(traces)}: leave it to the default extractor"
        )
    return None, _nothing_to_try(what)


def _reads(candidate: Candidate, trace: Trace, value: Any, measure: Measure) -> bool:
    if candidate.via is None:
        return measure(value)
    base, where = candidate.via
    whole = get_path(trace, base)
    found = answer_of(whole)
    return found is not None and found.where == where and measure(whole)


def _precise(traces: Sequence[Trace], candidates: list[Candidate]) -> list[Candidate]:
    """Before each answer path, the key path inside it where the answer always sits (`output.output`),
    so an empty answer reads as empty rather than as the object around it."""
    result: list[Candidate] = []
    for candidate in candidates:
        wheres = Counter(
            found.where for trace in traces if (found := answer_of(resolve_spec(trace, candidate.spec))) is not None
        )
        (where,) = wheres if len(wheres) == 1 else ("",)
        if where:
            base = candidate.spec.path
            path = f"{base}.{_from_the_end(traces, base, where)}"
            result.append(
                Candidate(FieldSpec(path=path), f"{candidate.origin}.{path[len(base) + 1 :]}", via=(base, where))
            )
        result.append(candidate)
    return result


def _from_the_end(traces: Sequence[Trace], base: str, where: str) -> str:
    """`messages.3.content` -> `messages.-1.content` when index 3 is the last item on every trace: an
    agent that loops once more moves its answer down the list, but it stays the last message."""
    parts = where.split(".")
    for i, part in enumerate(parts):
        if not part.isdigit():
            continue
        prefix = ".".join([base, *parts[:i]])
        lists = [get_path(t, prefix) for t in traces]
        if all(isinstance(v, list) and len(v) == int(part) + 1 for v in lists if v is not None):
            parts[i] = "-1"
    return ".".join(parts)


def _last_of(candidates: list[Candidate], candidate: Candidate) -> bool:
    """Whether `candidate` is the last one of its `within` group."""
    index = candidates.index(candidate)
    return index + 1 == len(candidates) or candidates[index + 1].within != candidate.within


def _question_text(value: Any) -> bool:
    found = question_of(value)
    return found is not None and bool(found.text)


def _nothing_to_try(what: str) -> str:
    if what == "documents":
        return "no RETRIEVER, no retrieve/search/context step and no numbered context in a prompt"
    return f"no observation carries {what}"


def _common_shape(values: Sequence[Any]) -> str:
    shapes = [describe(v).split(" x")[0] for v in values if v is not None]
    if not shapes:
        return "documents"
    top = Counter(shapes).most_common(1)[0][0]
    return "numbered items" if top == "str" else top


@functools.cache
def sections_supported() -> bool:
    """Whether this version's config accepts `{path, section}` specs in extractor_fields."""
    from pydantic import ValidationError

    from shared.monitoring.config import MonitorConfig

    probe = {
        "monitor": "probe",
        "source": {"type": "file"},
        "metrics": [{"key": "non_empty"}],
        "extractor_fields": {"query": {"path": "input", "section": "Question"}},
    }
    try:
        MonitorConfig.model_validate(probe)
    except ValidationError:
        return False
    return True


# -- candidates ----------------------------------------------------------------------------
@dataclass
class _Step:
    """Observations sharing a name over the sample: what the path `<name>.output` reads."""

    name: str
    type: str
    is_root: bool = True  # the root of every trace that has it (then `output` reads it)
    last_end: str = ""
    first_start: str = ""
    prose_keys: set[str] = field(default_factory=set)  # output keys holding sentences (`rationale`)


def _steps(traces: Sequence[Trace]) -> list[_Step]:
    steps: dict[str, _Step] = {}
    for trace in traces:
        for obs in trace.observations:
            if not obs.name or "." in obs.name:  # a dotted name cannot be named in a dotted path
                continue
            step = steps.setdefault(obs.name, _Step(obs.name, obs.type))
            step.is_root = step.is_root and obs.is_root
            end, start = str(obs.get("endTime") or ""), str(obs.get("startTime") or "")
            step.last_end = max(step.last_end, end)
            step.first_start = min(step.first_start, start) if step.first_start else start
            if isinstance(obs.output, dict):
                step.prose_keys.update(
                    str(k) for k, v in obs.output.items() if isinstance(v, str) and is_prose(v) and "." not in str(k)
                )
    return list(steps.values())


def _label(step: _Step | None, part: str) -> str:
    if step is None:
        return f"trace {part}"
    return f"{'root ' if step.is_root else ''}{step.type} {step.name!r} {part}"


def _candidate(path: str, step: _Step | None, section: str | None = None) -> Candidate:
    part = path if step is None or not path.startswith(step.name + ".") else path[len(step.name) + 1 :]
    origin = _label(step, part) + (f" [section {section!r}]" if section else "")
    return Candidate(FieldSpec(path=path, section=section), origin)


def _answer_candidates(steps: list[_Step]) -> Iterator[Candidate]:
    """The root's output, the GENERATIONs' (latest first), other steps'; then keys of theirs that
    hold sentences (an answer under `rationale` or `summary`)."""
    roots = [s for s in steps if s.is_root]
    root = roots[0] if len(roots) == 1 else None
    generations = sorted((s for s in steps if s.type == "GENERATION" and not s.is_root), key=lambda s: s.last_end)
    others = [s for s in steps if not s.is_root and s.type not in NOT_ANSWERS and s.type != "GENERATION"]
    ordered: list[tuple[str, _Step | None]] = [("output", root)]
    ordered += [(f"{s.name}.output", s) for s in [*reversed(generations), *sorted(others, key=lambda s: s.last_end)]]
    for base, step in ordered:
        yield _candidate(base, step)
    for base, step in ordered:
        for key in sorted(step.prose_keys if step is not None else ()):
            yield _candidate(f"{base}.{key}", step)


def _question_candidates(traces: Sequence[Trace], steps: list[_Step], sections: bool) -> Iterator[Candidate]:
    """Where `question_of` finds the question in the root input, then in GENERATION inputs (first
    first); a `Question:` section of a prompt before the prompt's whole user message."""
    roots = [s for s in steps if s.is_root]
    generations = sorted((s for s in steps if s.type == "GENERATION" and not s.is_root), key=lambda s: s.first_start)
    bases: list[tuple[str, _Step | None]] = [("input", roots[0] if len(roots) == 1 else None)]
    bases += [(f"{s.name}.input", s) for s in generations]
    for base, step in bases:
        group: list[Candidate] = []
        if sections:
            for header in _headers(traces, base, lambda _body, header: bool(_QUESTION_HEADER.search(header))):
                group.append(_candidate(base, step, header))
        wheres: Counter[str] = Counter()
        for trace in traces:
            found = question_of(get_path(trace, base))
            if found is not None and found.text:
                wheres[f"{base}.{found.where}" if found.where else base] += 1
        group += [_candidate(path, step) for path, _ in wheres.most_common()]
        for candidate in group:
            yield Candidate(candidate.spec, candidate.origin, within=base)


def _document_candidates(traces: Sequence[Trace], steps: list[_Step], sections: bool) -> Iterator[Candidate]:
    """RETRIEVER outputs, then steps named like retrieval, then numbered context in a prompt."""
    retrievers = [s for s in steps if s.type == "RETRIEVER"]
    named = [
        s for s in steps if s.type not in ("RETRIEVER", "GENERATION") and not s.is_root and names_retrieval(s.name)
    ]
    for step in [*retrievers, *named]:
        yield _candidate(f"{step.name}.output", step)
    if len(retrievers) > 1:
        yield Candidate(FieldSpec(path="type:RETRIEVER.output"), "the last RETRIEVER's output")
    if sections:
        generations = sorted((s for s in steps if s.type == "GENERATION"), key=lambda s: s.last_end, reverse=True)
        for step in generations:
            base = f"{step.name}.input"
            for header in _headers(traces, base, _numbers_documents):
                yield _candidate(base, step, header)


def _numbers_documents(section: str, _header: str) -> bool:
    return any(d.number is not None for d in documents_of(section))


def _headers(traces: Sequence[Trace], base: str, wanted: Callable[[str, str], bool]) -> list[str]:
    """Headers of prompt sections (`Question:`, `CONTEXT DATA:`) at `base` whose body `wanted` accepts."""
    from shared.monitoring.extraction.paths import section_text

    seen: Counter[str] = Counter()
    for trace in traces[:20]:
        text = prompt_text(get_path(trace, base))
        for header in dict.fromkeys(m.group(1).strip() for m in _HEADER.finditer(text)):
            body = section_text(text, header)
            if body and wanted(body, header):
                seen[header] += 1
    return [header for header, _ in seen.most_common(3)]
