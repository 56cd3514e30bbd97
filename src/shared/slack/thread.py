"""A Slack thread as a source record, and the pure function that turns it into a `DatasetItem`.

The record carries the raw Slack messages plus the assistant's identity, so the extractor needs
no network and no settings: roles are decided here, once, and every Slack metric reads them
from `item.conversation`.

Roles: the assistant (its user id or bot id is in `assistant_ids`) is `assistant`; the thread
starter and other askers are `user`; other people answering are `human_agent` (when
`human_agent_ids` is given only those people are agents, everyone else is a user). Messages of
other bots reach the record only when the source keeps them (`include_bots`); they count as users.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.errors import InvalidRecordError
from shared.evaluation.item import DatasetItem, Message
from shared.monitoring.extractors import register_extractor

# Reaction names (without skin tone) read as feedback on the assistant's answers.
NEGATIVE_REACTIONS: frozenset[str] = frozenset(
    {
        "-1",
        "thumbsdown",
        "x",
        "no_entry",
        "no_entry_sign",
        "disappointed",
        "confused",
        "angry",
        "rage",
        "slightly_frowning_face",
        "white_frowning_face",
        "face_with_raised_eyebrow",
        "thinking_face",
        "warning",
    }
)
POSITIVE_REACTIONS: frozenset[str] = frozenset(
    {
        "+1",
        "thumbsup",
        "white_check_mark",
        "heavy_check_mark",
        "tada",
        "raised_hands",
        "pray",
        "heart",
        "100",
        "star",
        "clap",
        "ok_hand",
    }
)


def unique_by_ts(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One message per `ts`, first occurrence kept, order unchanged.

    Slack repeats a thread's parent at the top of every page of `conversations.replies`, so a
    thread longer than one page would otherwise hold the question twice (and read as a user
    follow-up after the answers). A `ts` is unique within a channel; messages without one stay.
    """
    seen: set[str] = set()
    unique: list[dict[str, Any]] = []
    for message in messages:
        ts = message.get("ts") if isinstance(message, Mapping) else None
        if ts:
            if str(ts) in seen:
                continue
            seen.add(str(ts))
        unique.append(message)
    return unique


