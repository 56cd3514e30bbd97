"""Run judge metrics the way a monitor does: setup on a shared context, the runner, aclose."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from shared.evaluation import BaseMetric, DatasetItem, EvaluationConfig, EvaluationResult, MetricContext, evaluate
from shared.settings import Settings
from tests.fakes.openai_server import OpenAIServer


def judge_settings(server: OpenAIServer | None) -> Settings:
    """Settings pointing at the fake judge, with Langfuse explicitly unconfigured."""
    return Settings(
        _env_file=None,
        openai_api_key=SecretStr(server.state.api_key) if server else None,
        openai_base_url=server.base_url if server else None,
        langfuse_public_key=None,
        langfuse_secret_key=None,
    )


def items(n: int, *, prefix: str = "item") -> list[DatasetItem]:
    return [
        DatasetItem(
            id=f"{prefix}-{i}",
            query=f"What is the premium for policy {i}?",
            actual_output=f"The premium for policy {i} is {100 + i} EUR [1].",
            retrieved_content=[f"Policy {i}: annual premium {100 + i} EUR."],
        )
        for i in range(n)
    ]


def run(
    metrics: Sequence[BaseMetric],
    data: Sequence[DatasetItem],
    *,
    server: OpenAIServer | None,
    base_dir: Path,
    max_cost_usd: float | None = None,
    dry_run: bool = False,
    concurrency: int = 4,
    shared: dict[str, Any] | None = None,
) -> tuple[EvaluationResult, MetricContext]:
    context = MetricContext(
        settings=judge_settings(server),
        base_dir=base_dir,
        evaluation=EvaluationConfig(concurrency=concurrency, retries=0, max_cost_usd=max_cost_usd, timeout_s=30),
        dry_run=dry_run,
        shared=shared if shared is not None else {},
    )

    async def go() -> EvaluationResult:
        for metric in metrics:
            await metric.setup(context)
        try:
            return await evaluate(data, metrics, context.evaluation)
        finally:
            for metric in metrics:
                await metric.aclose()

    return asyncio.run(go()), context
