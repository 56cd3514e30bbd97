"""The default extractor's rules: answer, question and retrieved documents of any traced app.

actual_output   the root observation's output when it carries text (a string, a chat message, a
                dict with an answer key); else the output of the last GENERATION by end time
                (GENERATIONs inside a GUARDRAIL or EVALUATOR are checks, not answers).
                `{"output": null}` and blank strings are empty.
query           the root input's text (a string, `question`/`query`/`input`, the last user
                message), else the last user message of the first GENERATION; when that message
                is a prompt with numbered context, its `Question:` section.
retrieved       the outputs of RETRIEVER observations; else of TOOL/SPAN/CHAIN observations whose
                name says retrieve/search/context/kb/docs/lookup; else the numbered `[n]` context
                in the answering GENERATION's prompt. Each document keeps its own number.

Only observations are read (never v3 trace-level input/output when a root observation exists),
so a trace gives the same item from a file and from the Langfuse API. Where each field came from
is recorded only when asked (`origins`), for `evalmon inspect`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from shared.monitoring.extraction.documents import Doc, documents_of, numbered, numbered_items
from shared.monitoring.extraction.paths import section_text
from shared.monitoring.extraction.text import Found, answer_of, as_text, question_of
from shared.traces import Observation, Trace, prompt_text

RETRIEVAL_NAME_STEMS = ("retriev", "search", "context", "kb", "doc", "lookup", "knowledge")
RETRIEVAL_TYPES = ("TOOL", "SPAN", "CHAIN")
NOT_ANSWERING_PARENTS = {"GUARDRAIL", "EVALUATOR"}
_QUESTION_HEADERS = ("Question", "Query", "User question", "User query", "Input")


@dataclass
class Reading:
    """What the default rules found in one trace (texts, documents, and origins when asked)."""

    query: str | None = None
    actual_output: str | None = None
    retrieved: list[str] | None = None
    numbers: list[int] | None = None
    origins: dict[str, str] | None = field(default=None)

    def note(self, name: str, where: str) -> None:
        if self.origins is not None and where:
            self.origins[name] = where


def describe(observation: Observation) -> str:
    """`GENERATION 'llm-answer' (obs 1a2b3c4d)`: how inspect names an observation."""
    short = (observation.id or "?")[:8]
    return f"{observation.type or 'OBSERVATION'} {observation.name!r} (obs {short})"


def read_trace(trace: Trace, *, want_origins: bool = False) -> Reading:
    """Apply the default rules to one trace (an observation-level read answers from its target)."""
    reading = Reading(origins={} if want_origins else None)
    target = trace.target
    if target is not None:
        answering = target if target.type == "GENERATION" else last_generation(trace)
        reading.actual_output = _answer_text(target.output, answer_of(target.output))
        reading.note("actual_output", f"{describe(target)}.output")
        found = question_of(target.input)
        reading.query = _question(found)
        if found is not None:
            reading.note("query", _at(f"{describe(target)}.input", found))
    else:
        answering = _read_answer(trace, reading)
        _read_query(trace, reading)
    _read_documents(trace, answering, reading)
    return reading


# -- the answer ----------------------------------------------------------------------------
def _read_answer(trace: Trace, reading: Reading) -> Observation | None:
    """Fill actual_output; return the GENERATION that answered (for the prompt's context)."""
    root = trace.root
    value = root.output if root is not None else (None if trace.observations else trace.get("output"))
    where = f"root {describe(root)}.output" if root is not None else "trace.output"
    found = answer_of(value)
    generation = last_generation(trace)
    if found is not None:
        reading.actual_output = found.text
        reading.note("actual_output", _at(where, found))
        return root if root is not None and root.type == "GENERATION" else generation
    if generation is not None:
        reading.actual_output = _answer_text(generation.output, answer_of(generation.output))
        reading.note("actual_output", f"{describe(generation)}.output (last GENERATION)")
        return generation
    if value is not None:  # no text anywhere: the raw output, so a status object shows as one
        reading.actual_output = as_text(value)
        reading.note("actual_output", f"{where} (no text found; raw JSON)")
    return None


def _answer_text(value: Any, found: Found | None) -> str | None:
    if found is not None:
        return found.text
    text = as_text(value)
    return text if text and text.strip() else None


def last_generation(trace: Trace) -> Observation | None:
    """The GENERATION that ended last, leaving out those inside guardrails and evaluators."""
    best: Observation | None = None
    best_key: Any = None
    for position, obs in enumerate(trace.observations):
        if obs.type != "GENERATION":
            continue
        if any(a.type in NOT_ANSWERING_PARENTS for a in trace.ancestors(obs)):
            continue
        end = obs.end_time or obs.start_time
        key = (end is not None, end, position)
        if best_key is None or key >= best_key:
            best, best_key = obs, key
    return best


# -- the question --------------------------------------------------------------------------
def _read_query(trace: Trace, reading: Reading) -> None:
    root = trace.root
    value = root.input if root is not None else (None if trace.observations else trace.get("input"))
    found = question_of(value)
    where = f"root {describe(root)}.input" if root is not None else "trace.input"
    if found is None or not found.text:
        first = next((o for o in trace.observations if o.type == "GENERATION"), None)
        if first is None:
            return
        found = question_of(first.input)
        where = f"{describe(first)}.input (first GENERATION)"
        if found is None or not found.text:
            return
    reading.query = _question(found)
    reading.note("query", _at(where, found) + (" [Question section]" if reading.query != found.text else ""))


def _question(found: Found | None) -> str | None:
    """The question itself when the text is a prompt with numbered context and a question section."""
    if found is None or not found.text:
        return None
    text = found.text
    if not numbered_items(text):
        return text
    for header in _QUESTION_HEADERS:
        section = section_text(text, header)
        if section:
            return section
    return text


def _at(where: str, found: Found) -> str:
    return f"{where}.{found.where}" if found.where else where


# -- the documents -------------------------------------------------------------------------
def _read_documents(trace: Trace, answering: Observation | None, reading: Reading) -> None:
    answer_ids = {answering.id} if answering is not None else set()
    root = trace.root
    retrievers = trace.of_type("RETRIEVER")
    named = [
        o
        for o in trace.observations
        if o.type in RETRIEVAL_TYPES and o is not root and o.id not in answer_ids and names_retrieval(o.name)
    ]
    for candidates in (retrievers, named):
        taken = _outermost_with_documents(trace, candidates)
        if taken:
            docs = [doc for _, found in taken for doc in found]
            _set_documents(reading, docs, _describe_all(o for o, _ in taken))
            return
    if answering is not None:
        docs = numbered_items(prompt_text(answering.input))
        if docs:
            _set_documents(reading, docs, f"prompt of {describe(answering)} [numbered context]")


def names_retrieval(name: str) -> bool:
    """`retrieve`, `vector_search`, `getContext`, `kb-query`, `fetch_docs`, `rule-lookup`, ..."""
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name).lower()
    return any(token.startswith(RETRIEVAL_NAME_STEMS) for token in re.split(r"[^a-z0-9]+", words) if token)


def _outermost_with_documents(trace: Trace, candidates: list[Observation]) -> list[tuple[Observation, list[Doc]]]:
    """Candidates holding documents, leaving out those inside an already taken one (a wrapper span
    and the retriever call it wraps return the same documents)."""
    taken: list[tuple[Observation, list[Doc]]] = []
    taken_ids: set[str | None] = set()
    for obs in candidates:
        if taken_ids and any(a.id in taken_ids for a in trace.ancestors(obs)):
            continue
        docs = documents_of(obs.output)
        if any(d.text.strip() for d in docs):
            taken.append((obs, docs))
            taken_ids.add(obs.id)
    return taken


def _set_documents(reading: Reading, docs: list[Doc], where: str) -> None:
    texts, numbers = numbered(docs)
    if not texts:
        return
    reading.retrieved = texts
    reading.numbers = numbers
    reading.note("retrieved_content", where)


def _describe_all(observations: Iterable[Observation]) -> str:
    listed = [f"{describe(o)}.output" for o in observations]
    return listed[0] if len(listed) == 1 else f"{listed[0]} (+{len(listed) - 1} more)"
