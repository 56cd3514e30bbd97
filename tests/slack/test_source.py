"""SlackDataSource + thread_to_item through slack_sdk against the fake Slack Web API."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from fakes.slack_server import SlackServer

from shared.errors import ConfigError, SourceError
from shared.evaluation.item import DatasetItem
from shared.monitoring.sources.base import build_source
from shared.monitoring.window import Window
from shared.settings import Settings
from shared.slack.source import SlackDataSource
from shared.slack.thread import SlackThread, thread_to_item

from .workspace import LABELS, seed, ts, window


def make_source(settings: Settings, **params: Any) -> SlackDataSource:
    params.setdefault("channels", ["C1", "C2"])
    source = build_source("slack", params, settings=settings, base_dir=Path.cwd())
    assert isinstance(source, SlackDataSource)
    return source


def fetch(source: SlackDataSource, win: Window | None = None) -> list[SlackThread]:
    async def go() -> list[SlackThread]:
        try:
            return [t async for t in source.fetch(win or window())]
        finally:
            await source.aclose()

    return asyncio.run(go())


def test_threads_in_the_window_newest_first_across_channels(
    slack_server: SlackServer, slack_settings: Settings
) -> None:
    seed(slack_server.state)
    source = make_source(slack_settings)
    threads = fetch(source)
    assert [t.item_id for t in threads] == sorted(LABELS, key=lambda i: i.split(":")[1], reverse=True)
    assert source.ordering == "newest_first"
    assert source.source_key == "slack"
    skipped = source.stats.extra["skipped"]
    assert skipped == {"system_message": 1, "assistant_started": 1, "bot": 1}
    # replies are only fetched for threads that have replies
    assert slack_server.state.call_count("conversations.replies") == 3


def test_thread_becomes_a_conversation_item(slack_server: SlackServer, slack_settings: Settings) -> None:
    seed(slack_server.state)
    items = {t.item_id: thread_to_item(t) for t in fetch(make_source(slack_settings))}
    refund = items[f"C1:{ts(100)}"]
    assert isinstance(refund, DatasetItem)
    assert refund.query == "What is the refund policy?"
    assert refund.actual_output == "Refunds within 90 days."
    assert [m.role for m in refund.conversation or []] == ["user", "assistant", "user"]
    assert refund.latency == pytest.approx(30.0)
    assert refund.source_timestamp is not None and refund.source_timestamp.timestamp() == pytest.approx(float(ts(100)))
    assert refund.additional_output["feedback"] == {"positive": 0, "negative": 1}
    assert refund.metadata["permalink"] == f"https://fake-team.slack.com/archives/C1/p{ts(100).replace('.', '')}"
    quota = items[f"C2:{ts(200)}"]
    assert [m.role for m in quota.conversation or []] == ["user", "assistant", "human_agent"]
    unanswered = items[f"C2:{ts(300)}"]
    assert unanswered.actual_output is None and unanswered.latency is None


def test_filters(slack_server: SlackServer, slack_settings: Settings) -> None:
    seed(slack_server.state)
    ids = [t.item_id for t in fetch(make_source(slack_settings, exclude_users=["U2"]))]
    assert ids == [f"C2:{ts(200)}", f"C1:{ts(0)}"]
    ids = [t.item_id for t in fetch(make_source(slack_settings, include_regex=r"(?i)password|quota"))]
    assert ids == [f"C2:{ts(200)}", f"C1:{ts(0)}"]
    ids = [t.item_id for t in fetch(make_source(slack_settings, exclude_regex=r"\?$"))]
    assert ids == []
    with_bots = fetch(make_source(slack_settings, channels=["C1"], include_bots=True))
    deploy = next(t for t in with_bots if t.thread_ts == ts(70))
    assert [m.role for m in thread_to_item(deploy).conversation or []] == ["user", "assistant"]


def test_configured_bot_ids_and_human_agents(slack_server: SlackServer, slack_settings: Settings) -> None:
    seed(slack_server.state)
    # The reader token is not the assistant: name the assistant, and say who the agents are.
    source = make_source(slack_settings, channels=["C2"], bot_user_ids=["BBOT"], human_agent_ids=["U9"])
    items = [thread_to_item(t) for t in fetch(source)]
    assert [m.role for m in items[1].conversation or []] == ["user", "assistant", "human_agent"]


def test_replies_are_fetched_concurrently_within_the_bound(slack_server: SlackServer, slack_settings: Settings) -> None:
    state = slack_server.state
    state.replies_delay_s = 0.05
    for i in range(24):
        state.add_thread(
            "C1",
            [{"ts": ts(i * 10), "user": "U1", "text": f"q{i}"}, {"ts": ts(i * 10 + 1), "bot_id": "BBOT", "text": "a"}],
        )
    threads = fetch(make_source(slack_settings, channels=["C1"], max_concurrency=4, page_size=5))
    assert len(threads) == 24
    assert [t.thread_ts for t in threads] == sorted((t.thread_ts for t in threads), reverse=True)
    assert 2 <= state.max_in_flight_replies <= 4


def test_rate_limited_history_is_retried(slack_server: SlackServer, slack_settings: Settings) -> None:
    seed(slack_server.state)
    slack_server.state.fail_next("conversations.history", status=429, retry_after=0)
    assert len(fetch(make_source(slack_settings))) == len(LABELS)


def test_bad_token_and_unknown_channel_fail_the_source(slack_server: SlackServer, slack_settings: Settings) -> None:
    seed(slack_server.state)
    bad = Settings(slack_bot_token="xoxb-nope", slack_api_url=slack_server.url)
    with pytest.raises(ConfigError, match="invalid_auth"):  # a config error: exit 2
        fetch(make_source(bad))
    with pytest.raises(SourceError, match="channel_not_found"):
        fetch(make_source(slack_settings, channels=["CMISSING"]))


def test_params_are_validated_at_config_load() -> None:
    settings = Settings()  # no token needed to validate a config
    with pytest.raises(ConfigError, match="include_regex"):
        make_source(settings, include_regex="(")
    with pytest.raises(ConfigError, match=r"valid: .*channels"):
        make_source(settings, channel="C1")
    with pytest.raises(ConfigError, match="channels"):
        build_source("slack", {}, settings=settings, base_dir=Path.cwd())


def test_a_thread_longer_than_a_page_holds_each_message_once(
    slack_server: SlackServer, slack_settings: Settings
) -> None:
    """Slack repeats the parent on every replies page; the item must not read it as a follow-up."""
    from fakes.slack_server import FakeSlack

    from shared.evaluation.metric import build_metric

    state: FakeSlack = slack_server.state
    bot = state.bot_id
    turns: list[dict[str, Any]] = [{"ts": ts(0), "user": "U1", "text": "How do I rotate the API key?"}]
    for i in range(1, 12):  # a back-and-forth over several pages of 4
        who = {"bot_id": bot} if i % 2 else {"user": "U1"}
        turns.append({"ts": ts(10 * i), **who, "text": f"step {i}"})
    turns.append({"ts": ts(200), "user": "U1", "text": "all good now, thanks"})
    state.add_thread("C1", turns)

    (thread,) = fetch(make_source(slack_settings, channels=["C1"], page_size=4))
    assert state.call_count("conversations.replies") == 4  # 12 replies, 3 per page after the parent
    assert [m["ts"] for m in thread.messages] == [t["ts"] for t in turns]
    item = thread_to_item(thread)
    assert item.additional_output["replies"] == 12
    assert [m.content for m in item.conversation or []].count("How do I rotate the API key?") == 1
    result = asyncio.run(build_metric("unresolved").execute(item))
    assert result.score == 0.0, result.explanation


def test_a_record_with_repeated_messages_keeps_one_per_ts() -> None:
    """Threads exported before the fix (or by another tool) may hold the parent twice."""
    parent = {"ts": ts(0), "user": "U1", "text": "q"}
    answer = {"ts": ts(5), "bot_id": "BBOT", "text": "a"}
    thread = SlackThread(
        channel="C1", thread_ts=ts(0), messages=[parent, answer, parent, answer], assistant_ids=["BBOT"]
    )
    assert thread.messages == [parent, answer]
