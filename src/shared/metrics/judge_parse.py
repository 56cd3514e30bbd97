"""Strict parsing of a judge's JSON answer, with repair of the faults models commonly make.

Judges are asked for one JSON object. Models still wrap it in Markdown code fences, add a
sentence before or after it, or leave a trailing comma. Those faults are repaired; anything else
(no object at all, a score of the wrong type, a value outside the rubric's scale) is a
`JudgeParseError`, which the metric turns into an error row carrying the raw text. A score is
never guessed. The error says what was expected (`expected_shape`) and how the answer began
(`answer_preview`), so a rubric that asks for one shape while the metric reads another shows up
in the first error row.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import jsonschema

_FENCE = re.compile(r"```[A-Za-z0-9_-]*\s*\n?(.*?)```", re.DOTALL)
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")


class JudgeParseError(ValueError):
    """The judge's answer is not the JSON object the rubric asked for."""


def repair_json_text(text: str) -> str:
    """Cut the JSON object out of a judge answer: code fences, surrounding prose, trailing commas."""
    candidate = text.strip()
    fenced = _FENCE.search(candidate)
    if fenced:
        candidate = fenced.group(1).strip()
    start = candidate.find("{")
    end = candidate.rfind("}")
    if start != -1 and end > start:
        candidate = candidate[start : end + 1]
    return _strip_trailing_commas(candidate)


def _strip_trailing_commas(text: str) -> str:
    """Remove commas before a closing bracket, outside string literals."""
    out: list[str] = []
    in_string = False
    escaped = False
    for index, char in enumerate(text):
        if in_string:
            out.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char == ",":
            rest = text[index + 1 :].lstrip()
            if rest[:1] in ("}", "]"):
                continue
        out.append(char)
    return "".join(out)


def parse_judge_json(text: str | None, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """The judge's JSON object, repaired if needed and validated against `schema`.

    Raises JudgeParseError naming what is wrong; the caller keeps the raw text for the error row.
    """
    if text is None or not text.strip():
        raise JudgeParseError("the judge returned an empty answer")
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        repaired = repair_json_text(text)
        try:
            value = json.loads(repaired)
        except json.JSONDecodeError as exc:
            raise JudgeParseError(f"the judge's answer is not JSON ({exc.msg} at char {exc.pos})") from None
    if not isinstance(value, dict):
        raise JudgeParseError(f"the judge's answer is JSON but not an object ({type(value).__name__})")
    if schema:
        try:
            compiled_validator(json.dumps(schema, sort_keys=True)).validate(value)
        except jsonschema.ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "(root)"
            raise JudgeParseError(
                f"the judge's answer does not match the output schema at {where}: {exc.message}"
            ) from None
    return value


@lru_cache(maxsize=64)
def compiled_validator(schema_json: str) -> Any:
    """A checked, compiled validator per schema: `jsonschema.validate` re-checks the schema on every
    call, which costs more than the rest of a judge call's client-side work together."""
    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def read_score(value: Any, *, field: str) -> float:
    """A finite number from a judge field; numeric strings ("4", "4.5") are accepted, booleans are not."""
    if isinstance(value, bool) or value is None:
        raise JudgeParseError(f"'{field}' is {value!r}, not a number")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise JudgeParseError(f"'{field}' is {value!r}, not a number") from None
    else:
        raise JudgeParseError(f"'{field}' is {type(value).__name__}, not a number")
    if not math.isfinite(number):
        raise JudgeParseError(f"'{field}' is not finite ({value!r})")
    return number


def normalise_score(raw: float, low: float, high: float) -> float:
    """Map a score on the rubric's scale [low, high] to [0, 1]; outside the scale is an error."""
    if high <= low:
        raise ValueError(f"bad score scale {low}..{high}")
    if raw < low or raw > high:
        raise JudgeParseError(f"score {raw:g} is outside the rubric's scale {low:g}..{high:g}")
    return round((raw - low) / (high - low), 6)


PREVIEW_CHARS = 160


def answer_preview(text: str | None, limit: int = PREVIEW_CHARS) -> str:
    """The start of a judge answer on one line (whitespace collapsed), cut at `limit` characters."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[:limit].rstrip() + "..."


def expected_shape(schema: Mapping[str, Any] | None) -> str:
    """A compact example of what a JSON schema accepts: `{"claims": ["<string>", ...]}`."""
    if not schema:
        return "a JSON object"
    if "enum" in schema:
        return "|".join(json.dumps(value) for value in schema["enum"])
    declared = schema.get("type")
    types = declared if isinstance(declared, list) else [declared] if declared else []
    shapes = [_shape_of_type(str(t), schema) for t in types] or ["<any>"]
    return "|".join(shapes)


def _shape_of_type(kind: str, schema: Mapping[str, Any]) -> str:
    if kind == "object":
        properties = schema.get("properties") or {}
        if not properties:
            return "{...}"
        return "{" + ", ".join(f"{json.dumps(name)}: {expected_shape(sub)}" for name, sub in properties.items()) + "}"
    if kind == "array":
        return f"[{expected_shape(schema.get('items') or {})}, ...]"
    simple = {"boolean": "true|false", "string": '"<string>"', "null": "null"}
    return simple.get(kind, f"<{kind}>")


def describe_failure(error: str, expected: str, answer: str | None) -> str:
    """A parse failure as an error row says it: what is wrong, what was expected, what came back."""
    shown = answer_preview(answer)
    came_back = f"; the answer began: {shown}" if shown else ""
    return f"{error}; expected {expected}{came_back}"
