"""athena's metrics on labelled examples, and on generated traces whose defects are known."""

from __future__ import annotations

from typing import Any

import pytest

from implementations.athena.extractors import extract_recommendation
from implementations.athena.generate_traces import GeneratedTrace
from implementations.athena.metrics import (
    CitationAccuracy,
    DecisionPresent,
    OutputSchema,
    ReferReasonGiven,
    find_citations,
)
from shared.evaluation.item import DatasetItem
from shared.evaluation.metric import MetricStatus, build_metric, metric_registry

from .helpers import as_trace, by_defect, score

CONTEXT = ["(UW-RULE-0042) Authority limit.", "(HAZ-FL-AE) Flood zone AE.", "(UW-RULE-0003) Appetite."]
IDS = ["UW-RULE-0042", "HAZ-FL-AE", "UW-RULE-0003"]


def item(
    *,
    decision: Any = "approve",
    rationale: str | None = "Within appetite [3].",
    refer_reason: Any = None,
    fmt: str = "json",
    parsed: dict[str, Any] | str | None = "auto",
    context: list[str] | None = CONTEXT,
) -> DatasetItem:
    if parsed == "auto":
        parsed = {"decision": decision, "rationale": rationale} if fmt == "json" else None
    return DatasetItem(
        id="t1",
        actual_output=rationale,
        retrieved_content=context,
        additional_input={"retrieved_ids": IDS if context else []},
        additional_output={
            "decision": decision,
            "refer_reason": refer_reason,
            "output_format": fmt,
            "parsed_output": parsed,
        },
    )


def test_the_metrics_register_under_athena_keys() -> None:
    for key in ("athena_decision_present", "athena_citation_accuracy", "athena_refer_reason_given"):
        assert key in metric_registry
    built = build_metric("athena_refer_reason_given", params={"min_chars": 3})
    assert isinstance(built, ReferReasonGiven) and built.params.min_chars == 3


@pytest.mark.parametrize(
    ("decision", "expected"),
    [("approve", 1.0), ("REFER", 1.0), (" decline ", 1.0), (None, 0.0), ("", 0.0), ("maybe", 0.0), (3, 0.0)],
)
def test_decision_present(decision: Any, expected: float) -> None:
    result = score(DecisionPresent(), item(decision=decision))
    assert result.score == expected and result.passed is (expected == 1.0)


def test_decision_present_fails_empty_output_rather_than_skipping() -> None:
    result = score(DecisionPresent(), item(decision=None, rationale=None, fmt="empty"))
    assert result.status == MetricStatus.OK and result.score == 0.0 and "empty" in result.explanation


@pytest.mark.parametrize(
    ("rationale", "expected"),
    [
        ("Flood zone [2] and authority [1].", 1.0),
        ("All three [1-3].", 1.0),
        ("Two [1, 3].", 1.0),
        ("Per [UW-RULE-0042] and [2].", 1.0),
        ("Per [uw-rule-0003].", 1.0),
        ("Flood [2]; unknown [7].", 0.5),
        ("Made up [UW-RULE-0999] and [1].", 0.5),
        ("Zero index [0].", 0.0),
        ("No citation at all.", 0.0),
        ("Bracket words [sic] are not citations [1].", 1.0),
    ],
)
def test_citation_accuracy(rationale: str, expected: float) -> None:
    result = score(CitationAccuracy(), item(rationale=rationale))
    assert result.score == pytest.approx(expected)
    assert result.passed is (expected == 1.0)


def test_citation_accuracy_without_context_and_optional_citations() -> None:
    no_context = score(CitationAccuracy(), item(rationale="See [1].", context=None))
    assert no_context.score == 0.0 and no_context.signals["invalid"] == ["[1]"]
    optional = CitationAccuracy(CitationAccuracy.Params(require_citations=False))
    assert score(optional, item(rationale="No citations.")).status == MetricStatus.SKIPPED
    assert CitationAccuracy().missing_fields(item(rationale=None)) == ["actual_output"]


def test_find_citations_guards_huge_ranges() -> None:
    numbers, ids = find_citations("[1-999999] [2–3] [A-1, B-2] [see above]")
    assert numbers == [1, 999999, 2, 3] and ids == ["A-1", "B-2"]


@pytest.mark.parametrize(
    ("decision", "reason", "expected"),
    [
        ("refer", "Flood zone needs an elevation certificate.", 1.0),
        ("refer", None, 0.0),
        ("refer", "   ", 0.0),
        ("refer", "flood", 0.0),  # shorter than min_chars
        ("Refer", "TIV above delegated authority.", 1.0),
    ],
)
def test_refer_reason_given(decision: str, reason: str | None, expected: float) -> None:
    result = score(ReferReasonGiven(), item(decision=decision, refer_reason=reason))
    assert result.score == expected


@pytest.mark.parametrize("decision", ["approve", "decline", None, "maybe"])
def test_refer_reason_skips_other_decisions(decision: str | None) -> None:
    assert score(ReferReasonGiven(), item(decision=decision)).status == MetricStatus.SKIPPED


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, 1.0),
        ({"fmt": "malformed_json"}, 0.0),
        ({"fmt": "empty", "rationale": None}, 0.0),
        ({"fmt": "text"}, 0.0),
        ({"parsed": {"rationale": "x"}}, 0.0),
        ({"parsed": {"decision": "approve", "rationale": ""}}, 0.0),
    ],
)
def test_output_schema(kwargs: dict[str, Any], expected: float) -> None:
    assert score(OutputSchema(), item(**kwargs)).score == expected


# -- against generated traces: each metric catches its defect and passes clean traces -------------


def scores(traces: list[GeneratedTrace], metric: Any) -> list[float | None]:
    results = [score(metric, extract_recommendation(as_trace(t))) for t in traces]
    return [r.score if r.status == MetricStatus.OK else None for r in results]


@pytest.mark.parametrize(
    ("metric", "defects"),
    [
        (DecisionPresent(), ["missing_decision", "empty_output"]),
        (CitationAccuracy(), ["dangling_citation", "wrong_citation", "no_citations", "empty_output"]),
        (OutputSchema(), ["malformed_json", "empty_output"]),
        (ReferReasonGiven(), ["refer_without_reason"]),
    ],
)
def test_metric_catches_its_defects_and_passes_clean_traces(
    generated: list[GeneratedTrace], metric: Any, defects: list[str]
) -> None:
    clean = [s for s in scores(by_defect(generated, None), metric) if s is not None]
    assert clean and all(s == 1.0 for s in clean)
    for defect in defects:
        found = scores(by_defect(generated, defect), metric)
        assert found and all(s is not None and s < 1.0 for s in found), defect
