"""LangfusePromptManager through the real langfuse SDK against the fake Langfuse server."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from fakes.langfuse_prompts import FakeLangfusePrompts as FakeLangfuse

from shared.langfuse.prompt import (
    LangfusePromptManager,
    ManagedPrompt,
    PromptChange,
    PromptCompileError,
    PromptUnavailableError,
)
from shared.langfuse.prompt_cache import StampFilePromptStamps

from .conftest import lf_settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def manager(fake: FakeLangfuse | None, **kwargs: object) -> LangfusePromptManager:
    kwargs.setdefault("max_retries", 0)
    return LangfusePromptManager(lf_settings(fake), **kwargs)


def test_get_serves_production_label_from_cache_until_ttl(langfuse: FakeLangfuse) -> None:
    clock = Clock()
    m = manager(langfuse, ttl_s=60, clock=clock)
    m.client.create_prompt(name="judge", prompt="Rate {{answer}}", labels=["production"], config={"model": "m1"})
    m.client.create_prompt(name="judge", prompt="Draft {{answer}}", labels=["staging"])

    first = m.get("judge")
    assert (first.version, first.prompt, first.label, first.config) == (
        1,
        "Rate {{answer}}",
        "production",
        {"model": "m1"},
    )
    assert not first.is_fallback
    assert m.get("judge") == first
    assert langfuse.gets() == 1  # the second get was a cache hit
    assert (m.stats.hits, m.stats.misses) == (1, 1)

    assert m.get("judge", label="staging").version == 2
    assert m.get("judge", version=2).prompt == "Draft {{answer}}"

    clock.now += 61
    m.get("judge")
    assert langfuse.gets() == 4  # expired: fetched again


def test_mark_stale_makes_next_get_fetch_the_new_version(langfuse: FakeLangfuse) -> None:
    m = manager(langfuse, ttl_s=600)
    m.client.create_prompt(name="judge", prompt="v1", labels=["production"])
    assert m.get("judge").version == 1
    m.client.create_prompt(name="judge", prompt="v2", labels=["production"])
    assert m.get("judge").version == 1  # still cached
    assert m.mark_stale("judge") == 1
    assert m.get("judge").prompt == "v2"


def test_fallback_when_langfuse_unreachable_is_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    m = manager(None)
    with caplog.at_level(logging.WARNING, logger="shared.langfuse.prompt"):
        p = m.get("judge", fallback="Fallback {{answer}}")
    assert p.is_fallback and p.version is None and p.prompt == "Fallback {{answer}}"
    assert p.provenance()["prompt_is_fallback"] is True
    assert m.stats.fallbacks == 1 and m.stats.fetch_errors == 1
    assert any("FALLBACK" in r.getMessage() and "judge" in r.getMessage() for r in caplog.records)

    chat = m.get("chatty", fallback=[{"role": "system", "content": "Be {{tone}}"}])
    assert chat.type == "chat" and chat.compile(tone="brief") == [{"role": "system", "content": "Be brief"}]
    assert m.stats.fallbacks == 2

    with pytest.raises(PromptUnavailableError, match="unreachable"):
        m.get("judge")


def test_missing_prompt_without_fallback_says_it_does_not_exist(langfuse: FakeLangfuse) -> None:
    with pytest.raises(PromptUnavailableError, match="does not exist"):
        manager(langfuse).get("nope")


def test_cached_copy_is_served_when_langfuse_goes_down(langfuse: FakeLangfuse) -> None:
    clock = Clock()
    m = manager(langfuse, ttl_s=10, clock=clock)
    m.client.create_prompt(name="judge", prompt="v1", labels=["production"])
    assert m.get("judge").version == 1
    langfuse.stop()
    clock.now += 11
    served = m.get("judge", fallback="fallback")
    assert served.version == 1 and not served.is_fallback  # the last good copy beats the fallback
    assert m.stats.stale_served == 1 and m.stats.fetch_errors == 1


def test_compile_is_strict_by_default() -> None:
    p = ManagedPrompt(name="judge", version=3, label="production", prompt="Q: {{question}} A: {{ answer }}")
    assert p.variables == ["question", "answer"]
    assert p.compile(question="why", answer="because", unused="x") == "Q: why A: because"
    with pytest.raises(PromptCompileError, match=r"judge.*\['answer'\]"):
        p.compile(question="why")
    assert p.compile(strict=False, question="why") == "Q: why A: {{ answer }}"
    assert p.provenance() == {
        "prompt_name": "judge",
        "prompt_version": 3,
        "prompt_label": "production",
        "prompt_is_fallback": False,
    }


def test_chat_prompt_compiles_messages_and_placeholders(langfuse: FakeLangfuse) -> None:
    m = manager(langfuse)
    m.create_or_update(
        "chat",
        [{"role": "system", "content": "You judge {{topic}}."}, {"type": "placeholder", "name": "history"}],
        labels=["production"],
    )
    p = m.get("chat")
    assert p.type == "chat" and p.placeholders == ["history"] and p.variables == ["topic"]
    history = [{"role": "user", "content": "about {{topic}}?"}]
    assert p.compile(topic="maps", history=history) == [
        {"role": "system", "content": "You judge maps."},
        {"role": "user", "content": "about maps?"},
    ]
    with pytest.raises(PromptCompileError, match="history"):
        p.compile(topic="maps")


def test_create_or_update_is_idempotent_and_promote_moves_the_label(langfuse: FakeLangfuse) -> None:
    m = manager(langfuse, ttl_s=600)
    changes: list[PromptChange] = []
    unsubscribe = m.on_change(changes.append)

    v1 = m.create_or_update("judge", "Rate {{answer}}", labels=["production"], config={"t": 0})
    again = m.create_or_update("judge", "Rate {{answer}}", labels=["production"], config={"t": 0})
    assert v1.version == again.version == 1
    assert len(langfuse.versions["judge"]) == 1  # no duplicate version

    v2 = m.create_or_update("judge", "Rate {{answer}} strictly", labels=["staging"])
    assert v2.version == 2
    assert m.get("judge").version == 1  # production still on v1

    promoted = m.promote_version("judge", 2)
    assert promoted.version == 2 and "production" in promoted.labels
    assert m.get("judge").prompt == "Rate {{answer}} strictly"  # no wait for the TTL
    assert "production" not in langfuse.versions["judge"][0]["labels"]
    assert [(c.name, c.version, c.source) for c in changes] == [("judge", 1, "local")] * 2 + [("judge", 2, "local")] * 2

    unsubscribe()
    m.create_or_update("judge", "v3")
    assert len(changes) == 4


def test_failing_listener_is_counted_not_raised(langfuse: FakeLangfuse) -> None:
    m = manager(langfuse)

    def broken(change: PromptChange) -> None:
        raise RuntimeError("boom")

    m.on_change(broken)
    m.create_or_update("judge", "x", labels=["production"])
    assert m.stats.listener_errors == 1


def test_aget_runs_off_the_event_loop(langfuse: FakeLangfuse) -> None:
    m = manager(langfuse)
    m.client.create_prompt(name="judge", prompt="v1", labels=["production"])
    ticks: list[float] = []

    async def ticker() -> None:
        for _ in range(5):
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    async def main() -> list[ManagedPrompt]:
        results = await asyncio.gather(m.aget("judge"), m.aget("judge", version=1), ticker())
        return [r for r in results if isinstance(r, ManagedPrompt)]

    got = asyncio.run(main())
    assert [p.version for p in got] == [1, 1] and len(ticks) == 5


def test_stamp_file_invalidates_another_managers_cache(langfuse: FakeLangfuse, tmp_path: object) -> None:
    stamp = StampFilePromptStamps(f"{tmp_path}/stamps.json")
    reader = manager(langfuse, ttl_s=600, invalidation=StampFilePromptStamps(stamp.path), check_interval_s=0)
    writer = manager(langfuse, ttl_s=600, invalidation=stamp, check_interval_s=0)
    seen: list[PromptChange] = []
    reader.on_change(seen.append)
    writer.client.create_prompt(name="judge", prompt="v1", labels=["production"])
    assert reader.get("judge").version == 1

    writer.create_or_update("judge", "v2", labels=["production"])  # bumps the shared stamp
    assert reader.get("judge").version == 2
    assert reader.stats.remote_invalidations == 1
    assert [(c.name, c.source) for c in seen] == [("judge", "remote")]
    assert reader.get("judge").version == 2 and reader.stats.hits == 1  # cached again afterwards


def test_check_interval_limits_how_often_stamps_are_read(langfuse: FakeLangfuse, tmp_path: object) -> None:
    clock = Clock()
    stamps = StampFilePromptStamps(f"{tmp_path}/stamps.json")
    reads = 0
    real_snapshot = stamps.snapshot

    def counting_snapshot() -> dict[str, int]:
        nonlocal reads
        reads += 1
        return real_snapshot()

    stamps.snapshot = counting_snapshot
    m = manager(langfuse, ttl_s=600, invalidation=stamps, check_interval_s=2.0, clock=clock)
    m.client.create_prompt(name="judge", prompt="v1", labels=["production"])
    for _ in range(5):
        m.get("judge")
    assert reads == 1
    clock.now += 2.5
    m.get("judge")
    assert reads == 2
