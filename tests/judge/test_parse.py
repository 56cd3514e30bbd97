"""Judge answers: common faults are repaired, anything else is an error, never a guessed score."""

from __future__ import annotations

import pytest

from shared.metrics.judge_parse import JudgeParseError, normalise_score, parse_judge_json, read_score

SCHEMA = {"type": "object", "properties": {"score": {"type": "number"}}, "required": ["score"]}


@pytest.mark.parametrize(
    "text",
    [
        '{"score": 4, "reasoning": "ok"}',
        '```json\n{"score": 4, "reasoning": "ok"}\n```',
        '```\n{"score": 4, "reasoning": "ok",}\n```',
        'Sure! Here is the verdict:\n{"score": 4, "reasoning": "ok"}\nLet me know.',
        '{"score": 4, "reasoning": "a, b, and c,", "tags": ["x", "y",],}',
    ],
)
def test_repairable_answers_parse(text: str) -> None:
    assert parse_judge_json(text, SCHEMA)["score"] == 4


def test_commas_inside_strings_are_kept() -> None:
    parsed = parse_judge_json('{"score": 1, "reasoning": "missing: a,}",}', SCHEMA)
    assert parsed["reasoning"] == "missing: a,}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("I would say four out of five.", "not JSON"),
        ('{"score": 4, "label": "go', "not JSON"),
        ("[4]", "not an object"),
        ('{"label": "good"}', "output schema"),
        ('{"score": "high"}', "output schema"),
    ],
)
def test_unrepairable_answers_raise(text: str, message: str) -> None:
    with pytest.raises(JudgeParseError, match=message):
        parse_judge_json(text, SCHEMA)


def test_scores_are_read_strictly_and_normalised() -> None:
    assert read_score("4.5", field="score") == 4.5
    with pytest.raises(JudgeParseError):
        read_score(True, field="score")
    with pytest.raises(JudgeParseError):
        read_score("NaN", field="score")
    assert normalise_score(1, 1, 5) == 0.0
    assert normalise_score(5, 1, 5) == 1.0
    assert normalise_score(4, 1, 5) == 0.75
    with pytest.raises(JudgeParseError, match="outside"):
        normalise_score(6, 1, 5)
