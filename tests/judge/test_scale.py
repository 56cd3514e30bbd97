"""Rubrics that match their scale: the built-in rubric asks for the configured scale, a custom rubric
declares its own, and a metric that disagrees with its rubric is a config error."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import implementations.athena.llm_metrics  # noqa: F401  (registers the athena judges)
from shared.errors import ConfigError
from shared.evaluation import MetricContext, MetricStatus, build_metric
from shared.evaluation.metric import BaseMetric
from tests.fakes.openai_server import OpenAIServer
from tests.judge.helpers import items, judge_settings, run

RUBRIC_0_10 = 'Grade the answer from 0 to 10. Reply in JSON: {"score": <0-10>}\nAnswer: {{output}}\n'


@pytest.fixture
def fake() -> Iterator[OpenAIServer]:
    with OpenAIServer() as server:
        yield server


def judge(**params: Any) -> BaseMetric:
    params.setdefault("cache", False)
    return build_metric("llm_judge", params=params)


def setup_only(metric: BaseMetric, tmp_path: Path) -> None:
    context = MetricContext(settings=judge_settings(None), base_dir=tmp_path, dry_run=True)
    asyncio.run(metric.setup(context))


def asked(fake: OpenAIServer) -> str:
    return fake.state.bodies[0]["messages"][-1]["content"]


def test_the_builtin_rubric_asks_for_the_configured_scale(fake: OpenAIServer, tmp_path: Path) -> None:
    fake.state.responder = lambda body: json.dumps({"score": 0.8, "label": "good", "reasoning": "ok"})
    result, _ = run([judge(score_scale=None)], items(1), server=fake, base_dir=tmp_path)
    assert "of 0 (very poor) to 1 (excellent)" in asked(fake) and '"score": <number 0-1>' in asked(fake)
    assert "1-5" not in asked(fake)
    assert result.rows[0].result.score == 0.8

    fake.state.reset_counts()
    fake.state.responder = lambda body: json.dumps({"score": 7, "label": "good", "reasoning": "ok"})
    result, _ = run([judge(score_scale=[0, 10])], items(1), server=fake, base_dir=tmp_path)
    assert '"score": <integer 0-10>' in asked(fake)
    assert result.rows[0].result.score == 0.7


def test_a_rubric_answer_on_another_scale_is_an_error_not_a_pass(fake: OpenAIServer, tmp_path: Path) -> None:
    fake.state.responder = lambda body: json.dumps({"score": 4, "label": "good"})  # a 1-5 habit
    result, _ = run([judge(score_scale=None)], items(1), server=fake, base_dir=tmp_path)
    row = result.rows[0]
    assert row.status is MetricStatus.ERROR and row.result.passed is None
    assert "outside the rubric's scale 0..1" in (row.result.error or "")


def test_front_matter_declares_the_scale_answers_are_read_on(fake: OpenAIServer, tmp_path: Path) -> None:
    rubric = tmp_path / "rubric.txt"
    rubric.write_text("---\nscore_scale: [0, 10]\n---\n" + RUBRIC_0_10)
    fake.state.responder = lambda body: json.dumps({"score": 7})
    metric = judge(fallback_file=str(rubric))  # no score_scale of its own: the rubric's applies
    result, _ = run([metric], items(1), server=fake, base_dir=tmp_path)
    assert result.rows[0].result.score == 0.7
    assert asked(fake) == RUBRIC_0_10.replace("{{output}}", items(1)[0].actual_output or "")  # front matter not sent

    undeclared = tmp_path / "undeclared.txt"
    undeclared.write_text(RUBRIC_0_10)
    assert judge(fallback_file=str(rubric)).version != judge(fallback_file=str(undeclared)).version


def test_a_metric_scale_that_disagrees_with_its_rubric_is_a_config_error(tmp_path: Path) -> None:
    rubric = tmp_path / "rubric.txt"
    rubric.write_text("---\nscore_scale: [0, 10]\n---\n" + RUBRIC_0_10)
    with pytest.raises(ConfigError) as caught:
        setup_only(judge(fallback_file=str(rubric), score_scale=[1, 5]), tmp_path)
    message = str(caught.value)
    assert "score_scale [1, 5] disagrees with prompt 'llm_judge'" in message
    assert "declares score_scale [0, 10]" in message
    assert caught.value.field == "metrics.llm_judge.params.score_scale"
    setup_only(judge(fallback_file=str(rubric), score_scale=[0, 10]), tmp_path)  # agreeing is fine

    rubric.write_text("---\nscore_scale: null\n---\n" + RUBRIC_0_10)
    with pytest.raises(ConfigError, match=r"score_scale \[1, 5\] disagrees .* declares score_scale null \(0..1\)"):
        setup_only(judge(fallback_file=str(rubric), score_scale=[1, 5]), tmp_path)


@pytest.mark.parametrize(
    ("front_matter", "message"),
    [
        ("---\nscore_scale: [5, 1]\n---\n", "score_scale must be \\[low, high\\] with low < high"),
        ("---\nscore_scale: high\n---\n", "score_scale must be"),
        ("---\nscore_scale: [1, 5]\n", "never closed"),
        ("---\n- a list\n---\n", "must be a YAML mapping"),
    ],
)
def test_bad_front_matter_is_a_config_error_naming_the_file(front_matter: str, message: str, tmp_path: Path) -> None:
    rubric = tmp_path / "rubric.txt"
    rubric.write_text(front_matter + RUBRIC_0_10)
    with pytest.raises(ConfigError, match=message):
        setup_only(judge(fallback_file=str(rubric)), tmp_path)


def test_a_metric_scale_with_low_not_below_high_is_rejected() -> None:
    with pytest.raises(ConfigError, match="low < high"):
        judge(score_scale=[5, 5])


def test_athena_rubrics_declare_the_scale_their_metrics_read(tmp_path: Path) -> None:
    for key in ("athena_decision_quality", "athena_refer_reason_quality"):
        metric = build_metric(key)
        setup_only(metric, tmp_path)
        assert metric.prompts["rubric"].config == {"score_scale": [1, 5]}
        assert metric.scale == (1.0, 5.0)  # type: ignore[attr-defined]
        with pytest.raises(ConfigError, match="disagrees"):
            setup_only(build_metric(key, params={"score_scale": None}), tmp_path)
