"""Prompt patterns: the shared section extractor and athena's recommendation sections."""

from __future__ import annotations

import json
import re
import time

from implementations.athena.langfuse.prompt_patterns import (
    PATTERNS,
    AthenaPromptPatterns,
    ContextItem,
    parse_context_items,
    parse_flags,
)
from shared.langfuse.prompt_patterns import (
    PromptPatternsBase,
    create_extraction_pattern,
    section_patterns,
    variable_name,
)
from shared.traces import Trace

PROMPT = """CASE ASSESSMENT:
Should we bind this risk for Harbor Co.?
A bakery in Miami, FL. TIV $2,400,000.

CONTEXT DATA:
[1] (UW-RULE-0042) Delegated authority is limited to $5,000,000 TIV.
[2] (HAZ-FL-AE) FEMA flood zone AE at Miami, FL:
    special flood hazard area.
[3] A note without an id.

UNDERWRITING FLAGS:
- flood_zone: AE
- cooking: no UL 300 hood suppression

Respond with JSON: {"decision": "..."}"""


def test_athena_sections_of_the_recommendation_prompt() -> None:
    found = PATTERNS.extract("recommendation", PROMPT)
    assert found["case_assessment"].startswith("Should we bind") and found["case_assessment"].endswith("$2,400,000.")
    assert (
        found["context_data"].startswith("[1] (UW-RULE-0042)") and "special flood hazard area." in found["context_data"]
    )
    assert "UNDERWRITING" not in found["context_data"]
    assert found["underwriting_flags"] == "- flood_zone: AE\n- cooking: no UL 300 hood suppression"


def test_sections_in_another_order_and_missing_ones() -> None:
    text = "UNDERWRITING FLAGS:\n- none\nCASE ASSESSMENT:\nA shop."
    found = PATTERNS.extract("recommendation", text)
    assert found == {"underwriting_flags": "- none", "case_assessment": "A shop."}
    assert PATTERNS.extract("recommendation", "no sections here") == {}
    assert PATTERNS.extract("recommendation", "") == {}
    assert PATTERNS.extract("recommendation", None) == {}


def test_step_names_match_tolerantly_and_unknown_steps_give_nothing() -> None:
    assert PATTERNS.extract("Recommendation", PROMPT)["underwriting_flags"].startswith("- flood_zone")
    assert PATTERNS.extract("recommendation-step", PROMPT)["case_assessment"]
    assert PATTERNS.extract("location-extraction", "Extract.\n\nCASE:\nA bakery.\n\nReturn JSON: {}") == {
        "case_text": "A bakery."
    }
    assert PATTERNS.extract("rule-lookup", PROMPT) == {}


def test_header_variants_markdown_bold_and_same_line_body() -> None:
    pattern = create_extraction_pattern("CASE ASSESSMENT", ["CONTEXT DATA"])
    for text in (
        "## Case Assessment\nA shop.\n## Context Data\n[1] x",
        "**CASE ASSESSMENT:**\nA shop.\n**CONTEXT DATA:**\n[1] x",
        "**CASE ASSESSMENT**:\nA shop.\nCONTEXT DATA:\n[1] x",
        "  CASE   ASSESSMENT: A shop.\nCONTEXT DATA: [1] x",
    ):
        match = pattern.search(text)
        assert match is not None, text
        assert match.group("value").strip() == "A shop.", text


def test_a_sentence_starting_with_a_header_word_is_not_a_header() -> None:
    pattern = create_extraction_pattern("CASE ASSESSMENT", ["CONTEXT DATA"])
    text = "CASE ASSESSMENT:\nContext data shows a bakery.\nMore.\nCONTEXT DATA:\n[1] x"
    match = pattern.search(text)
    assert match is not None
    assert match.group("value").strip() == "Context data shows a bakery.\nMore."


def test_stop_at_blank_line_and_case_sensitivity() -> None:
    blank = create_extraction_pattern("NOTES", stop_at_blank_line=True)
    assert (m := blank.search("NOTES:\nfirst\nsecond\n\nother text")) and m.group("value").strip() == "first\nsecond"
    strict = create_extraction_pattern("NOTES", case_sensitive=True)
    assert strict.search("notes:\nx") is None


def test_custom_patterns_subclass_with_plain_regexes() -> None:
    class Patterns(PromptPatternsBase):
        patterns = {  # noqa: RUF012 - class-level table, as subclasses declare it
            "answer": {
                "question": re.compile(r"^Question: (.*)$", re.M),
                "whole": re.compile(r"Answer"),
                **section_patterns(["Facts"]),
            }
        }

    found = Patterns().extract("answer", "Question: why?\nAnswer\nFacts:\none\ntwo")
    assert found == {"question": "why?", "whole": "Answer", "facts": "one\ntwo"}
    assert Patterns().steps() == ["answer"]
    assert variable_name("Underwriting Flags:") == "underwriting_flags"


def test_megabyte_prompt_is_linear() -> None:
    filler = "The quick brown fox jumps over the lazy dog. " * 23_000  # ~1 MB
    text = f"CASE ASSESSMENT:\n{filler}\nCONTEXT DATA:\n[1] (X-1) item\n\nUNDERWRITING FLAGS:\n- none\n{filler}"
    started = time.perf_counter()
    found = PATTERNS.extract("recommendation", text)
    elapsed = time.perf_counter() - started
    assert len(found["case_assessment"]) > 1_000_000
    assert parse_context_items(found["context_data"]) == [ContextItem(1, "X-1", "item")]
    assert elapsed < 2.0  # generous: a backtracking pattern would take minutes
    assert PATTERNS.extract("recommendation", filler) == {}


def test_context_items_in_order_with_ids_and_multiline_text() -> None:
    context = PATTERNS.extract("recommendation", PROMPT)["context_data"]
    items = parse_context_items(context)
    assert [(i.number, i.id) for i in items] == [(1, "UW-RULE-0042"), (2, "HAZ-FL-AE"), (3, None)]
    assert items[1].text == "FEMA flood zone AE at Miami, FL:\n    special flood hazard area."
    assert items[0].as_text() == "(UW-RULE-0042) Delegated authority is limited to $5,000,000 TIV."
    assert items[2].as_text() == "A note without an id."
    assert parse_context_items("id=DOC-9 | some text") == []  # no [n] marker: no items
    assert parse_context_items("[1] id: DOC-9 | some text") == [ContextItem(1, "DOC-9", "some text")]
    assert parse_context_items(None) == [] and parse_context_items("") == []


def test_flags_as_a_list() -> None:
    assert parse_flags("- flood_zone: AE\n* tiv: $7M\n• sprinklers: none\n1. vacant") == [
        "flood_zone: AE",
        "tiv: $7M",
        "sprinklers: none",
        "vacant",
    ]
    assert parse_flags("- none") == [] and parse_flags(None) == []


def test_step_variables_through_the_trace_model() -> None:
    rows = [
        {"id": "r", "traceId": "t1", "type": "SPAN", "name": "root", "isRootObservation": True},
        {
            "id": "g",
            "traceId": "t1",
            "type": "GENERATION",
            "name": "recommendation",
            "parentObservationId": "r",
            "input": json.dumps([{"role": "system", "content": "Be careful."}, {"role": "user", "content": PROMPT}]),
        },
    ]
    trace = Trace.from_observations(rows, AthenaPromptPatterns())
    variables = trace.recommendation.variables
    assert set(variables) == {"case_assessment", "context_data", "underwriting_flags"}
