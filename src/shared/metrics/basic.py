"""Basic heuristics: latency, length_constraint, non_empty."""

from __future__ import annotations

import math

from pydantic import Field, model_validator

from shared.errors import MetricError
from shared.evaluation.item import DatasetItem
from shared.evaluation.metric import BaseMetric, MetricParams, MetricResult, metric
from shared.metrics._base import FieldMetric, FieldParams
from shared.metrics._text import TextField, strip_invisible, word_count


@metric(
    key="latency",
    description="End-to-end latency in seconds; passes when within params.max_seconds.",
    required_fields=("latency",),
    default_threshold=10.0,
    score_range=(0.0, math.inf),
    kind="heuristic",
    score_type="numeric",
    direction="lower_is_better",
)
class Latency(BaseMetric):
    """Score = `item.latency` in seconds (so the run summary's mean is the mean latency).

    Range [0, inf); lower is better. Passes when latency <= `params.max_seconds`: the metric's
    threshold is `params.max_seconds` unless the config sets `threshold` explicitly, which then
    wins. A negative or non-finite latency is bad data, reported as an error row.
    """

    class Params(MetricParams):
        max_seconds: float = Field(default=10.0, gt=0, description="latency budget in seconds")

    params: Params

    def __init__(
        self, params: MetricParams | None = None, *, threshold: float | None = None, name: str | None = None
    ) -> None:
        super().__init__(params, threshold=threshold, name=name)
        if threshold is None:
            self.threshold = self.params.max_seconds

    async def execute(self, item: DatasetItem) -> MetricResult:
        seconds = item.latency
        if seconds is None or not math.isfinite(seconds) or seconds < 0:
            raise MetricError(f"latency must be a finite, non-negative number of seconds, got {seconds!r}")
        verdict = "within" if self.judge(seconds) else "over"
        return self.result(
            seconds,
            f"{seconds:.3f}s, {verdict} the {self.threshold:g}s budget",
            signals={"seconds": seconds, "max_seconds": self.threshold},
        )


@metric(
    key="length_constraint",
    description="1.0 when the text length is within the configured char and/or word bounds, else 0.0.",
    required_fields=(),
    default_threshold=1.0,
    score_range=(0.0, 1.0),
    kind="heuristic",
    score_type="boolean",
    direction="higher_is_better",
)
class LengthConstraint(FieldMetric):
    """Score 1.0 when every configured bound holds, else 0.0; passes at 1.0.

    Bounds are inclusive: `min_chars` <= chars <= `max_chars` and `min_words` <= words <=
    `max_words`; an unset bound is open, and at least one must be set. Length is measured on
    `params.field` with leading/trailing whitespace removed: chars are Unicode code points,
    words are whitespace-separated runs. An empty or missing answer measures 0 chars and 0
    words and is scored, not skipped. The measured lengths are in `signals` (`chars`,
    `words`), so analysts can histogram them.
    """

    class Params(FieldParams):
        min_chars: int | None = Field(default=None, ge=0)
        max_chars: int | None = Field(default=None, ge=0)
        min_words: int | None = Field(default=None, ge=0)
        max_words: int | None = Field(default=None, ge=0)

        @model_validator(mode="after")
        def _bounds(self) -> LengthConstraint.Params:
            bounds = (self.min_chars, self.max_chars, self.min_words, self.max_words)
            if all(b is None for b in bounds):
                raise ValueError("set at least one of min_chars, max_chars, min_words, max_words")
            for unit, lo, hi in (("chars", self.min_chars, self.max_chars), ("words", self.min_words, self.max_words)):
                if lo is not None and hi is not None and lo > hi:
                    raise ValueError(f"min_{unit} ({lo}) must not exceed max_{unit} ({hi})")
            return self

    params: Params

    async def execute(self, item: DatasetItem) -> MetricResult:
        p = self.params
        text = self.text(item).strip()
        if not strip_invisible(text).strip():  # only zero-width characters: an empty answer
            text = ""
        signals: dict[str, int] = {"chars": len(text)}
        if p.min_words is not None or p.max_words is not None:
            signals["words"] = word_count(text)
        problems: list[str] = []
        for unit, lo, hi in (("chars", p.min_chars, p.max_chars), ("words", p.min_words, p.max_words)):
            length = signals.get(unit)
            if length is None:
                continue
            if lo is not None and length < lo:
                problems.append(f"{length} {unit} < min {lo}")
            if hi is not None and length > hi:
                problems.append(f"{length} {unit} > max {hi}")
        if problems:
            return self.result(0.0, "; ".join(problems), signals=signals)
        measured = ", ".join(f"{n} {unit}" for unit, n in signals.items())
        return self.result(1.0, f"{measured}: within bounds", signals=signals)


@metric(
    key="non_empty",
    description="1.0 when the field holds visible content (not blank, not a null placeholder).",
    required_fields=(),
    default_threshold=1.0,
    score_range=(0.0, 1.0),
    kind="heuristic",
    score_type="boolean",
    direction="higher_is_better",
)
class NonEmpty(BaseMetric):
    """Score 1.0 when `params.field` has visible content, else 0.0; passes at 1.0.

    Empty means None, "", whitespace, zero-width characters only, or (case-insensitive) one of
    `params.placeholders` such as "null" or "{}" that serialisers write for nothing. It
    declares no required fields on purpose: a missing output is exactly what it must fail,
    where other metrics would skip the item.
    """

    class Params(MetricParams):
        field: TextField = "actual_output"
        placeholders: tuple[str, ...] = ("null", "none", "nil", "undefined", "n/a", "{}", "[]", '""', "''")

    params: Params

    async def execute(self, item: DatasetItem) -> MetricResult:
        value = getattr(item, self.params.field)
        text = strip_invisible(value).strip() if isinstance(value, str) else ""
        if not text:
            reason = "missing" if value is None else "blank"
            return self.result(0.0, f"{self.params.field} is {reason}", signals={"reason": reason})
        if len(text) <= 16 and text.casefold() in {p.casefold() for p in self.params.placeholders}:
            return self.result(
                0.0, f"{self.params.field} is the placeholder {text!r}", signals={"reason": "placeholder"}
            )
        return self.result(1.0, f"{self.params.field} has {len(text)} visible characters", signals={"chars": len(text)})
