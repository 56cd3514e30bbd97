"""Explicit field paths (`extractor_fields`): where in a trace a DatasetItem field comes from.

A path is dotted: `output`, `metadata.expected_output`, `recommendation.generation.output`. A
part may name

- a step (the observations sharing a name, tolerant of case and `-`/`_`): `recommendation.output`;
- every observation of a type: `type:RETRIEVER.output` (the last one's output; `.0.output` the first);
- a key inside JSON text: `recommendation.output.rationale` where the output is a JSON string;
- a list index: `input.messages.-1.content`.

A spec may also cut a section out of a rendered prompt: `{path: recommendation.input, section:
"CONTEXT DATA"}` takes the lines under the `CONTEXT DATA:` header up to the next header (or up to
one of `until`); for `retrieved_content` its numbered items become the documents.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.langfuse.prompt_patterns import create_extraction_pattern
from shared.traces import Observation, Record, Step, Trace, normalise_key, parse_jsonish, prompt_text

TYPE_PREFIX = "type:"


class FieldSpec(BaseModel):
    """One `extractor_fields` entry written as a mapping (a plain string is just its `path`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(min_length=1, description="dotted path into the trace or row")
    section: str | None = Field(default=None, description="prompt section header, e.g. 'CONTEXT DATA'")
    until: tuple[str, ...] = Field(default=(), description="headers that end the section (default: any header)")

    def describe(self) -> str:
        return f"{self.path} [section {self.section!r}]" if self.section else self.path


def as_spec(value: str | FieldSpec | Mapping[str, Any]) -> FieldSpec:
    if isinstance(value, FieldSpec):
        return value
    if isinstance(value, str):
        return FieldSpec(path=value)
    return FieldSpec.model_validate(value)


def get_path(record: Any, path: str) -> Any:
    """Follow a dotted path through traces, steps, observations, mappings, lists and JSON text;
    None if absent."""
    value = record
    for part in path.split("."):
        if value is None:
            return None
        if isinstance(value, str):  # a key inside JSON text
            value = parse_jsonish(value)
            if not isinstance(value, Mapping | list):
                return None
        if isinstance(value, Trace) and part.lower().startswith(TYPE_PREFIX):
            wanted = part[len(TYPE_PREFIX) :].upper()
            value = Step(f"{TYPE_PREFIX}{wanted}", value.of_type(wanted), value.patterns)
        elif isinstance(value, Step) and _is_index(part):
            value = _index(value.observations, part)
        elif isinstance(value, list | tuple):
            value = _index(value, part)
        elif isinstance(value, Trace | Step | Observation | Record):
            value = getattr(value, part)
        elif isinstance(value, Mapping):
            value = tolerant_get(value, part)
        else:
            value = getattr(value, part, None)
    return value


def _is_index(part: str) -> bool:
    return part.lstrip("-").isdigit()


def _index(values: Any, part: str) -> Any:
    if not _is_index(part):
        return None
    position = int(part)
    return values[position] if -len(values) <= position < len(values) else None


def tolerant_get(mapping: Mapping[str, Any], key: str) -> Any:
    if key in mapping:
        return mapping[key]
    wanted = normalise_key(key)
    return next((v for k, v in mapping.items() if normalise_key(str(k)) == wanted), None)


def resolve_spec(record: Any, spec: FieldSpec) -> Any:
    """The value a spec names: the path's value, or the text of its prompt section."""
    value = get_path(record, spec.path)
    if spec.section is None or value is None:
        return value
    return section_text(prompt_text(value), spec.section, spec.until)


# A line that starts another section: a markdown heading, an ALL-CAPS `HEADER:`, or `Header:` alone.
_NEXT_HEADER = re.compile(
    r"^[ \t]*(?:#{1,6}[ \t]+\S|(?:\*\*)?[A-Z][A-Z0-9 _/&()-]{1,60}(?:\*\*)?:|(?:\*\*)?[A-Z][\w ()/-]{0,40}(?:\*\*)?:[ \t]*$)"
)
# After a blank line, `Question: ...` also starts a section.
_LABEL_AFTER_BLANK = re.compile(r"^[ \t]*(?:\*\*)?[A-Z][\w ]{0,30}(?:\*\*)?:")


def section_text(text: str, header: str, until: tuple[str, ...] = ()) -> str | None:
    """The body under `header` in a rendered prompt (None when the prompt has no such section)."""
    if not text:
        return None
    match = create_extraction_pattern(header, until).search(text)
    if match is None:
        return None
    body = match.group("value")
    if not until:
        body = _cut_at_next_header(body)
    return body.strip() or None


def _cut_at_next_header(body: str) -> str:
    lines = body.split("\n")
    after_blank = False
    for index, line in enumerate(lines):
        if (
            index > 0
            and not line.lstrip().startswith("[")
            and (_NEXT_HEADER.match(line) or (after_blank and _LABEL_AFTER_BLANK.match(line)))
        ):
            return "\n".join(lines[:index])
        after_blank = not line.strip()
    return body
