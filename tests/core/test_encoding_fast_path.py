"""The publish boundary's clean-results shortcut never changes what gets repaired."""

from __future__ import annotations

from shared.evaluation.item import DatasetItem
from shared.evaluation.metric import MetricResult
from shared.evaluation.results import EvaluationResult, ResultRow
from shared.monitoring.sinks.encoding import encodable_results


def rows(item: DatasetItem, **signals: object) -> EvaluationResult:
    return EvaluationResult([ResultRow(item, "m1", "m1", "v1", "numeric", MetricResult(score=1.0, signals=signals))])


def test_text_that_only_looks_like_an_escaped_nul_is_left_alone() -> None:
    results = rows(DatasetItem(id="a", actual_output="a literal \\u0000 in code"), raw="\\u0000", big=2**70)
    assert encodable_results(results) == (results, 0)


def test_values_json_cannot_hold_are_still_walked_and_repaired() -> None:
    item = DatasetItem(id="a", metadata={"by_id": {1: "int key \x00"}, "set": {"kept"}, "huge": 2**70})
    clean, repaired = encodable_results(rows(item, nested=[{2: ("t\ud800",)}]))
    assert repaired == 2
    assert clean.rows[0].item.metadata == {"by_id": {1: "int key \ufffd"}, "set": {"kept"}, "huge": 2**70}
    assert clean.rows[0].result.signals == {"nested": [{2: ("t\ufffd",)}]}
