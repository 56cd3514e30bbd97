"""Parquet parts keep their column types whatever a metric put in its result."""

from __future__ import annotations

from pathlib import Path

from shared.evaluation.item import DatasetItem
from shared.evaluation.metric import MetricResult
from shared.evaluation.results import EvaluationResult, ResultRow
from shared.monitoring.sinks.local import read_results, write_parquet_part


def test_values_of_another_type_are_stored_as_the_column_type(tmp_path: Path) -> None:
    odd = MetricResult(score=1.0, explanation="ok")
    odd.label = 3  # type: ignore[assignment]  # a plug-in metric assigning without validation
    odd.threshold = 1  # type: ignore[assignment]
    plain = MetricResult(score=0.5, label="fair", threshold=0.5)
    item = DatasetItem(id="a", actual_output="text")
    rows = [ResultRow(item, "m1", "m1", "v1", "numeric", odd), ResultRow(item, "m2", "m2", "v1", "numeric", plain)]

    assert write_parquet_part(tmp_path, EvaluationResult(rows)) == {}

    table = read_results(tmp_path).set_index("metric_name")
    assert table.loc["m1", "label"] == "3" and table.loc["m2", "label"] == "fair"
    assert table.loc["m1", "threshold"] == 1.0 and isinstance(table.loc["m1", "threshold"], float)
    assert table.loc["m2", "actual_output"] == "text"
