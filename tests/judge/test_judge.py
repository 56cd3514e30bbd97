"""llm_judge against the loopback fake OpenAI server, through the official `openai` SDK."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.errors import ConfigError
from shared.evaluation import MetricContext, MetricStatus, build_metric
from shared.evaluation.metric import BaseMetric
from tests.fakes.openai_server import MALFORMED, OpenAIServer
from tests.judge.helpers import items, judge_settings, run


@pytest.fixture
def fake() -> Iterator[OpenAIServer]:
    with OpenAIServer() as server:
        yield server


def judge(**params: Any) -> BaseMetric:
    params.setdefault("cache_path", "cache/judge.sqlite")
    return build_metric("llm_judge", params=params, threshold=params.pop("threshold", None))


def statuses(result: Any) -> list[str]:
    return [row.status.value for row in result]


def test_scores_carry_provenance_tokens_and_cost(fake: OpenAIServer, tmp_path: Path) -> None:
    result, _ = run([judge(model="gpt-4o-mini")], items(3), server=fake, base_dir=tmp_path)
    rows = list(result)
    assert statuses(result) == ["ok"] * 3
    for row in rows:
        r = row.result
        assert r.score == 0.75 and r.passed is True and r.label == "good"  # 4 on 1..5
        assert r.explanation == "Grounded and complete."
        assert r.model == "gpt-4o-mini"
        assert r.prompt_name == "llm_judge" and r.prompt_version and r.prompt_version.startswith("local-")
        assert r.input_tokens > 0 and r.output_tokens > 0 and r.cost_usd > 0
    body = fake.state.bodies[0]
    assert body["response_format"] == {"type": "json_object"} and body["temperature"] == 0
    assert "The premium for policy" in body["messages"][-1]["content"]
    assert result.cost_usd == pytest.approx(sum(r.result.cost_usd for r in rows))


def test_rerun_hits_the_cache_and_makes_zero_calls(fake: OpenAIServer, tmp_path: Path) -> None:
    first, _ = run([judge()], items(5), server=fake, base_dir=tmp_path)
    assert fake.state.completions == 5
    fake.state.reset_counts()
    second, _ = run([judge()], items(5), server=fake, base_dir=tmp_path)  # new process state, same file
    assert fake.state.attempts == 0
    assert [r.result.score for r in second] == [r.result.score for r in first]
    assert all(r.result.cost_usd == 0 and r.result.signals["cache_hits"] == 1 for r in second)
    assert second.cost_usd == 0


def test_new_prompt_version_is_not_served_from_the_cache(fake: OpenAIServer, tmp_path: Path) -> None:
    prompt = tmp_path / "rubric.txt"
    prompt.write_text("Rate this answer in JSON {score: 1-5}: {{output}}")
    first = judge(fallback_file=str(prompt))
    run([first], items(2), server=fake, base_dir=tmp_path)
    prompt.write_text("Rate this answer strictly, in JSON {score: 1-5}: {{output}}")
    second = judge(fallback_file=str(prompt))
    result, _ = run([second], items(2), server=fake, base_dir=tmp_path)
    assert fake.state.completions == 4
    assert first.version != second.version  # and the ledger re-scores this metric only
    assert {r.result.prompt_version for r in result} == {second.provenance()["prompts"]["rubric"][1]}


def test_operational_params_do_not_change_the_metric_version() -> None:
    assert judge().version == judge(timeout_s=5, max_retries=0, cache_path="elsewhere.sqlite").version
    assert judge().version != judge(model="gpt-4o").version
    assert judge().version != judge(temperature=0.7).version


def test_budget_stops_calls_at_the_limit_and_a_later_run_picks_up(fake: OpenAIServer, tmp_path: Path) -> None:
    fake.state.usage = (1000, 100)
    prices = {"judge-x": {"input": 100.0, "output": 100.0}}  # $0.11 a call
    metric = judge(model="judge-x", prices=prices, max_tokens=100)
    result, context = run([metric], items(20), server=fake, base_dir=tmp_path, max_cost_usd=1.0, concurrency=4)
    ok = [r for r in result if r.status is MetricStatus.OK]
    deferred = [r for r in result if r.status is MetricStatus.DEFERRED]
    assert ok and deferred and len(ok) + len(deferred) == 20
    assert fake.state.completions == len(ok)
    assert result.cost_usd <= 1.0
    assert result.cost_usd == pytest.approx(0.11 * len(ok))
    assert all("budget" in r.result.explanation for r in deferred)
    assert context.shared["judge.budget"].spent_usd == pytest.approx(result.cost_usd)
    assert result.summary()[metric.name].deferred == len(deferred)

    fake.state.reset_counts()
    later, _ = run(
        [judge(model="judge-x", prices=prices, max_tokens=100)],
        items(20),
        server=fake,
        base_dir=tmp_path,
        max_cost_usd=10.0,
    )
    assert statuses(later) == ["ok"] * 20
    assert fake.state.completions == len(deferred)  # the scored ones came from the cache


@pytest.mark.parametrize("kind", ["fenced", "trailing_comma", "prose"])
def test_repairable_output_is_scored(fake: OpenAIServer, tmp_path: Path, kind: str) -> None:
    fake.state.malformed(kind)
    result, _ = run([judge()], items(1), server=fake, base_dir=tmp_path)
    assert statuses(result) == ["ok"]


@pytest.mark.parametrize("kind", ["not_json", "truncated", "empty", "wrong_type", "out_of_range"])
def test_malformed_output_is_a_metric_error_with_the_raw_text(fake: OpenAIServer, tmp_path: Path, kind: str) -> None:
    fake.state.malformed(kind)
    result, _ = run([judge()], items(2), server=fake, base_dir=tmp_path)
    for row in result:
        assert row.status is MetricStatus.ERROR
        assert row.result.score is None and row.result.passed is None
        assert "unparseable judge output" in (row.result.error or "")
        assert row.result.signals["raw"] == MALFORMED[kind]
        assert row.result.cost_usd > 0 and row.result.model == "gpt-4o-mini"  # the failed call still cost money
    fake.state.reset_counts()
    run([judge()], items(2), server=fake, base_dir=tmp_path)
    assert fake.state.completions == 2  # errors are never cached


def test_circuit_breaker_opens_and_the_run_finishes(fake: OpenAIServer, tmp_path: Path) -> None:
    fake.state.fail_always(500)
    metric = judge(breaker_threshold=3, max_retries=0)
    result, _ = run([metric], items(12), server=fake, base_dir=tmp_path, concurrency=1)
    assert statuses(result) == ["error"] * 3 + ["deferred"] * 9
    assert fake.state.attempts == 3
    assert "HTTP 500" in (result.rows[0].result.error or "")
    assert "circuit open" in result.rows[-1].result.explanation
    summary = result.summary()[metric.name]
    assert (summary.errors, summary.deferred, summary.n) == (3, 9, 0)


def test_circuit_breaker_bounds_calls_under_concurrency(fake: OpenAIServer, tmp_path: Path) -> None:
    fake.state.fail_always(503)
    result, _ = run(
        [judge(breaker_threshold=4, max_retries=0)], items(40), server=fake, base_dir=tmp_path, concurrency=8
    )
    assert fake.state.attempts < 4 + 8
    assert statuses(result).count("deferred") >= 40 - 4 - 8


def test_429_with_retry_after_and_500_are_retried(fake: OpenAIServer, tmp_path: Path) -> None:
    fake.state.fail_next(429, retry_after=1)
    started = time.monotonic()
    result, _ = run([judge(max_retries=2)], items(1), server=fake, base_dir=tmp_path)
    assert statuses(result) == ["ok"]
    assert fake.state.attempts == 2
    assert time.monotonic() - started >= 0.95  # the SDK waited what Retry-After said

    fake.state.reset_counts()
    fake.state.fail_next(500, times=2)
    result, _ = run([judge(max_retries=2, cache=False)], items(1), server=fake, base_dir=tmp_path)
    assert statuses(result) == ["ok"] and fake.state.attempts == 3


def test_slow_judge_times_out_into_an_error_row(fake: OpenAIServer, tmp_path: Path) -> None:
    fake.state.latency_s = 1.0
    started = time.monotonic()
    result, _ = run([judge(timeout_s=0.3, max_retries=0)], items(1), server=fake, base_dir=tmp_path)
    assert statuses(result) == ["error"]
    assert "Timeout" in (result.rows[0].result.error or "")
    assert time.monotonic() - started < 0.9


def test_dry_run_makes_no_calls_and_estimates(fake: OpenAIServer, tmp_path: Path) -> None:
    metric = judge(model="gpt-4o")
    data = items(10)
    result, _ = run([metric], data, server=fake, base_dir=tmp_path, dry_run=True)
    assert fake.state.attempts == 0
    assert statuses(result) == ["deferred"] * 10
    assert all(r.result.model == "gpt-4o" and r.result.prompt_version for r in result)
    estimate = metric.estimate(data)
    assert estimate.calls == 10 and estimate.cost_usd > 0

    run([judge(model="gpt-4o")], data[:4], server=fake, base_dir=tmp_path)  # a real run fills the cache
    again = judge(model="gpt-4o")
    context = MetricContext(settings=judge_settings(fake), base_dir=tmp_path, dry_run=True)
    asyncio.run(again.setup(context))
    assert again.estimate(data).calls == 6  # after setup, cached answers are not counted
    asyncio.run(again.aclose())
    result, _ = run([judge(model="gpt-4o")], data, server=fake, base_dir=tmp_path, dry_run=True)
    assert statuses(result) == ["ok"] * 4 + ["deferred"] * 6  # cached answers are free, even in a dry run


def test_dry_run_needs_no_api_key(tmp_path: Path) -> None:
    result, _ = run([judge()], items(2), server=None, base_dir=tmp_path, dry_run=True)
    assert statuses(result) == ["deferred"] * 2


def test_missing_api_key_is_a_config_error(tmp_path: Path) -> None:
    context = MetricContext(settings=judge_settings(None), base_dir=tmp_path)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        asyncio.run(judge().setup(context))


def test_prompt_with_unknown_variables_is_a_config_error(tmp_path: Path) -> None:
    prompt = tmp_path / "rubric.txt"
    prompt.write_text("JSON please: {{output}} {{flags}}")
    context = MetricContext(settings=judge_settings(None), base_dir=tmp_path, dry_run=True)
    with pytest.raises(ConfigError, match="flags"):
        asyncio.run(judge(fallback_file=str(prompt)).setup(context))
    ok = judge(fallback_file=str(prompt), variables={"flags": "additional_input.flags"})
    asyncio.run(ok.setup(context))


def test_label_scores_custom_variables_and_chat_prompt(fake: OpenAIServer, tmp_path: Path) -> None:
    prompt = tmp_path / "rubric.yaml"
    prompt.write_text(
        "messages:\n"
        '  - {role: system, content: \'You grade decisions. Reply in JSON: {"verdict": "consistent|inconsistent"}\'}\n'
        "  - {role: user, content: 'Flags: {{flags}}. Decision: {{decision}}.'}\n"
    )
    fake.state.responder = lambda body: json.dumps(
        {"verdict": "inconsistent" if "decline" in body["messages"][-1]["content"] else "consistent"}
    )
    metric = judge(
        fallback_file=str(prompt),
        variables={"flags": "additional_input.flags", "decision": "additional_output.decision"},
        required=["additional_output.decision"],
        output_schema={"type": "object", "required": ["verdict"]},
        score_field="score",
        label_field="verdict",
        label_scores={"consistent": 1.0, "inconsistent": 0.0},
    )
    data = [
        items(1)[0].model_copy(
            update={
                "id": "a",
                "additional_input": {"flags": ["flood zone"]},
                "additional_output": {"decision": "refer"},
            }
        ),
        items(1)[0].model_copy(
            update={"id": "b", "additional_input": {"flags": []}, "additional_output": {"decision": "decline"}}
        ),
        items(1)[0].model_copy(update={"id": "c"}),  # no decision: skipped, not an error
    ]
    result, _ = run([metric], data, server=fake, base_dir=tmp_path)
    assert [(r.status.value, r.result.score, r.result.label) for r in result] == [
        ("ok", 1.0, "consistent"),
        ("ok", 0.0, "inconsistent"),
        ("skipped", None, None),
    ]
    assert all(body["messages"][0]["role"] == "system" for body in fake.state.bodies)
    users = sorted(body["messages"][1]["content"] for body in fake.state.bodies)
    assert users == ["Flags: . Decision: decline.", "Flags: [1] flood zone. Decision: refer."]


def test_requests_per_minute_paces_the_judge(fake: OpenAIServer, tmp_path: Path) -> None:
    started = time.monotonic()
    result, _ = run(
        [judge(requests_per_minute=600, cache=False)], items(15), server=fake, base_dir=tmp_path, concurrency=15
    )
    assert statuses(result) == ["ok"] * 15
    assert time.monotonic() - started >= 1.3  # one at once, then 14 more at 10/s
