"""athena's extractor: one underwriting trace -> the DatasetItem of its recommendation.

What a metric sees (DatasetItem field <- where it comes from):

    id, trace_id       trace id (the monitor swaps in observation_id for observation-level runs)
    observation_id     the `recommendation` GENERATION (or the observation the source targeted)
    query              CASE ASSESSMENT of the recommendation prompt (else the root input's case)
    actual_output      the rationale when the output is a JSON object with one, else the raw
                       output text (so a truncated answer is still checked for PII, citations, ...)
    retrieved_content  the CONTEXT DATA items `[1]..[k]` as strings `(id) text`, in order, so a
                       citation `[n]` is the 1-based index into this list (falls back to the
                       `rule-lookup` SPAN's items when the prompt was not logged)
    additional_input   underwriting_flags (list), case_id, retrieved_ids, location
    additional_output  decision (lower-cased, as given), refer_reason (from `refer_reason` or
                       `referral_reason`), confidence, output_format
                       (json | malformed_json | text | empty | other), parsed_output
    latency            end-to-end seconds of the root span (else the generation's)
    session_id, source_timestamp, metadata (model, prompt, environment, release, tags, cost)

Traces without a usable id or without a recommendation step raise InvalidRecordError (counted by
the monitor, never fatal). Nothing here trusts the shape of a field: nulls, non-JSON output and
megabyte strings all come out as an item.

What it reads (`NEEDS`): the root and the three steps above, by the names athena writes (Langfuse
matches names exactly, unlike `trace.step`), and the field groups of the fields used (not `time` or
`metadata`), so a Langfuse run reads only those and a sampled run reads light roots first, then
whole only the traces it chose.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from implementations.athena.langfuse.prompt_patterns import PATTERNS, parse_context_items, parse_flags
from shared.errors import InvalidRecordError
from shared.evaluation.item import DatasetItem
from shared.monitoring.needs import ExtractorNeeds, declare_needs
from shared.traces import Observation, Trace, prompt_text

RECOMMENDATION_STEP = "recommendation"
LOOKUP_STEP = "rule-lookup"
LOCATION_STEP = "location-extraction"

# What extract_recommendation reads, by Langfuse v2 field group: ids, times and types (core); names,
# level, session, user and environment (basic); prompts and outputs (io); the model (model), cost
# (usage), prompt name and version (prompt), latency (metrics); tags, release, trace name (trace_context).
NEEDS = ExtractorNeeds(
    observation_names=frozenset({RECOMMENDATION_STEP, LOOKUP_STEP, LOCATION_STEP}),
    field_groups=frozenset({"core", "basic", "io", "model", "usage", "prompt", "metrics", "trace_context"}),
)

_SALVAGE_DECISION = re.compile(r'"decision"\s*:\s*"([^"\\]{0,40})"')
# Writers disagree on the key's name; both mean the same thing.
REFER_REASON_KEYS = ("refer_reason", "referral_reason")
_SALVAGE_REFER = re.compile(r'"(?:refer_reason|referral_reason)"\s*:\s*"((?:[^"\\]|\\.)*)')


@declare_needs(NEEDS)
def extract_recommendation(record: Any) -> DatasetItem:
    """The DatasetItem of a trace's recommendation (see the module docstring for the mapping)."""
    trace = as_trace(record)
    trace_id = (trace.id or "").strip()
    if not trace_id:
        raise InvalidRecordError("trace has no id")
    generation = recommendation_observation(trace)
    if generation is None:
        raise InvalidRecordError(f"trace {trace_id}: no '{RECOMMENDATION_STEP}' observation")

    variables = prompt_variables(trace, generation)
    context = parse_context_items(variables.get("context_data"))
    retrieved_ids: list[str | None] = [c.id for c in context]
    retrieved = [c.as_text() for c in context]
    if not context:
        retrieved, retrieved_ids = _lookup_items(trace)
    answer = parse_answer(generation.output)

    root = trace.root
    query = variables.get("case_assessment") or _root_case(trace.get("input"))
    location = _step_output(trace, LOCATION_STEP)
    latency = (root.latency_s if root else None) or generation.latency_s
    return DatasetItem(
        id=trace_id,
        trace_id=trace_id,
        observation_id=generation.id,
        session_id=_text_or_none(trace.get("sessionId")),
        query=query,
        actual_output=answer.text,
        retrieved_content=retrieved or None,
        additional_input={
            "underwriting_flags": parse_flags(variables.get("underwriting_flags")),
            "case_id": _case_id(trace.get("input")),
            "retrieved_ids": [i for i in retrieved_ids if i],
            "location": location if isinstance(location, dict) else None,
        },
        additional_output={
            "decision": answer.decision,
            "refer_reason": answer.refer_reason,
            "confidence": answer.confidence,
            "output_format": answer.output_format,
            "parsed_output": answer.parsed,
        },
        latency=latency if latency is not None and latency >= 0 else None,
        source_timestamp=trace.timestamp or generation.start_time,
        metadata=_metadata(trace, generation),
    )


# -- pieces (public: notebooks and tests use them) ---------------------------------------------


def as_trace(record: Any) -> Trace:
    """A Trace from what a source yields: a Trace, a v3 trace dict, or a list of v2 rows."""
    if isinstance(record, Trace):
        return record
    if isinstance(record, Mapping):
        if "observations" in record or "traceId" not in record:
            return Trace.from_v3(record)
        return Trace.from_observations([record])
    if isinstance(record, Sequence) and not isinstance(record, str | bytes) and record:
        rows = [r for r in record if isinstance(r, Mapping)]
        if rows:
            return Trace.from_observations(rows)
    raise InvalidRecordError(f"not a trace: {type(record).__name__}")


