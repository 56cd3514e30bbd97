"""Limiter, breaker, budget and cache on their own (no judge involved)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from shared.metrics.judge_cache import JudgeCache, cache_key
from shared.metrics.judge_cost import ModelPrice, PriceTable
from shared.metrics.judge_limits import CircuitBreaker, RateLimiter


def test_request_limiter_holds_the_rate() -> None:
    limiter = RateLimiter(requests_per_minute=2400)  # 40/s, burst of 0.1 s = 4

    async def go() -> float:
        started = time.monotonic()
        await asyncio.gather(*(limiter.acquire() for _ in range(40)))
        return time.monotonic() - started

    elapsed = asyncio.run(go())
    assert 0.8 <= elapsed < 1.5  # 4 at once, then 36 more at 40/s


def test_token_limiter_counts_tokens_and_real_usage() -> None:
    limiter = RateLimiter(tokens_per_minute=60_000)  # 1000 tokens/s

    async def go() -> float:
        await limiter.acquire(1000)  # a second of quota at once: 900 tokens of debt
        limiter.adjust(500)  # the call really used 500 more than estimated
        started = time.monotonic()
        await limiter.acquire(500)
        return time.monotonic() - started

    assert asyncio.run(go()) >= 1.3  # 1400 tokens of debt, then a 100-token burst, at 1000/s


def test_breaker_opens_after_consecutive_failures_only() -> None:
    breaker = CircuitBreaker(3)
    for _ in range(2):
        breaker.record_failure("boom")
    breaker.record_success()
    breaker.record_failure("boom")
    breaker.record_failure("boom")
    assert not breaker.is_open
    breaker.record_failure("boom")
    assert breaker.is_open


def test_price_table_prefix_override_and_file(tmp_path: Path) -> None:
    file = tmp_path / "prices.yaml"
    file.write_text("my-vllm-model: {input: 1.0, output: 2.0}\n")
    table = PriceTable.from_config({"gpt-4o-mini": {"input": 10, "output": 20}}, file)
    assert table.cost("gpt-4o-mini-2024-07-18", 1_000_000, 0) == pytest.approx(10.0)
    assert table.cost("my-vllm-model", 500_000, 500_000) == pytest.approx(1.5)
    assert table.cost("gpt-4o", 1_000_000, 1_000_000) == pytest.approx(12.5)  # default kept
    assert table.cost("unknown-model", 10, 10) == 0.0
    assert PriceTable({"x": ModelPrice(input=1, output=1)}).price("x-1") is not None


def test_cache_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "judge.sqlite"
    key = cache_key(model="m", messages=[{"role": "user", "content": "hi"}])
    cache = JudgeCache(path)
    cache.put(
        key, model="m", prompt_name="p", prompt_version="1", content="{}", input_tokens=3, output_tokens=1, cost_usd=0.5
    )
    cache.close()
    reopened = JudgeCache(path)
    hit = reopened.get(key)
    assert hit is not None and hit.content == "{}" and hit.cost_usd == 0.5
    assert reopened.get(cache_key(model="m", messages=[])) is None
    reopened.close()


def test_cache_written_before_prompt_chars_gains_the_column_and_reports_prompt_stats(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as old:  # the layout of caches written before prompt_chars
        old.execute(
            "CREATE TABLE judge_cache (key TEXT PRIMARY KEY, model TEXT NOT NULL, prompt_name TEXT, prompt_version TEXT,"
            " content TEXT NOT NULL, input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,"
            " cost_usd REAL NOT NULL, created_at REAL NOT NULL)"
        )
        old.execute("INSERT INTO judge_cache VALUES ('k0', 'm', 'rubric', '1', '{}', 100, 30, 0.1, 1.0)")
    cache = JudgeCache(path)
    cache.put(
        "k1",
        model="m",
        prompt_name="rubric",
        prompt_version="2",
        content="{}",
        input_tokens=100,
        output_tokens=10,
        cost_usd=0.1,
        prompt_chars=400,
    )
    cache.put(
        "k2",
        model="m",
        prompt_name="claims",
        prompt_version="1",
        content="{}",
        input_tokens=50,
        output_tokens=99,
        cost_usd=0.1,
        prompt_chars=200,
    )
    stats = cache.prompt_stats("m", "rubric")
    assert (stats.answers, stats.output_tokens) == (2, 40)  # both versions, old row included
    assert (stats.prompt_chars, stats.input_tokens) == (400, 100)  # only rows that know their prompt length
    assert cache.prompt_stats("other-model", "rubric").answers == 0
    cache.close()
