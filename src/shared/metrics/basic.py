"""Basic heuristics: latency, length_constraint, non_empty."""

from __future__ import annotations

import math
from typing import Literal

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
    higher_is_better=False,
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
    description="1.0 when the text length (chars or words) is within [min, max], else 0.0.",
    required_fields=("actual_output",),
    default_threshold=1.0,
    score_range=(0.0, 1.0),
    kind="heuristic",
    score_type="boolean",
    higher_is_better=True,
)
class LengthConstraint(FieldMetric):
    """Score 1.0 when min <= length <= max (bounds inclusive; a missing bound is open), else 0.0.

    Length is counted on `params.field` with leading/trailing whitespace removed, in `chars`
    (Unicode code points) or `words` (whitespace-separated). Passes at 1.0. The measured length
    is in `signals.length`, so analysts can histogram it.
    """

    class Params(FieldParams):
        unit: Literal["chars", "words"] = "chars"
        min: int | None = Field(default=1, ge=0)
        max: int | None = Field(default=None, ge=0)

        @model_validator(mode="after")
        def _ordered(self) -> LengthConstraint.Params:
            if self.min is not None and self.max is not None and self.min > self.max:
                raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
            return self

    params: Params

    async def execute(self, item: DatasetItem) -> MetricResult:
        p = self.params
        text = self.text(item).strip()
        length = word_count(text) if p.unit == "words" else len(text)
        if p.min is not None and length < p.min:
            score, why = 0.0, f"{length} {p.unit} < min {p.min}"
        elif p.max is not None and length > p.max:
            score, why = 0.0, f"{length} {p.unit} > max {p.max}"
        else:
            score, why = 1.0, f"{length} {p.unit} within [{p.min}, {p.max if p.max is not None else 'inf'}]"
        return self.result(score, why, signals={"length": length, "unit": p.unit})


@metric(
    key="non_empty",
    description="1.0 when the field holds visible content (not blank, not a null placeholder).",
    required_fields=(),
    default_threshold=1.0,
    score_range=(0.0, 1.0),
    kind="heuristic",
    score_type="boolean",
    higher_is_better=True,
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
