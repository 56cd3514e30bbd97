"""json_valid, regex_match, contains on labelled examples."""

from __future__ import annotations

import json

import pytest

from shared.errors import ConfigError
from shared.evaluation.metric import MetricStatus

from .helpers import ONE_MB, make, score

DECISION_SCHEMA = {
    "type": "object",
    "required": ["decision"],
    "properties": {"decision": {"enum": ["approve", "decline", "refer"]}, "citations": {"type": "array"}},
}


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ('{"decision": "approve"}', 1.0),
        ("[1, 2, 3]", 1.0),
        ('"just a string"', 1.0),
        ("42", 1.0),
        ('  {"ünïcødé": "日本"}  ', 1.0),
        ("{'decision': 'approve'}", 0.0),  # Python repr, not JSON
        ('{"decision": "approve",}', 0.0),
        ('{"a": 1', 0.0),
        ('{"a": NaN}', 0.0),  # not RFC 8259
        ("Infinity", 0.0),
        ('```json\n{"a": 1}\n```', 0.0),  # fences rejected unless allowed
        ("The decision is approve.", 0.0),
    ],
)
def test_json_valid_without_schema(output: str, expected: float) -> None:
    result = score(make("json_valid"), actual_output=output)
    assert result.score == expected
    if expected == 0.0:
        assert result.signals["stage"] == "parse"


@pytest.mark.parametrize(
    ("output", "expected", "stage"),
    [
        ('{"decision": "refer", "citations": [1]}', 1.0, None),
        ('{"decision": "maybe"}', 0.0, "schema"),
        ('{"citations": [1]}', 0.0, "schema"),
        ('{"decision": "approve", "citations": "1"}', 0.0, "schema"),
        ("[]", 0.0, "schema"),
        ("not json", 0.0, "parse"),
    ],
)
def test_json_valid_with_schema(output: str, expected: float, stage: str | None) -> None:
    result = score(make("json_valid", json_schema=DECISION_SCHEMA), actual_output=output)
    assert result.score == expected
    assert result.signals.get("stage") == stage


def test_json_valid_schema_error_names_the_path() -> None:
    result = score(make("json_valid", json_schema=DECISION_SCHEMA), actual_output='{"decision": "x"}')
    assert result.signals["path"] == "/decision"
    assert "/decision" in result.explanation


def test_json_valid_code_fence_allowed() -> None:
    metric = make("json_valid", allow_code_fence=True)
    assert score(metric, actual_output='```json\n{"a": 1}\n```').score == 1.0
    assert score(metric, actual_output="```\n[1]\n```\n").score == 1.0
    assert score(metric, actual_output='```json\n{"a": \n```').score == 0.0


def test_json_valid_rejects_a_broken_schema_at_config_load() -> None:
    with pytest.raises(ConfigError, match="schema"):
        make("json_valid", json_schema={"type": "no-such-type"})


def test_json_valid_huge_and_deeply_nested_documents_do_not_crash() -> None:
    big = json.dumps({"rationale": "x" * ONE_MB, "decision": "approve"})
    assert score(make("json_valid", json_schema=DECISION_SCHEMA), actual_output=big).score == 1.0
    deep = "[" * 100_000 + "]" * 100_000
    result = score(make("json_valid"), actual_output=deep)
    assert result.status is MetricStatus.OK
    assert result.score == 0.0
    assert score(make("json_valid"), actual_output="\x00\x01 binary").score == 0.0


