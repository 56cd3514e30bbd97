"""Composite judges (faithfulness = claims, then one check per claim) and athena's judges."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import implementations.athena.llm_metrics  # noqa: F401  (registers the athena judges)
from shared.evaluation import DatasetItem, MetricStatus, build_metric
from tests.fakes.openai_server import OpenAIServer
from tests.judge.helpers import run

CONTEXT = ["Policy 7: annual premium 120 EUR.", "Policy 7 covers flood damage."]


def faithfulness_judge(body: dict[str, Any]) -> str:
    text = "\n".join(m["content"] for m in body["messages"])
    if '{"claims"' in text:
        return json.dumps({"claims": ["The premium is 120 EUR.", "Flood damage is covered.", "Theft is covered."]})
    claim = text.rsplit("Claim:", 1)[-1].rsplit("CLAIM:", 1)[-1]
    return json.dumps({"supported": "Theft" not in claim, "reasoning": "checked"})


@pytest.fixture
def fake() -> Iterator[OpenAIServer]:
    with OpenAIServer() as server:
        server.state.responder = faithfulness_judge
        yield server


def item(**changes: Any) -> DatasetItem:
    base = DatasetItem(
        id="f1",
        query="What does policy 7 cost and cover?",
        actual_output="It costs 120 EUR [1] and covers flood [2] and theft.",
        retrieved_content=CONTEXT,
    )
    return base.model_copy(update=changes)


def test_faithfulness_is_supported_over_total_with_sub_scores(fake: OpenAIServer, tmp_path: Path) -> None:
    metric = build_metric("faithfulness", params={"cache_path": "c.sqlite"})
    result, _ = run([metric], [item()], server=fake, base_dir=tmp_path)
    row = result.rows[0]
    assert row.status is MetricStatus.OK
    assert row.result.score == pytest.approx(2 / 3) and row.result.passed is False  # threshold 0.8
    signals = row.result.signals
    assert (signals["n_claims"], signals["n_supported"], signals["judge_calls"]) == (3, 2, 4)
    assert [c["supported"] for c in signals["claims"]] == [True, True, False]
    assert "Theft is covered." in row.result.explanation
    assert row.result.prompt_name == "faithfulness_claims,faithfulness_verify"
    assert row.result.input_tokens > 0 and row.result.cost_usd > 0
    assert metric.estimate([item()]).calls == 6  # 1 extraction + 5 expected claims

    fake.state.reset_counts()
    again, _ = run(
        [build_metric("faithfulness", params={"cache_path": "c.sqlite"})], [item()], server=fake, base_dir=tmp_path
    )
    assert fake.state.attempts == 0 and again.rows[0].result.score == row.result.score


def test_faithfulness_without_claims_is_skipped_and_bad_verdicts_are_errors(fake: OpenAIServer, tmp_path: Path) -> None:
    fake.state.responder = lambda body: json.dumps({"claims": []})
    result, _ = run([build_metric("faithfulness", params={"cache": False})], [item()], server=fake, base_dir=tmp_path)
    assert result.rows[0].status is MetricStatus.SKIPPED

    def bad_verify(body: dict[str, Any]) -> str:
        text = body["messages"][-1]["content"]
        return json.dumps({"claims": ["A claim."]}) if '{"claims"' in text else '{"supported": "maybe"}'

    fake.state.responder = bad_verify
    result, _ = run([build_metric("faithfulness", params={"cache": False})], [item()], server=fake, base_dir=tmp_path)
    row = result.rows[0]
    assert row.status is MetricStatus.ERROR and row.result.signals["raw"] == '{"supported": "maybe"}'
    assert row.result.cost_usd > 0  # both calls were paid for


def test_faithfulness_cut_by_the_budget_is_deferred(fake: OpenAIServer, tmp_path: Path) -> None:
    fake.state.usage = (1000, 50)
    metric = build_metric(
        "faithfulness",
        params={
            "model": "judge-x",
            "prices": {"judge-x": {"input": 100, "output": 100}},
            "max_tokens": 50,
            "cache_path": "c.sqlite",
        },
    )
    result, _ = run([metric], [item()], server=fake, base_dir=tmp_path, max_cost_usd=0.25)
    assert result.rows[0].status is MetricStatus.DEFERRED  # claims paid, not every check fits
    assert result.cost_usd <= 0.25


def athena_item(decision: str | None, refer_reason: str | None = None) -> DatasetItem:
    return item(
        id=f"a-{decision}-{bool(refer_reason)}",
        additional_input={"underwriting_flags": ["FLOOD_ZONE_A", "ROOF_AGE_30Y"]},
        additional_output={"decision": decision, "refer_reason": refer_reason},
    )


def test_athena_judges_fill_their_rubrics_and_skip_what_does_not_apply(fake: OpenAIServer, tmp_path: Path) -> None:
    fake.state.responder = lambda body: json.dumps({"score": 4, "label": "consistent", "reasoning": "ok"})
    metrics = [
        build_metric("athena_decision_quality", params={"cache": False}),
        build_metric("athena_refer_reason_quality", params={"cache": False}),
    ]
    data = [
        athena_item("refer", "Roof age needs a survey."),
        athena_item("approve"),
        athena_item("refer"),
        athena_item(None),
    ]
    result, _ = run(metrics, data, server=fake, base_dir=tmp_path)
    got = {(r.item.id, r.metric_name): (r.status.value, r.result.score) for r in result}
    assert got[("a-refer-True", "athena_decision_quality")] == ("ok", 0.75)
    assert got[("a-refer-True", "athena_refer_reason_quality")] == ("ok", 0.75)
    assert got[("a-approve-False", "athena_refer_reason_quality")] == ("skipped", None)
    assert got[("a-refer-False", "athena_refer_reason_quality")] == ("ok", 0.0)  # no reason: 0, no call
    assert got[("a-None-False", "athena_decision_quality")] == ("skipped", None)
    # 3 decisions (the two referrals render the same decision prompt: one shared call) + 1 reason
    assert fake.state.completions == 3
    prompts = [b["messages"][-1]["content"] for b in fake.state.bodies]
    assert any("REFER REASON:\nRoof age needs a survey." in p for p in prompts)
    assert all("[1] FLOOD_ZONE_A" in p and "[2] ROOF_AGE_30Y" in p for p in prompts)
    versions = {r.result.prompt_version for r in result if r.result.prompt_version}
    assert all(v.startswith("local-") for v in versions)


def test_athena_faithfulness_uses_its_own_prompts(fake: OpenAIServer, tmp_path: Path) -> None:
    metric = build_metric("athena_underwriting_faithfulness", params={"cache": False})
    result, _ = run([metric], [athena_item("approve")], server=fake, base_dir=tmp_path)
    row = result.rows[0]
    assert row.status is MetricStatus.OK and row.result.score == pytest.approx(2 / 3)
    assert row.result.prompt_name == ("athena_underwriting_faithfulness_claims,athena_underwriting_faithfulness_verify")
    assert any("CONTEXT DATA:\n[1] Policy 7" in b["messages"][-1]["content"] for b in fake.state.bodies)
