"""Format and content checks on one text field: json_valid, regex_match, contains."""

from __future__ import annotations

import json
import re
from typing import Any, Literal, NoReturn

import jsonschema
from jsonschema.exceptions import best_match
from pydantic import Field, field_validator

from shared.evaluation.item import DatasetItem
from shared.evaluation.metric import MetricResult, metric
from shared.metrics._base import FieldMetric, FieldParams
from shared.metrics._text import clip
from shared.patterns import Regex, compile_pattern

_FENCE_RE = re.compile(r"^\s*```[\w-]*[ \t]*\r?\n(.*?)\r?\n?```\s*$", re.S)


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not valid JSON")


@metric(
    key="json_valid",
    description="1.0 when the field parses as JSON (and matches params.json_schema when given), else 0.0.",
    required_fields=(),
    default_threshold=1.0,
    score_range=(0.0, 1.0),
    kind="heuristic",
    score_type="boolean",
    direction="higher_is_better",
)
class JsonValid(FieldMetric):
    """Score 1.0 when `params.field` is strict JSON (RFC 8259: no NaN/Infinity) and, when
    `params.json_schema` is set, validates against that JSON Schema (any draft jsonschema knows,
    chosen by `$schema`); else 0.0. Passes at 1.0.

    `allow_code_fence: true` accepts a Markdown ```json fence around the document. The schema
    is checked when the config loads, so a broken schema is a config error, not a run of 0s.
    `signals.stage` says what failed (`parse` or `schema`) and `signals.path` where.
    """

    class Params(FieldParams):
        json_schema: dict[str, Any] | None = None
        allow_code_fence: bool = False

        @field_validator("json_schema")
        @classmethod
        def _check_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
            if value is not None:
                validator_cls = jsonschema.validators.validator_for(value)
                try:
                    validator_cls.check_schema(value)
                except jsonschema.SchemaError as exc:
                    raise ValueError(f"invalid JSON schema: {exc.message}") from None
            return value

    params: Params

    def prepare(self) -> None:
        schema = self.params.json_schema
        self._validator = jsonschema.validators.validator_for(schema)(schema) if schema is not None else None

    async def execute(self, item: DatasetItem) -> MetricResult:
        text = self.text(item)
        if self.params.allow_code_fence:
            fenced = _FENCE_RE.match(text)
            if fenced:
                text = fenced.group(1)
        try:
            document = json.loads(text, parse_constant=_reject_constant)
        except RecursionError:
            return self.result(0.0, "not JSON: nested too deeply to parse", signals={"stage": "parse"})
        except ValueError as exc:  # JSONDecodeError is a ValueError
            pos = getattr(exc, "pos", None)
            why = getattr(exc, "msg", str(exc))
            return self.result(0.0, f"not JSON: {clip(why)}", signals={"stage": "parse", "position": pos})
        if self._validator is None:
            return self.result(
                1.0, f"valid JSON ({type(document).__name__})", signals={"type": type(document).__name__}
            )
        try:
            error = best_match(self._validator.iter_errors(document))
        except RecursionError:
            return self.result(0.0, "schema check failed: document nested too deeply", signals={"stage": "schema"})
        if error is not None:
            path = "/" + "/".join(str(p) for p in error.absolute_path)
            return self.result(
                0.0, f"schema violation at {path}: {clip(error.message)}", signals={"stage": "schema", "path": path}
            )
        return self.result(1.0, "valid JSON matching the schema", signals={"type": type(document).__name__})


