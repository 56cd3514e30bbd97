"""What the judge client reads from a Chat Completions answer: servers that omit usage, send token
counts as floats, or answer with something that is not a completion (self-hosted judges do)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import SecretStr

from shared.evaluation import DatasetItem, EvaluationConfig, EvaluationResult, MetricContext, build_metric, evaluate
from shared.settings import Settings

ANSWER = json.dumps({"score": 4, "label": "good", "reasoning": "Grounded."})


def completion(usage: Any = "omit") -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": "c1",
        "object": "chat.completion",
        "created": 0,
        "model": "judge",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}],
    }
    if usage != "omit":
        body["usage"] = usage
    return body


def judge_once(answer: dict[str, Any], tmp_path: Path) -> EvaluationResult:
    """One llm_judge call against a loopback server that always sends `answer`."""

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response(answer)

    async def go() -> EvaluationResult:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        metric = build_metric("llm_judge", params={"cache": False, "max_retries": 0})
        settings = Settings(
            _env_file=None,
            openai_api_key=SecretStr("k"),
            openai_base_url=f"http://127.0.0.1:{port}/v1",
            langfuse_public_key=None,
            langfuse_secret_key=None,
        )
        evaluation = EvaluationConfig(concurrency=1, retries=0, timeout_s=30)
        await metric.setup(MetricContext(settings=settings, base_dir=tmp_path, evaluation=evaluation))
        try:
            item = DatasetItem(id="i1", query="What is covered?", actual_output="Fire damage [1].")
            return await evaluate([item], [metric], evaluation)
        finally:
            await metric.aclose()
            await runner.cleanup()

    return asyncio.run(go())


def test_reported_usage_is_what_the_row_records(tmp_path: Path) -> None:
    row = judge_once(completion({"prompt_tokens": 321, "completion_tokens": 12.0, "total_tokens": 333}), tmp_path).rows[
        0
    ]
    assert row.status.value == "ok" and row.result.score is not None
    assert (row.result.input_tokens, row.result.output_tokens) == (321, 12)


def test_an_answer_without_usage_is_scored_with_estimated_tokens(tmp_path: Path) -> None:
    row = judge_once(completion(), tmp_path).rows[0]
    assert row.status.value == "ok" and row.result.score is not None
    assert row.result.input_tokens > 0 and row.result.output_tokens > 0


def test_an_answer_that_is_not_a_completion_is_an_error_row(tmp_path: Path) -> None:
    row = judge_once({"object": "list", "data": []}, tmp_path).rows[0]
    assert row.status.value == "error"
    assert "choices" in (row.result.error or "")
