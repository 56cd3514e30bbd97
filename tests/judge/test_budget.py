"""The run budget spends what it is given: expected-cost reservations, worst-case safety, clear stops."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.evaluation import MetricStatus, build_metric
from shared.metrics.judge_cost import BudgetExhausted, RunBudget, budget_stop_warning
from tests.fakes.openai_server import OpenAIServer
from tests.judge.helpers import items, run

PRICE = 100.0  # USD per 1M tokens, input and output alike: a call of ~200 tokens costs ~$0.02
MAX_TOKENS = 512


def uneven_judge(body: dict[str, Any]) -> str:
    """Every fourth answer is long (~300 tokens): single calls stray far from the average."""
    text = body["messages"][-1]["content"]
    number = int(text.split("policy ", 1)[1].split("?", 1)[0])
    reasoning = "Grounded. " * (120 if number % 4 == 0 else 1)
    return json.dumps({"score": 4, "label": "good", "reasoning": reasoning})


@pytest.fixture
def fake() -> Iterator[OpenAIServer]:
    with OpenAIServer() as server:
        server.state.latency_s = 0.03
        server.state.responder = uneven_judge
        yield server


@pytest.mark.parametrize("concurrency", [1, 4, 16])
def test_budget_is_spent_before_items_are_deferred(fake: OpenAIServer, tmp_path: Path, concurrency: int) -> None:
    cap = 0.60  # about 25 of the 80 calls
    metric = build_metric(
        "llm_judge",
        params={"model": "judge-x", "prices": {"judge-x": {"input": PRICE, "output": PRICE}}, "cache": False},
    )
    result, context = run(
        [metric], items(80), server=fake, base_dir=tmp_path, max_cost_usd=cap, concurrency=concurrency
    )
    ok = [r for r in result if r.status is MetricStatus.OK]
    deferred = [r for r in result if r.status is MetricStatus.DEFERRED]
    assert ok and deferred and len(ok) + len(deferred) == 80
    spent = result.cost_usd
    worst_call = max((r.result.input_tokens or 0) + MAX_TOKENS for r in ok) * PRICE / 1e6
    assert spent >= 0.9 * cap, f"spent {spent:.4f} of {cap} before deferring"
    assert spent <= cap + worst_call
    assert fake.state.completions == len(ok)  # a call that was made is a row that was scored
    budget = context.shared["judge.budget"]
    assert budget.spent_usd == pytest.approx(spent)
    reason = deferred[0].result.explanation or ""
    assert f"run budget of ${cap:.4f} reached: spent $" in reason and "left" in reason
    assert all(r.result.signals.get("deferred_by") == "budget" for r in deferred)


def test_budget_waits_for_calls_in_flight_instead_of_deferring() -> None:
    async def go() -> tuple[RunBudget, list[str]]:
        budget = RunBudget(1.0)
        events: list[str] = []
        first = await budget.reserve(0.2, worst=0.6)
        await budget.reserve(0.2, worst=0.6)

        async def third() -> None:
            await budget.reserve(0.2, worst=0.6)  # fits by expected cost, not with the worst cases in flight
            events.append("third admitted")

        waiter = asyncio.create_task(third())
        await asyncio.sleep(0.01)
        events.append("first settles")
        budget.settle(first, 0.2)  # 0.2 spent + 0.6 worst in flight: the third may go
        await waiter
        return budget, events

    budget, events = asyncio.run(go())
    assert events == ["first settles", "third admitted"]
    assert budget.waited == 1 and budget.spent_usd == pytest.approx(0.2)


def test_budget_defers_only_when_the_money_is_not_there() -> None:
    async def go() -> RunBudget:
        budget = RunBudget(1.0)
        first = await budget.reserve(0.6)
        waiting = asyncio.create_task(budget.reserve(0.6))  # 0.6 in flight + 0.6 > 1.0: wait for the first
        await asyncio.sleep(0.01)
        assert not waiting.done()
        budget.settle(first, 0.5)  # spent 0.5 + 0.6 > 1.0 with nothing in flight: deferred
        with pytest.raises(BudgetExhausted, match=r"spent \$0.5000, \$0.5000 left"):
            await waiting
        with pytest.raises(BudgetExhausted):  # once reached, closed for the rest of the run
            await budget.reserve(0.01)
        return budget

    budget = asyncio.run(go())
    assert budget.exhausted and budget.refused == 2


def test_budget_stop_warning_says_spent_left_and_deferred() -> None:
    assert budget_stop_warning(0.5, 0.4712, 37) == (
        "judge budget (evaluation.max_cost_usd $0.5000) reached: spent $0.4712, $0.0288 left; "
        "37 item(s) deferred to the next run"
    )
    assert budget_stop_warning(0.5, 0.1, 0) is None
    assert budget_stop_warning(None, 0.1, 3) is None