class SlackThread(BaseModel):
    """One thread as fetched: raw Slack messages, parent first, oldest first, one per `ts`."""

    model_config = ConfigDict(extra="forbid")

    channel: str = Field(min_length=1)
    thread_ts: str = Field(min_length=1)
    messages: list[dict[str, Any]] = Field(min_length=1)
    assistant_ids: list[str] = Field(default_factory=list, description="user ids and bot ids of the assistant")
    human_agent_ids: list[str] | None = None
    team_url: str | None = None

    @field_validator("messages")
    @classmethod
    def _one_per_ts(cls, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return unique_by_ts(messages)

    @property
    def item_id(self) -> str:
        return f"{self.channel}:{self.thread_ts}"

    def permalink(self) -> str | None:
        """Slack's permalink shape: `<team url>archives/<channel>/p<ts without the dot>`."""
        if not self.team_url:
            return None
        base = self.team_url if self.team_url.endswith("/") else self.team_url + "/"
        return f"{base}archives/{self.channel}/p{self.thread_ts.replace('.', '')}"


def ts_to_datetime(ts: str | None) -> datetime | None:
    """Slack ts (`"1700000000.000100"`, seconds since the epoch) to an aware UTC datetime."""
    if not ts:
        return None
    try:
        return datetime.fromtimestamp(float(Decimal(str(ts))), UTC)
    except (InvalidOperation, ValueError, OverflowError):
        return None


def datetime_to_ts(value: datetime) -> str:
    """An aware datetime as a Slack ts string (microsecond precision)."""
    return f"{value.timestamp():.6f}"


def reaction_counts(message: Mapping[str, Any]) -> dict[str, int]:
    """`reactions: [{name, count, users}]` -> `{name: count}`, skin tones folded (`+1::skin-tone-2`)."""
    counts: dict[str, int] = {}
    for reaction in message.get("reactions") or []:
        if not isinstance(reaction, Mapping) or not reaction.get("name"):
            continue
        name = str(reaction["name"]).split("::", 1)[0]
        count = reaction.get("count")
        if not isinstance(count, int):
            count = len(reaction.get("users") or []) or 1
        counts[name] = counts.get(name, 0) + count
    return counts


def is_assistant(message: Mapping[str, Any], assistant_ids: set[str]) -> bool:
    return bool(
        (message.get("user") and message["user"] in assistant_ids)
        or (message.get("bot_id") and message["bot_id"] in assistant_ids)
    )


def is_bot(message: Mapping[str, Any]) -> bool:
    return bool(message.get("bot_id")) or message.get("subtype") == "bot_message"


def author(message: Mapping[str, Any]) -> str:
    return str(message.get("user") or message.get("bot_id") or message.get("username") or "")


def assign_roles(thread: SlackThread) -> list[Message]:
    """Each Slack message as a `Message` with its role, timestamp, author and reactions."""
    assistant_ids = set(thread.assistant_ids)
    agents = set(thread.human_agent_ids) if thread.human_agent_ids is not None else None
    starter: str | None = None
    out: list[Message] = []
    for raw in thread.messages:
        who = author(raw)
        if is_assistant(raw, assistant_ids):
            role = "assistant"
        elif is_bot(raw):
            role = "user"
        elif agents is not None:
            role = "human_agent" if who in agents else "user"
        else:
            if starter is None:
                starter = who
            role = "user" if who == starter else "human_agent"
        out.append(
            Message(
                role=role,
                content=str(raw.get("text") or ""),
                name=raw.get("username") or raw.get("user_profile", {}).get("display_name") or None,
                timestamp=ts_to_datetime(raw.get("ts")),
                user=who,
                ts=raw.get("ts"),
                reactions=reaction_counts(raw),
            )
        )
    return out


def first_answer_latency(conversation: list[Message]) -> float | None:
    """Seconds from the first user message to the first assistant message after it."""
    asked: datetime | None = None
    for message in conversation:
        if message.role == "user" and asked is None:
            asked = message.timestamp
        elif message.role == "assistant" and asked is not None and message.timestamp is not None:
            return max(0.0, (message.timestamp - asked).total_seconds())
    return None


@register_extractor("slack_thread")
def thread_to_item(record: SlackThread | Mapping[str, Any] | Any) -> DatasetItem:
    """The default extractor of `source.type: slack` (item id `<channel>:<thread_ts>`)."""
    if isinstance(record, SlackThread):
        thread = record
    else:  # an exported line (shared.slack.exporter): keep the thread's own fields, drop id/timestamp
        raw = getattr(record, "raw", None)  # the file source wraps JSON lines in a Trace record
        data = raw if isinstance(raw, Mapping) else record
        if not isinstance(data, Mapping):
            raise InvalidRecordError(f"not a Slack thread: {type(record).__name__}")
        try:
            thread = SlackThread.model_validate({k: v for k, v in data.items() if k in SlackThread.model_fields})
        except ValidationError as exc:
            raise InvalidRecordError(f"not a Slack thread: {exc.errors()[0]['msg']}") from None
    conversation = assign_roles(thread)
    users = [m for m in conversation if m.role == "user"]
    answers = [m for m in conversation if m.role == "assistant"]
    if not users:
        raise InvalidRecordError(f"Slack thread {thread.item_id} has no user message")
    reactions: dict[str, int] = {}
    for message in answers:
        for name, count in (getattr(message, "reactions", None) or {}).items():
            reactions[name] = reactions.get(name, 0) + count
    feedback = {
        "positive": sum(c for n, c in reactions.items() if n in POSITIVE_REACTIONS),
        "negative": sum(c for n, c in reactions.items() if n in NEGATIVE_REACTIONS),
    }
    parent = thread.messages[0]
    return DatasetItem(
        id=thread.item_id,
        query=users[0].content,
        actual_output="\n\n".join(m.content for m in answers) if answers else None,
        conversation=conversation,
        latency=first_answer_latency(conversation),
        session_id=thread.item_id,
        source_timestamp=ts_to_datetime(thread.thread_ts),
        additional_output={
            "reactions": reactions,
            "feedback": feedback,
            "assistant_messages": len(answers),
            "replies": len(thread.messages) - 1,
        },
        metadata={
            "source": "slack",
            "channel": thread.channel,
            "thread_ts": thread.thread_ts,
            "permalink": thread.permalink(),
            "starter": author(parent),
            "participants": sorted({str(getattr(m, "user", "")) for m in conversation} - {""}),
            "human_agent_messages": sum(1 for m in conversation if m.role == "human_agent"),
        },
    )