@pytest.mark.parametrize(
    ("params", "output", "expected"),
    [
        ({"pattern": r"decision:\s*(approve|decline|refer)"}, "Decision: approve", 0.0),  # case-sensitive
        ({"pattern": r"decision:\s*(approve|decline|refer)", "ignore_case": True}, "Decision: approve", 1.0),
        ({"pattern": r"decision:\s*(approve|decline|refer)", "ignore_case": True}, "Decision: pending", 0.0),
        ({"pattern": r"POL-\d{6}", "mode": "must_not_match"}, "Policy POL-123456 is fine", 0.0),
        ({"pattern": r"POL-\d{6}", "mode": "must_not_match"}, "No policy number here", 1.0),
        ({"pattern": r"\d+", "full_match": True}, "12345", 1.0),
        ({"pattern": r"\d+", "full_match": True}, "12345 apples", 0.0),
        ({"pattern": r"^refer$", "multiline": True}, "Decision\nrefer\nbecause", 1.0),
        ({"pattern": r"^refer$"}, "Decision\nrefer\nbecause", 0.0),
        ({"pattern": r"start.*end", "dotall": True}, "start\nmiddle\nend", 1.0),
        ({"pattern": r"日本"}, "東京は日本にある", 1.0),
    ],
)
def test_regex_match(params: dict[str, object], output: str, expected: float) -> None:
    assert score(make("regex_match", **params), actual_output=output).score == expected


def test_regex_match_reports_span_not_text_and_validates_pattern() -> None:
    result = score(
        make("regex_match", pattern=r"\d{3}-\d{2}-\d{4}", mode="must_not_match"), actual_output="id 123-45-6789"
    )
    assert result.score == 0.0
    assert result.signals["span"] == [3, 14]
    assert "123-45-6789" not in json.dumps(result.model_dump())
    with pytest.raises(ConfigError, match=r"params\.pattern: .*invalid regular expression"):
        make("regex_match", pattern="(unclosed")
    with pytest.raises(ConfigError, match="pattern"):
        make("regex_match")


def test_regex_match_on_1mb_text() -> None:
    text = "lorem ipsum " * (ONE_MB // 12) + "FINAL DECISION"
    assert score(make("regex_match", pattern="FINAL DECISION$"), actual_output=text).score == 1.0


@pytest.mark.parametrize(
    ("params", "output", "expected"),
    [
        ({"keywords": ["approve", "decline", "refer"]}, "We APPROVE this risk.", 1.0),
        ({"keywords": ["approve", "decline", "refer"]}, "Pending more information.", 0.0),
        ({"keywords": ["approve", "decline"], "case_sensitive": True}, "We APPROVE this risk.", 0.0),
        ({"keywords": ["flood", "zone"], "mode": "all"}, "Flood risk: zone A.", 1.0),
        ({"keywords": ["flood", "zone"], "mode": "all"}, "Flood risk is high.", 0.0),
        ({"keywords": ["competitor"], "mode": "none"}, "Our product is best.", 1.0),
        ({"keywords": ["competitor"], "mode": "none"}, "Unlike Competitor X...", 0.0),
        ({"keywords": ["refer"], "whole_word": True}, "I would refer this.", 1.0),
        ({"keywords": ["refer"], "whole_word": True}, "See the referral note.", 0.0),
        ({"keywords": ["refer"]}, "See the referral note.", 1.0),
        ({"keywords": ["STRASSE"]}, "Hauptstraße 5", 1.0),  # casefold: ß == ss
        ({"keywords": ["c++"], "whole_word": True}, "We use C++ daily", 1.0),
    ],
)
def test_contains(params: dict[str, object], output: str, expected: float) -> None:
    assert score(make("contains", **params), actual_output=output).score == expected


def test_contains_signals_and_config_errors() -> None:
    result = score(make("contains", keywords=["a1", "b2", "c3"], mode="all"), actual_output="a1 and c3")
    assert result.signals["found"] == ["a1", "c3"]
    assert result.signals["missing"] == ["b2"]
    assert result.signals["fraction_found"] == pytest.approx(2 / 3)
    with pytest.raises(ConfigError, match="keywords"):
        make("contains", keywords=[])
    with pytest.raises(ConfigError, match="blank"):
        make("contains", keywords=["ok", "  "])
    with pytest.raises(ConfigError, match="mode"):
        make("contains", keywords=["x"], mode="some")


def test_contains_on_1mb_text() -> None:
    text = "é" * ONE_MB + " needle"
    assert score(make("contains", keywords=["NEEDLE"], whole_word=True), actual_output=text).score == 1.0
