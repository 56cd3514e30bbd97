"""A small labelled Slack workspace for the source and metric tests.

T0 is the first question; every thread's label (what the Slack metrics should say) is in LABELS.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fakes.slack_server import FakeSlack

from shared.monitoring.window import Window
from shared.slack.thread import SlackThread

T0 = 1_763_000_000  # 2025-11-13T02:13:20Z


def ts(offset_s: float) -> str:
    return f"{T0 + offset_s:.6f}"


def window(start_s: float = -60, end_s: float = 3600) -> Window:
    base = datetime.fromtimestamp(T0, UTC)
    return Window(since=base + timedelta(seconds=start_s), until=base + timedelta(seconds=end_s), explicit=True)


def react(name: str, *users: str) -> list[dict[str, object]]:
    return [{"name": name, "count": len(users), "users": list(users)}]


# thread id -> label per Slack metric (None: the metric skips the thread)
LABELS: dict[str, dict[str, float | None]] = {
    # answered in 12 s, thumbs up, "thanks!"
    f"C1:{ts(0)}": {"response_latency": 12.0, "negative_feedback": 0.0, "unresolved": 0.0, "escalation": 0.0},
    # thumbs down, then the user says the answer is wrong and nobody answers again
    f"C1:{ts(100)}": {"response_latency": 30.0, "negative_feedback": 1.0, "unresolved": 1.0, "escalation": 0.0},
    # a support engineer takes over after the assistant's answer
    f"C2:{ts(200)}": {"response_latency": 5.0, "negative_feedback": 0.0, "unresolved": 0.0, "escalation": 1.0},
    # never answered
    f"C2:{ts(300)}": {"response_latency": None, "negative_feedback": None, "unresolved": 1.0, "escalation": 0.0},
}


def labelled_threads(state: FakeSlack) -> list[SlackThread]:
    """The labelled threads as the source would yield them, read straight from the fake's state."""
    out = []
    for item_id in LABELS:
        channel, thread_ts = item_id.split(":")
        parent = next(m for m in state.history[channel] if m["ts"] == thread_ts)
        messages = [parent, *state.replies.get((channel, thread_ts), [])]
        out.append(SlackThread(channel=channel, thread_ts=thread_ts, messages=messages, assistant_ids=["UBOT", "BBOT"]))
    return out


def seed(state: FakeSlack) -> None:
    bot = state.bot_id
    state.add_user("U1", "ana")
    state.add_user("U2", "ben")
    state.add_user("U9", "support")
    state.add_thread(
        "C1",
        [
            {"ts": ts(0), "user": "U1", "text": "How do I reset my password?"},
            {"ts": ts(12), "bot_id": bot, "text": "Open Settings > Security.", "reactions": react("+1", "U1")},
            {"ts": ts(40), "user": "U1", "text": "thanks!"},
        ],
    )
    state.add_thread(
        "C1",
        [
            {"ts": ts(100), "user": "U2", "text": "What is the refund policy?"},
            {
                "ts": ts(130),
                "bot_id": bot,
                "text": "Refunds within 90 days.",
                "reactions": react("-1::skin-tone-3", "U2"),
            },
            {"ts": ts(160), "user": "U2", "text": "That's wrong, it is 30 days."},
        ],
    )
    state.add_thread(
        "C2",
        [
            {"ts": ts(200), "user": "U1", "text": "Can I get a bigger quota?"},
            {"ts": ts(205), "bot_id": bot, "text": "Quotas are fixed."},
            {"ts": ts(260), "user": "U9", "text": "I can raise it for you, DM me."},
        ],
    )
    state.add_thread("C2", [{"ts": ts(300), "user": "U2", "text": "Is anyone there?"}])
    # Noise the source must skip:
    state.add_thread("C1", [{"ts": ts(50), "subtype": "channel_join", "user": "U2", "text": "<@U2> joined"}])
    state.add_thread("C1", [{"ts": ts(60), "bot_id": bot, "user": state.bot_user_id, "text": "evalmon alert"}])
    state.add_thread(
        "C1",
        [
            {"ts": ts(70), "bot_id": "BOTHER", "subtype": "bot_message", "username": "deploybot", "text": "deploy?"},
            {"ts": ts(75), "bot_id": bot, "text": "Deploys run at 5pm."},
        ],
    )
    state.add_thread("C1", [{"ts": ts(-3600), "user": "U1", "text": "old question"}])  # before the window
