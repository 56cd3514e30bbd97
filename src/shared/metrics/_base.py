"""A base for metrics that read one text field chosen in their params."""

from __future__ import annotations

from collections.abc import Sequence

from shared.evaluation.item import DatasetItem
from shared.evaluation.metric import BaseMetric, MetricParams
from shared.metrics._text import TextField

ANSWER_FIELD = "actual_output"


def unusable_fields(item: DatasetItem, fields: Sequence[str]) -> list[str]:
    """`fields` when none of them can be read, else [] (the runner skips on a non-empty list).

    The answer always can: a missing or blank `actual_output` is an empty answer, which the
    text checks score (no PII, no keyword, 0 chars) rather than skip. Skipping it would lift
    pass rates above the truth. Any other field the item lacks makes the check not applicable.
    """
    if ANSWER_FIELD in fields or any(item.has_field(f) for f in fields):
        return []
    return list(fields)


class FieldParams(MetricParams):
    """Params of a metric that reads one text field (`actual_output` unless configured)."""

    field: TextField = "actual_output"


class FieldMetric(BaseMetric):
    """Reads `params.field`; the runner's skip check follows the configured field.

    An empty or missing answer (`actual_output`) is scored as the empty text, never skipped
    (0 chars, not JSON, no keyword are verdicts); an item without another configured field
    (`field: query`) is skipped (see `unusable_fields`).
    """

    params: FieldParams

    def missing_fields(self, item: DatasetItem) -> list[str]:
        return unusable_fields(item, (self.params.field,))

    def text(self, item: DatasetItem) -> str:
        value = getattr(item, self.params.field)
        return value if isinstance(value, str) else ""
