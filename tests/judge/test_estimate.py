"""Dry-run estimates you can plan with: the bundled judge config, estimated, then run, against the fake judge."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.evaluation import MetricContext, build_metric
from shared.monitoring.monitor import OnlineMonitor
from shared.monitoring.summary import RunSummary
from tests.fakes.openai_server import OpenAIServer
from tests.judge.helpers import items, judge_settings

REPO = Path(__file__).resolve().parents[2]
BUNDLED = REPO / "src/implementations/athena/config/monitoring_judge.yaml"
QUOTAS = ("requests_per_minute", "tokens_per_minute")  # OpenAI's quotas; the fake has none


def varied_judge(body: dict[str, Any]) -> str:
    """Answers athena's rubrics with lengths and claim counts that vary from prompt to prompt."""
    text = "\n".join(m["content"] for m in body["messages"])
    spread = int(hashlib.sha256(text.encode()).hexdigest(), 16)
    if '{"claims"' in text:
        claims = ["The property lies in flood zone A.", "The roof is 30 years old.", "Rule UW-12 applies."]
        return json.dumps({"claims": claims[: 1 + spread % 3]})
    reasoning = " ".join(["The context states it in item [1]."] * (1 + spread % 4))
    if '"supported"' in text:
        return json.dumps({"supported": spread % 2 == 0, "reasoning": reasoning})
    return json.dumps({"score": 1 + spread % 5, "label": "fair", "reasoning": reasoning})


@pytest.fixture
def fake() -> Iterator[OpenAIServer]:
    with OpenAIServer() as server:
        server.state.responder = varied_judge
        yield server


def bundled(fake: OpenAIServer, tmp_path: Path, *overrides: str) -> OnlineMonitor:
    """The bundled judge config as shipped, its files redirected into tmp_path."""
    return OnlineMonitor.from_yaml(
        BUNDLED,
        [
            f"source.path={REPO / 'data/samples/athena_traces.jsonl'}",
            f"dedup.path={tmp_path / 'ledger.csv'}",
            f"publish.local.dir={tmp_path / 'runs'}",
            *(f"metrics.{i}.params.{quota}=null" for i in range(3) for quota in QUOTAS),  # keep the test fast
            *overrides,
        ],
        settings=judge_settings(fake),
        base_dir=tmp_path,  # the judge cache lands in tmp_path/data/cache
    )


def test_dry_run_estimate_is_within_a_quarter_of_the_real_cost(fake: OpenAIServer, tmp_path: Path) -> None:
    first = bundled(fake, tmp_path, "sampling.n=12").run()  # an earlier run: the cache knows the judge now
    assert first.status == "ok" and first.cost_usd > 0

    fake.state.reset_counts()
    dry = bundled(fake, tmp_path).run(dry_run=True)
    assert fake.state.attempts == 0 and dry.exit_code() == 0
    assert dry.estimate is not None
    real = bundled(fake, tmp_path).run()
    assert real.status == "ok" and real.counts.sampled == dry.counts.sampled == 25

    assert abs(dry.estimate.cost_usd - real.cost_usd) <= 0.25 * real.cost_usd, (dry.estimate, real.cost_usd)
    assert abs(dry.estimate.judge_calls - fake.state.completions) <= 0.25 * fake.state.completions
    assert set(dry.estimate.by_metric) == {
        "athena_underwriting_faithfulness",
        "athena_decision_quality",
        "athena_refer_reason_quality",
        "answer_quality",
    }
    assert sum(e.judge_calls for e in dry.estimate.by_metric.values()) == dry.estimate.judge_calls
    assert not [w for w in dry.warnings if "max_cost_usd" in w]  # $0.50 covers it


def test_dry_run_counts_only_calls_that_would_be_made(fake: OpenAIServer, tmp_path: Path) -> None:
    bundled(fake, tmp_path, "sampling.n=8", "dedup.store=none").run()  # every answer of these 8 is cached
    again: RunSummary = bundled(fake, tmp_path, "sampling.n=8", "dedup.store=none").run(dry_run=True)
    assert again.counts.sampled == 8 and again.estimate is None  # the same 8 items: nothing left to pay for


def test_identical_prompts_within_the_run_are_estimated_once(tmp_path: Path) -> None:
    metric = build_metric("llm_judge", params={"cache_path": "c.sqlite"})
    context = MetricContext(settings=judge_settings(None), base_dir=tmp_path, dry_run=True)
    asyncio.run(metric.setup(context))
    question = items(1)[0]
    data = [question.model_copy(update={"id": f"dup-{i}"}) for i in range(5)] + items(4)[1:]
    estimate = metric.estimate(data)
    assert estimate.calls == 1 + 3
    assert estimate.cost_usd == pytest.approx(metric.estimate(items(4)).cost_usd)
    asyncio.run(metric.aclose())


def test_dry_run_warns_when_the_estimate_is_above_the_budget(fake: OpenAIServer, tmp_path: Path) -> None:
    dry = bundled(fake, tmp_path, "evaluation.max_cost_usd=0.001").run(dry_run=True)
    assert dry.status == "dry_run" and dry.exit_code() == 0
    assert dry.estimate is not None and dry.estimate.cost_usd > 0.001
    warning = [w for w in dry.warnings if w.startswith("estimated judge cost")]
    assert warning == [
        f"estimated judge cost ${dry.estimate.cost_usd:.4f} is above evaluation.max_cost_usd $0.0010: "
        f"about {0.001 / dry.estimate.cost_usd:.0%} of the planned calls fit; the rest will be deferred to later runs"
    ]
    assert fake.state.attempts == 0
