"""grounding_overlap: lexical support of answer sentences by retrieved content."""

from __future__ import annotations

import pytest

from shared.errors import ConfigError
from shared.evaluation.metric import MetricStatus
from shared.metrics._text import content_tokens, split_sentences

from .helpers import ONE_MB, make, score

CONTEXT = [
    "The property is located in FEMA flood zone AE with a base flood elevation of 12 feet.",
    "The roof was replaced in 2019 with architectural shingles.",
    "The applicant filed two prior water damage claims in 2021.",
]


def test_content_tokens_drop_stopwords_citations_and_plurals() -> None:
    assert content_tokens("The claims were filed in 2021 [3].") == {"claim", "filed", "2021"}
    assert content_tokens("Überschwemmung im Gebiet") == {"überschwemmung", "im", "gebiet"}
    assert content_tokens("TIV $900,000 of 5,000,000; rate 12.5.") == {"tiv", "900,000", "5,000,000", "rate", "12.5"}


def test_split_sentences_keeps_trailing_citations_and_abbreviations() -> None:
    assert split_sentences("Zone AE. [1] Roof 2019 [2].\n- Claims: two") == [
        "Zone AE. [1]",
        "Roof 2019 [2].",
        "Claims: two",
    ]
    assert split_sentences("See e.g. the map. Done.") == ["See e.g. the map.", "Done."]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("The property is in flood zone AE [1]. The roof was replaced in 2019 [2].", 1.0),
        ("The applicant filed two prior water damage claims.", 1.0),
        ("The property is in flood zone AE. The applicant has excellent credit and no debts.", 0.5),
        ("The applicant owns three horses and a vineyard in Napa.", 0.0),
        ("Decline. The insured operates a fireworks factory on site.", 0.0),  # "Decline." is not eligible
        ("THE ROOF WAS REPLACED IN 2019!", 1.0),
    ],
)
def test_grounding_overlap(answer: str, expected: float) -> None:
    result = score(make("grounding_overlap"), actual_output=answer, retrieved_content=CONTEXT)
    assert result.score == pytest.approx(expected)
    assert result.passed is (expected >= 0.7)


def test_grounding_overlap_unsupported_examples_and_mean() -> None:
    answer = "The roof was replaced in 2019. The insured keeps exotic reptiles."
    result = score(make("grounding_overlap"), actual_output=answer, retrieved_content=CONTEXT)
    assert result.signals["unsupported_examples"] == ["The insured keeps exotic reptiles."]
    assert 0 < result.signals["mean_overlap"] < 1


def test_grounding_overlap_threshold_param_changes_support() -> None:
    answer = "The roof was replaced in 2019 after hail storms damaged gutters."
    lenient = score(make("grounding_overlap", min_overlap=0.4), actual_output=answer, retrieved_content=CONTEXT)
    strict = score(make("grounding_overlap", min_overlap=0.9), actual_output=answer, retrieved_content=CONTEXT)
    assert lenient.score == 1.0
    assert strict.score == 0.0


def test_grounding_overlap_best_document_scope_is_stricter() -> None:
    # Each word is somewhere in the context, but no single document supports the sentence.
    answer = "Roof shingles flood elevation claims applicant."
    spread = score(make("grounding_overlap"), actual_output=answer, retrieved_content=CONTEXT)
    best = score(make("grounding_overlap", scope="best_document"), actual_output=answer, retrieved_content=CONTEXT)
    assert spread.score == 1.0
    assert best.score == 0.0


def test_grounding_overlap_skips_and_edge_cases() -> None:
    assert score(make("grounding_overlap"), actual_output="Approved.").status is MetricStatus.SKIPPED
    assert (
        score(make("grounding_overlap"), actual_output="Yes.", retrieved_content=CONTEXT).status is MetricStatus.SKIPPED
    )
    only_empty_docs = score(make("grounding_overlap"), actual_output="Flood zone AE applies.", retrieved_content=[""])
    assert only_empty_docs.score == 0.0
    with pytest.raises(ConfigError, match="min_overlap"):
        make("grounding_overlap", min_overlap=0)


def test_grounding_overlap_1mb_context_and_answer() -> None:
    big_context = [" ".join(f"term{i}" for i in range(20_000)) + " " + "x" * ONE_MB]
    answer = "term1 term2 term3 term4. " * 40_000
    result = score(make("grounding_overlap"), actual_output=answer, retrieved_content=big_context)
    assert result.score == 1.0
    assert result.signals["sentences"] == 40_000
