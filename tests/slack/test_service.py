"""SlackService through slack_sdk against the fake Slack Web API."""

from __future__ import annotations

import asyncio
import time

import pytest
from fakes.slack_server import SlackServer

from shared.errors import ConfigError, TransientError
from shared.settings import Settings
from shared.slack.service import SlackError, SlackService


def test_post_and_update_a_block_kit_message(slack_server: SlackServer, slack_settings: Settings) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*hello*"}}]

    async def go() -> str:
        async with SlackService(slack_settings) as slack:
            ts = await slack.post_message("C1", "hello", blocks)
            await slack.update_message("C1", ts, "hello again")
            return ts

    ts = asyncio.run(go())
    posted = slack_server.state.posted
    assert [(m["channel"], m["ts"]) for m in posted] == [("C1", ts)]
    assert posted[0]["blocks"] == blocks
    assert posted[0]["text"] == "hello again"
    assert slack_server.state.updated[0]["ts"] == ts


def test_rate_limit_is_retried_honouring_retry_after(slack_server: SlackServer, slack_settings: Settings) -> None:
    slack_server.state.fail_next("chat.postMessage", status=429, retry_after=1, times=1)

    async def go() -> str:
        async with SlackService(slack_settings) as slack:
            return await slack.post_message("C1", "after the storm")

    started = time.monotonic()
    ts = asyncio.run(go())
    elapsed = time.monotonic() - started
    assert ts
    assert slack_server.state.call_count("chat.postMessage") == 2
    assert elapsed >= 1.0  # waited the Retry-After second
    assert len(slack_server.state.posted) == 1


def test_server_errors_are_retried_then_reported_as_transient(
    slack_server: SlackServer, slack_settings: Settings
) -> None:
    slack_server.state.fail_next("chat.postMessage", status=503, times=10)

    async def go() -> str:
        async with SlackService(slack_settings, max_retries=2, retry_backoff_s=0.01) as slack:
            return await slack.post_message("C1", "x")

    with pytest.raises(TransientError):
        asyncio.run(go())
    assert slack_server.state.call_count("chat.postMessage") == 3
    assert slack_server.state.posted == []


def test_bad_token_is_a_slack_error_without_the_token(slack_server: SlackServer, slack_settings: Settings) -> None:
    async def go() -> None:
        async with SlackService(slack_settings, token="xoxb-wrong-secret") as slack:
            await slack.post_message("C1", "x")

    with pytest.raises(SlackError) as info:
        asyncio.run(go())
    assert info.value.error == "invalid_auth"
    assert "xoxb-wrong-secret" not in str(info.value)
    assert "xoxb" not in repr(SlackService(slack_settings))


def test_missing_token_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="SLACK_BOT_TOKEN"):
        SlackService(Settings(slack_bot_token=None))


def test_unreachable_slack_is_transient() -> None:
    settings = Settings(slack_bot_token="xoxb-x", slack_api_url="http://127.0.0.1:9/api/")

    async def go() -> None:
        async with SlackService(settings, max_retries=1, retry_backoff_s=0.01) as slack:
            await slack.auth_test()

    with pytest.raises(TransientError):
        asyncio.run(go())


def test_history_and_replies_follow_cursors(slack_server: SlackServer, slack_settings: Settings) -> None:
    state = slack_server.state
    for i in range(5):
        state.add_thread("C1", [{"ts": f"1700000{i:03d}.000100", "user": "U1", "text": f"q{i}"}])
    state.add_thread(
        "C1",
        [{"ts": "1700000100.000100", "user": "U1", "text": "long"}]
        + [{"ts": f"1700000{200 + i}.000100", "user": "U2", "text": f"r{i}"} for i in range(7)],
    )

    async def go() -> tuple[list[list[str]], list[str], str]:
        async with SlackService(slack_settings) as slack:
            pages = [[m["ts"] for m in page] async for page in slack.history_pages("C1", limit=2)]
            thread = await slack.replies("C1", "1700000100.000100", limit=3)
            me = await slack.auth_test()
            return pages, [m["text"] for m in thread], me.user_id

    pages, texts, user_id = asyncio.run(go())
    assert [len(p) for p in pages] == [2, 2, 2]
    flat = [ts for page in pages for ts in page]
    assert flat == sorted(flat, reverse=True)  # newest first
    # Slack heads every replies page with the parent (limit 3 = parent + 2 replies): 4 pages, and
    # the thread still holds the question once.
    assert texts == ["long"] + [f"r{i}" for i in range(7)]
    assert state.call_count("conversations.replies") == 4
    assert user_id == state.bot_user_id


def test_check_rides_out_a_blip_and_tells_a_bad_token_from_an_outage(
    slack_server: SlackServer, slack_settings: Settings
) -> None:
    state = slack_server.state
    state.fail_next("auth.test", status=503, times=1)
    state.fail_next("auth.test", status=429, retry_after=0, times=1)

    async def check(settings: Settings, max_retries: int = 3) -> str:
        async with SlackService(settings, max_retries=max_retries, retry_backoff_s=0.01) as slack:
            return (await slack.check()).user_id

    assert asyncio.run(check(slack_settings)) == state.bot_user_id
    assert state.call_count("auth.test") == 3

    bad = Settings(slack_bot_token="xoxb-revoked", slack_api_url=slack_server.url)
    with pytest.raises(ConfigError, match="Slack rejected the bot token") as caught:
        asyncio.run(check(bad))
    assert "xoxb-revoked" not in str(caught.value)
    assert state.call_count("auth.test") == 4  # a rejected token is not retried

    state.fail_next("auth.test", status=500, times=10)
    with pytest.raises(TransientError):
        asyncio.run(check(slack_settings, max_retries=2))
    assert state.call_count("auth.test") == 7  # bounded: 1 + 2 retries