@metric(
    key="regex_match",
    description="1.0 when the field matches params.pattern (mode must_match) or does not (must_not_match).",
    required_fields=(),
    default_threshold=1.0,
    score_range=(0.0, 1.0),
    kind="heuristic",
    score_type="boolean",
    direction="higher_is_better",
)
class RegexMatch(FieldMetric):
    """Score 1.0 when the rule holds, else 0.0; passes at 1.0.

    `mode: must_match` holds when `params.pattern` is found (`re.search`, or `re.fullmatch`
    with `full_match: true`); `must_not_match` holds when it is not found. Python `re` syntax;
    the pattern compiles when the config loads. `signals.span` gives the first match position
    (never the matched text, which may be sensitive). Keep patterns free of catastrophic
    backtracking: a regex runs synchronously and cannot be interrupted by the call timeout.
    """

    class Params(FieldParams):
        pattern: Regex = Field(min_length=1)
        mode: Literal["must_match", "must_not_match"] = "must_match"
        ignore_case: bool = False
        multiline: bool = False
        dotall: bool = False
        full_match: bool = False

        def flags(self) -> int:
            return (
                (re.IGNORECASE if self.ignore_case else 0)
                | (re.MULTILINE if self.multiline else 0)
                | (re.DOTALL if self.dotall else 0)
            )

    params: Params

    def prepare(self) -> None:
        self._regex = compile_pattern(self.params.pattern, flags=self.params.flags())

    async def execute(self, item: DatasetItem) -> MetricResult:
        text = self.text(item)
        found = self._regex.fullmatch(text) if self.params.full_match else self._regex.search(text)
        matched = found is not None
        holds = matched if self.params.mode == "must_match" else not matched
        signals: dict[str, Any] = {"matched": matched}
        if found is not None:
            signals["span"] = [found.start(), found.end()]
        verb = "matches" if matched else "does not match"
        return self.result(
            1.0 if holds else 0.0, f"{self.params.field} {verb} the pattern ({self.params.mode})", signals=signals
        )


@metric(
    key="contains",
    description="1.0 when the field contains any / all / none of params.keywords, else 0.0.",
    required_fields=(),
    default_threshold=1.0,
    score_range=(0.0, 1.0),
    kind="heuristic",
    score_type="boolean",
    direction="higher_is_better",
)
class Contains(FieldMetric):
    """Score 1.0 when the keyword rule holds, else 0.0; passes at 1.0.

    `mode: any` needs at least one keyword, `all` needs every keyword, `none` needs no keyword
    (forbidden words). Matching is case-insensitive (Unicode casefold) unless
    `case_sensitive: true`; `whole_word: true` requires word boundaries around a keyword.
    `signals.found` / `signals.missing` list the keywords, and `signals.fraction_found` the share.
    """

    class Params(FieldParams):
        keywords: tuple[str, ...] = Field(min_length=1)
        mode: Literal["any", "all", "none"] = "any"
        case_sensitive: bool = False
        whole_word: bool = False

        @field_validator("keywords")
        @classmethod
        def _non_blank(cls, value: tuple[str, ...]) -> tuple[str, ...]:
            if any(not k.strip() for k in value):
                raise ValueError("keywords must not be blank")
            return value

    params: Params

    def prepare(self) -> None:
        p = self.params
        flags = 0 if p.case_sensitive else re.IGNORECASE
        self._word_res = (
            [re.compile(rf"(?<!\w){re.escape(k)}(?!\w)", flags) for k in p.keywords] if p.whole_word else []
        )
        self._needles = [k if p.case_sensitive else k.casefold() for k in p.keywords]

    def _found(self, text: str) -> list[bool]:
        if self._word_res:
            return [r.search(text) is not None for r in self._word_res]
        haystack = text if self.params.case_sensitive else text.casefold()
        return [needle in haystack for needle in self._needles]

    async def execute(self, item: DatasetItem) -> MetricResult:
        p = self.params
        hits = self._found(self.text(item))
        found = [k for k, hit in zip(p.keywords, hits, strict=True) if hit]
        missing = [k for k, hit in zip(p.keywords, hits, strict=True) if not hit]
        if p.mode == "any":
            holds = bool(found)
        elif p.mode == "all":
            holds = not missing
        else:
            holds = not found
        return self.result(
            1.0 if holds else 0.0,
            f"{len(found)}/{len(p.keywords)} keywords found (mode {p.mode})",
            signals={"found": found, "missing": missing, "fraction_found": len(found) / len(p.keywords)},
        )
