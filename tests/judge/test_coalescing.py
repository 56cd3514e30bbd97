"""Identical prompts in flight at the same moment share one judge call."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.evaluation import DatasetItem, MetricStatus, build_metric
from tests.fakes.openai_server import OpenAIServer
from tests.judge.helpers import items, run


@pytest.fixture
def fake() -> Iterator[OpenAIServer]:
    with OpenAIServer() as server:
        server.state.latency_s = 0.2
        yield server


def same_question(n: int) -> list[DatasetItem]:
    """n items (say, retries of one user question) whose rendered prompts are identical."""
    template = items(1)[0]
    return [template.model_copy(update={"id": f"dup-{i}"}) for i in range(n)]


@pytest.mark.parametrize("cache", [True, False])
def test_identical_prompts_in_flight_share_one_call(fake: OpenAIServer, tmp_path: Path, cache: bool) -> None:
    metric = build_metric("llm_judge", params={"cache": cache, "cache_path": "c.sqlite"})
    result, context = run([metric], same_question(8) + items(4)[1:], server=fake, base_dir=tmp_path, concurrency=11)
    assert [r.status for r in result] == [MetricStatus.OK] * 11
    assert fake.state.completions == 1 + 3  # one call for the eight identical prompts
    duplicates = result.rows[:8]
    assert {r.result.score for r in duplicates} == {0.75}
    paid = [r for r in duplicates if r.result.cost_usd]
    assert len(paid) == 1 and paid[0].result.signals["judge_calls"] == 1
    assert all(r.result.signals["cache_hits"] == 1 for r in duplicates if r is not paid[0])
    assert result.cost_usd == pytest.approx(context.shared["judge.budget"].spent_usd)
    assert context.shared["judge.in_flight"] == {}  # nothing is held once the answers are in


def test_a_failed_call_fails_every_caller_once(fake: OpenAIServer, tmp_path: Path) -> None:
    fake.state.fail_always(500)
    metric = build_metric("llm_judge", params={"cache": False, "max_retries": 0, "breaker_threshold": 50})
    result, _ = run([metric], same_question(6), server=fake, base_dir=tmp_path, concurrency=6)
    assert fake.state.attempts == 1
    assert [r.status for r in result] == [MetricStatus.ERROR] * 6
    assert all("HTTP 500" in (r.result.error or "") for r in result)
    assert metric.breaker.consecutive_failures == 1  # one failed call, not six


def test_a_bad_answer_is_an_error_for_every_caller_and_trips_the_breaker_once(
    fake: OpenAIServer, tmp_path: Path
) -> None:
    fake.state.malformed("not_json")
    metric = build_metric("llm_judge", params={"cache": False, "breaker_threshold": 50})
    result, _ = run([metric], same_question(5), server=fake, base_dir=tmp_path, concurrency=5)
    assert fake.state.completions == 1
    assert [r.status for r in result] == [MetricStatus.ERROR] * 5
    assert metric.breaker.consecutive_failures == 1
