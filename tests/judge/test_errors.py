"""Clear judge errors: a wrong-shaped answer names what was expected and shows how the answer began."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.evaluation import DatasetItem, MetricStatus, build_metric
from shared.metrics.judge_parse import answer_preview, describe_failure, expected_shape
from tests.fakes.openai_server import MALFORMED, OpenAIServer
from tests.judge.helpers import items, run


@pytest.fixture
def fake() -> Iterator[OpenAIServer]:
    with OpenAIServer() as server:
        yield server


def test_faithfulness_says_it_expected_a_claim_list(fake: OpenAIServer, tmp_path: Path) -> None:
    # the default fake answers every prompt with a rubric score: the wrong shape for claim extraction
    item = DatasetItem(id="f", query="Cost?", actual_output="It costs 120 EUR.", retrieved_content=["120 EUR."])
    result, _ = run([build_metric("faithfulness", params={"cache": False})], [item], server=fake, base_dir=tmp_path)
    row = result.rows[0]
    assert row.status is MetricStatus.ERROR
    error = row.result.error or ""
    assert "'claims' is a required property" in error
    assert 'expected {"claims": ["<string>", ...]}' in error
    assert 'the answer began: {"score": 4, "label": "good"' in error


def test_llm_judge_says_which_scale_it_expected(fake: OpenAIServer, tmp_path: Path) -> None:
    fake.state.malformed("not_json")
    result, _ = run([build_metric("llm_judge", params={"cache": False})], items(1), server=fake, base_dir=tmp_path)
    error = result.rows[0].result.error or ""
    assert error.startswith("unparseable judge output: the judge's answer is not JSON")
    assert 'expected {"score": <integer 1-5>, ...}' in error
    assert f"the answer began: {MALFORMED['not_json']}" in error

    fake.state.malformed("out_of_range")
    result, _ = run(
        [build_metric("llm_judge", params={"cache": False, "score_scale": None})],
        items(1),
        server=fake,
        base_dir=tmp_path,
    )
    error = result.rows[0].result.error or ""
    assert "score 9 is outside the rubric's scale 0..1" in error and "<number 0-1>" in error


def test_label_rubrics_name_their_labels(fake: OpenAIServer, tmp_path: Path) -> None:
    fake.state.responder = lambda body: json.dumps({"verdict": "maybe"})
    metric = build_metric(
        "llm_judge",
        params={
            "cache": False,
            "output_schema": {"type": "object", "required": ["verdict"]},
            "label_field": "verdict",
            "label_scores": {"consistent": 1.0, "inconsistent": 0.0},
        },
    )
    result, _ = run([metric], items(1), server=fake, base_dir=tmp_path)
    error = result.rows[0].result.error or ""
    assert "label 'maybe' is not one of ['consistent', 'inconsistent']" in error
    assert '{"verdict": "consistent"|"inconsistent", ...}' in error


def test_previews_are_one_line_and_cut() -> None:
    assert answer_preview('  {\n  "a":   1 }\n') == '{ "a": 1 }'
    long = "x" * 500
    assert answer_preview(long) == "x" * 160 + "..."
    assert describe_failure("empty", "{...}", "") == "empty; expected {...}"
    assert expected_shape({"type": "object", "properties": {"n": {"type": "integer"}, "k": {"enum": ["a", "b"]}}}) == (
        '{"n": <integer>, "k": "a"|"b"}'
    )