def recommendation_observation(trace: Trace) -> Observation | None:
    """The observation to score: the one the source targeted, else the recommendation GENERATION."""
    target = getattr(trace, "target", None)
    if isinstance(target, Observation):
        return target
    step = trace.step(RECOMMENDATION_STEP)
    if step is None:
        return None
    return step.generation or step.last


def prompt_variables(trace: Trace, generation: Observation) -> dict[str, str]:
    """CASE ASSESSMENT / CONTEXT DATA / UNDERWRITING FLAGS of the recommendation prompt."""
    if trace.patterns is not None:
        step = trace.step(RECOMMENDATION_STEP)
        found = step.variables if step is not None else {}
        if found:
            return found
    return PATTERNS.extract(RECOMMENDATION_STEP, prompt_text(generation.input))


class Answer:
    """The model's answer, whatever shape it came in."""

    def __init__(
        self,
        *,
        text: str | None,
        output_format: str,
        parsed: dict[str, Any] | None = None,
        decision: str | None = None,
        refer_reason: str | None = None,
        confidence: float | None = None,
    ) -> None:
        self.text = text
        self.output_format = output_format
        self.parsed = parsed
        self.decision = decision
        self.refer_reason = refer_reason
        self.confidence = confidence


def parse_answer(output: Any) -> Answer:
    """Decision, rationale and refer reason of the recommendation output.

    The output arrives parsed when it was JSON (`Observation` parses raw strings). A chat message
    (`{"role": ..., "content": "..."}`) is unwrapped. Truncated JSON is salvaged with regexes so a
    half answer still shows its decision; its text stays the raw output.
    """
    if isinstance(output, str) and output.lstrip().startswith(("{", "[")):
        output = _maybe_json(output)  # a raw string that no one parsed yet
    if isinstance(output, Mapping) and "decision" not in output and isinstance(output.get("content"), str):
        output = _maybe_json(output["content"])
    if output is None or (isinstance(output, str) and not output.strip()):
        return Answer(text=output if isinstance(output, str) else None, output_format="empty")
    if isinstance(output, Mapping):
        parsed = dict(output)
        rationale = parsed.get("rationale")
        text = rationale if isinstance(rationale, str) else _dump(parsed)
        return Answer(
            text=text,
            output_format="json",
            parsed=parsed,
            decision=_decision(parsed.get("decision")),
            refer_reason=_refer_reason(parsed),
            confidence=_number(parsed.get("confidence")),
        )
    if isinstance(output, str):
        stripped = output.lstrip()
        if stripped.startswith(("{", "[")):
            decision = _SALVAGE_DECISION.search(output)
            refer = _SALVAGE_REFER.search(output)
            return Answer(
                text=output,
                output_format="malformed_json",
                decision=_decision(decision.group(1)) if decision else None,
                refer_reason=_text_or_none(_unescape(refer.group(1))) if refer else None,
            )
        return Answer(text=output, output_format="text")
    return Answer(text=_dump(output), output_format="other")


def _refer_reason(parsed: Mapping[str, Any]) -> str | None:
    """The first non-blank of `refer_reason` / `referral_reason`."""
    return next((r for r in (_text_or_none(parsed.get(k)) for k in REFER_REASON_KEYS) if r), None)


def _maybe_json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _unescape(fragment: str) -> str:
    try:
        return str(json.loads(f'"{fragment}"'))
    except ValueError:
        return fragment


def _decision(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip().lower()
    return text or None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _text_or_none(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text if text.strip() else None


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _root_case(root_input: Any) -> str | None:
    if isinstance(root_input, Mapping):
        parts = [root_input.get("question"), root_input.get("case")]
        text = "\n".join(p for p in parts if isinstance(p, str) and p.strip())
        return text or None
    return _text_or_none(root_input)


def _case_id(root_input: Any) -> str | None:
    return _text_or_none(root_input.get("case_id")) if isinstance(root_input, Mapping) else None


def _step_output(trace: Trace, name: str) -> Any:
    step = trace.step(name)
    return step.output if step is not None else None


def _lookup_items(trace: Trace) -> tuple[list[str], list[str | None]]:
    """Retrieved items from the rule-lookup SPAN (used when the prompt was not logged)."""
    output = _step_output(trace, LOOKUP_STEP)
    items = output.get("items") if isinstance(output, Mapping) else output
    if not isinstance(items, list):
        return [], []
    texts: list[str] = []
    ids: list[str | None] = []
    for item in items:
        if isinstance(item, Mapping):
            item_id = _text_or_none(item.get("id"))
            text = str(item.get("text") or "")
            texts.append(f"({item_id}) {text}" if item_id else text)
            ids.append(item_id)
        elif item is not None:
            texts.append(str(item))
            ids.append(None)
    return texts, ids


def _metadata(trace: Trace, generation: Observation) -> dict[str, Any]:
    tags = trace.get("tags")
    return {
        "trace_name": trace.name,
        "environment": trace.get("environment"),
        "user_id": trace.get("userId"),
        "release": trace.get("release"),
        "tags": [str(t) for t in tags] if isinstance(tags, list) else [],
        "model": generation.get("providedModelName"),
        "prompt_name": generation.get("promptName"),
        "prompt_version": generation.get("promptVersion"),
        "generation_latency_s": generation.latency_s,
        "total_cost_usd": generation.get("totalCost"),
        "level": generation.get("level"),
    }
