"""A base for metrics that read one text field chosen in their params."""

from __future__ import annotations

from shared.evaluation.item import DatasetItem
from shared.evaluation.metric import BaseMetric, MetricParams
from shared.metrics._text import TextField


class FieldParams(MetricParams):
    """Params of a metric that reads one text field (`actual_output` unless configured)."""

    field: TextField = "actual_output"


class FieldMetric(BaseMetric):
    """Reads `params.field`; the runner's skip check follows the configured field.

    The decorator's `required_fields` names the default field (what `evalmon metrics` lists);
    `missing_fields` is overridden so `field: query` skips items without a query, not without
    an output.
    """

    params: FieldParams

    def missing_fields(self, item: DatasetItem) -> list[str]:
        return [] if item.has_field(self.params.field) else [self.params.field]

    def text(self, item: DatasetItem) -> str:
        value = getattr(item, self.params.field)
        return value if isinstance(value, str) else ""
