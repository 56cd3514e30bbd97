"""citation_validity and citation_coverage on labelled answers."""

from __future__ import annotations

import pytest

from shared.errors import ConfigError
from shared.evaluation.metric import MetricStatus

from .helpers import ONE_MB, make, score

DOCS = ["Flood zone A per FEMA map.", "Roof replaced in 2019.", "Two prior water claims."]


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("Refer: flood zone A [1] and two claims [3].", 1.0),
        ("Roof is new [2]. Claims history [1, 3].", 1.0),
        ("See [1-3].", 1.0),
        ("See [1–3].", 1.0),  # en dash
        ("Flood zone [1]; claims [4].", 0.5),  # [4] dangles: only 3 documents
        ("Zone [0] and roof [2].", 0.5),  # 1-based: [0] is not a document
        ("Zone [7] [9].", 0.0),
        ("Zone [1] [1] [1] and [5].", 0.5),  # distinct ids: {1, 5}
        ("Zone [123456].", 0.0),
        ("Zone [12345678901].", 1.0),  # 7+ digits is not an index citation: none cited
        ("Zone [1] per rule [UW-RULE-0917].", 0.5),  # an id-like citation is not an index
        ("Zone [1] [Note] [sic].", 1.0),  # bracketed prose is not a citation
    ],
)
def test_citation_validity_index_mode(output: str, expected: float) -> None:
    result = score(make("citation_validity"), actual_output=output, retrieved_content=DOCS)
    assert result.score == pytest.approx(expected)
    assert result.passed is (expected == 1.0)


def test_citation_validity_lists_dangling_ids() -> None:
    result = score(make("citation_validity"), actual_output="A [1], B [4], C [UW-Rule-12].", retrieved_content=DOCS)
    assert result.signals["invalid"] == ["4", "UW-Rule-12"]  # as written in the answer
    assert result.signals["cited"] == 3
    assert result.signals["n_docs"] == 3
    assert "4" in result.explanation


def test_citation_validity_zero_based() -> None:
    metric = make("citation_validity", index_base=0)
    assert score(metric, actual_output="[0] [2]", retrieved_content=DOCS).score == 1.0
    assert score(metric, actual_output="[0] [3]", retrieved_content=DOCS).score == 0.5


def test_citations_without_any_retrieved_document_all_dangle() -> None:
    result = score(make("citation_validity"), actual_output="Approved per [1].")
    assert result.status is MetricStatus.OK
    assert result.score == 0.0


@pytest.mark.parametrize(
    ("policy", "status", "value"),
    [("pass", MetricStatus.OK, 1.0), ("fail", MetricStatus.OK, 0.0), ("skip", MetricStatus.SKIPPED, None)],
)
def test_citation_validity_no_citations_policy(policy: str, status: MetricStatus, value: float | None) -> None:
    result = score(
        make("citation_validity", when_no_citations=policy), actual_output="Approved.", retrieved_content=DOCS
    )
    assert result.status is status
    assert result.score == value


def test_citation_validity_doc_id_mode_with_listed_ids() -> None:
    metric = make("citation_validity", id_mode="doc_id")
    fields = {"retrieved_content": DOCS, "additional_input": {"retrieved_ids": ["doc-1", "DOC-22", "kb_7"]}}
    assert score(metric, actual_output="Zone [doc-1], claims [doc-22; KB_7].", **fields).score == 1.0
    half = score(metric, actual_output="Zone [doc-1] and [doc-404].", **fields)
    assert half.score == 0.5
    assert half.signals["invalid"] == ["doc-404"]
    strict = make("citation_validity", id_mode="doc_id", case_sensitive_ids=True)
    assert score(strict, actual_output="[doc-22]", **fields).score == 0.0


def test_citation_validity_doc_id_mode_ids_from_content_and_custom_pattern() -> None:
    docs = ["<doc id=A17>Flood zone A</doc>", "<doc id=B2>Roof 2019</doc>"]
    metric = make(
        "citation_validity", id_mode="doc_id", pattern=r"\(source: ([\w-]+)\)", doc_id_pattern=r"<doc id=(\w+)>"
    )
    assert score(metric, actual_output="Zone A (source: A17). Roof (source: b2).", retrieved_content=docs).score == 1.0
    assert score(metric, actual_output="Zone A (source: C9).", retrieved_content=docs).score == 0.0


def test_citation_validity_doc_id_mode_without_ids_is_an_error_row() -> None:
    result = score(make("citation_validity", id_mode="doc_id"), actual_output="[doc-1]", retrieved_content=DOCS)
    assert result.status is MetricStatus.ERROR
    assert "retrieved_ids" in (result.error or "")


def test_citation_validity_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"params\.pattern: .*regular expression"):
        make("citation_validity", pattern="[")
    with pytest.raises(ConfigError, match=r"params\.doc_id_pattern"):
        make("citation_validity", id_mode="doc_id", doc_id_pattern="(")
    with pytest.raises(ConfigError, match="index_base"):
        make("citation_validity", index_base=2)


def test_citation_validity_1mb_answer() -> None:
    text = "Claim noted [2]. " * (ONE_MB // 17)
    assert score(make("citation_validity"), actual_output=text, retrieved_content=DOCS).score == 1.0


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("The home is in flood zone A [1]. The roof was replaced in 2019 [2].", 1.0),
        ("The home is in flood zone A. [1] The roof was replaced in 2019. [2]", 1.0),  # citation after the stop
        ("The home is in flood zone A [1]. The roof was replaced in 2019.", 0.5),
        ("The home is in flood zone A. The roof was replaced in 2019.", 0.0),
        ("Decision: refer\n- Flood zone A applies here [1]\n- Two prior water claims exist [3]", 1.0),
        ("1. Flood zone A applies here [1].\n2. Two prior claims were filed.", 0.5),
        ("E.g. the roof was replaced [2]. It is in zone A per the map [doc-7].", 1.0),  # abbreviation kept
        ("Flood zone A applies [Note]. Roof is new [2].", 0.5),  # [Note] is prose, not a citation
    ],
)
def test_citation_coverage(output: str, expected: float) -> None:
    assert score(make("citation_coverage"), actual_output=output).score == pytest.approx(expected)


def test_citation_coverage_short_answers_are_skipped_and_signals_show_uncited() -> None:
    assert score(make("citation_coverage"), actual_output="Refer.").status is MetricStatus.SKIPPED
    result = score(make("citation_coverage"), actual_output="Zone A is high risk [1]. Roof is very old indeed.")
    assert result.signals["uncited_examples"] == ["Roof is very old indeed."]
    assert result.passed is False


def test_citation_coverage_custom_pattern_and_unicode() -> None:
    metric = make("citation_coverage", pattern=r"\(source: \w+\)", min_words=2)
    text = "東京 は 高い です (source: A1)。 Zürich liegt am See (source: B2). Kein Beleg hier."
    result = score(metric, actual_output=text)
    assert result.signals["sentences"] == 3
    assert result.score == pytest.approx(2 / 3)


def test_citation_coverage_1mb_single_line() -> None:
    result = score(make("citation_coverage"), actual_output="word " * (ONE_MB // 5))
    assert result.score == 0.0
