"""Shared metrics for assistants that answer in Slack threads.

They read `item.conversation` with the roles `shared.slack.thread.thread_to_item` assigns
(`user`, `assistant`, `human_agent`), so any source producing such conversations can use them.
Three are 0/1 flags (their run mean is a rate: share of threads with negative feedback, left
unresolved, escalated); `response_latency` is in seconds. For all four, lower is better.
"""

from __future__ import annotations

import math
import re
from datetime import datetime

from pydantic import Field

from shared.evaluation.item import DatasetItem, Message
from shared.evaluation.metric import BaseMetric, MetricParams, MetricResult, metric
from shared.metrics._text import clip
from shared.patterns import Regex
from shared.slack.followups import read_follow_up
from shared.slack.thread import NEGATIVE_REACTIONS


def _conversation(item: DatasetItem) -> list[Message]:
    return list(item.conversation or [])


def _last_index(messages: list[Message], role: str) -> int | None:
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].role == role:
            return index
    return None


def _seconds(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    return max(0.0, (later - earlier).total_seconds())


@metric(
    key="response_latency",
    description="Seconds from the user's first question to the assistant's first answer in the thread.",
    required_fields=("conversation",),
    default_threshold=60.0,
    score_range=(0.0, math.inf),
    kind="heuristic",
    score_type="numeric",
    direction="lower_is_better",
)
class ResponseLatency(BaseMetric):
    """Skipped when the assistant never answered (that is `unresolved`, not a latency)."""

    async def execute(self, item: DatasetItem) -> MetricResult:
        messages = _conversation(item)
        first_user = next((m for m in messages if m.role == "user"), None)
        if first_user is None:
            return MetricResult.skipped("no user message")
        start = messages.index(first_user)
        answer = next((m for m in messages[start:] if m.role == "assistant"), None)
        if answer is None:
            return MetricResult.skipped("the assistant did not answer")
        seconds = _seconds(answer.timestamp, first_user.timestamp)
        if seconds is None:
            return MetricResult.skipped("messages carry no timestamps")
        return self.result(round(seconds, 3), f"first answer after {seconds:.1f}s")


class NegativeFeedbackParams(MetricParams):
    negative_reactions: list[str] = Field(default_factory=lambda: sorted(NEGATIVE_REACTIONS))


@metric(
    key="negative_feedback",
    description="1.0 when someone reacted to an assistant answer with a negative emoji (e.g. :-1:), else 0.0.",
    required_fields=("conversation",),
    default_threshold=0.0,
    score_range=(0.0, 1.0),
    kind="heuristic",
    score_type="boolean",
    direction="lower_is_better",
)
class NegativeFeedback(BaseMetric):
    Params = NegativeFeedbackParams
    params: NegativeFeedbackParams

    async def execute(self, item: DatasetItem) -> MetricResult:
        answers = [m for m in _conversation(item) if m.role == "assistant"]
        if not answers:
            return MetricResult.skipped("the assistant did not answer")
        negative = set(self.params.negative_reactions)
        found: dict[str, int] = {}
        for message in answers:
            reactions = getattr(message, "reactions", None) or {}
            for name, count in reactions.items():
                base = str(name).split("::", 1)[0]
                if base in negative:
                    found[base] = found.get(base, 0) + int(count)
        score = 1.0 if found else 0.0
        why = ", ".join(f":{n}: x{c}" for n, c in sorted(found.items())) or "no negative reaction"
        return self.result(score, why, signals={"negative_reactions": found})


class UnresolvedParams(MetricParams):
    acknowledgement_regex: Regex | None = Field(
        default=None,
        description="your own closing phrases: a last follow-up matching this closes the thread (on top of the built-in ones)",
    )
    no_answer_is_unresolved: bool = True


@metric(
    key="unresolved",
    description="1.0 when the thread was left open: no answer, or the user's last word after the last answer is not a thanks.",
    required_fields=("conversation",),
    default_threshold=0.0,
    score_range=(0.0, 1.0),
    kind="heuristic",
    score_type="boolean",
    direction="lower_is_better",
)
class Unresolved(BaseMetric):
    """Flag: 1.0 = left open, 0.0 = closed; lower is better, passes at <= 0.0.

    An answer is the assistant's or a human agent's: a thread a person on the support side
    closed is closed (`escalation` says a person stepped in). After the last answer, the user's
    last message decides, read as a person would (`shared.slack.followups`): a thanks or a
    closing in any common form ("thanks!", ":+1:", ":white_check_mark:", "merci, ça marche",
    "danke, hat geklappt", "all good now, thanks", "that did it") closes the thread; a
    complaint, even a polite one ("thanks, but it still fails"), a question or anything else
    keeps it open. No follow-up at all: closed. No answer at all: open (or skipped with
    `no_answer_is_unresolved: false`). `acknowledgement_regex` adds a team's own closing phrases.
    """

    Params = UnresolvedParams
    params: UnresolvedParams

    def prepare(self) -> None:
        pattern = self.params.acknowledgement_regex
        self._extra_ack = re.compile(pattern) if pattern else None

    async def execute(self, item: DatasetItem) -> MetricResult:
        messages = _conversation(item)
        last_answer = max(
            (i for i in (_last_index(messages, "assistant"), _last_index(messages, "human_agent")) if i is not None),
            default=None,
        )
        if last_answer is None:
            if not self.params.no_answer_is_unresolved:
                return MetricResult.skipped("nobody answered")
            return self.result(1.0, "nobody answered the thread", signals={"reason": "no_answer"})
        answered_by = messages[last_answer].role
        follow_ups = [m for m in messages[last_answer + 1 :] if m.role == "user"]
        if not follow_ups:
            return self.result(
                0.0,
                f"no follow-up after the last answer ({answered_by})",
                signals={"reason": "answered", "answered_by": answered_by},
            )
        last = follow_ups[-1].content
        reading = read_follow_up(last, extra_acknowledgement=self._extra_ack)
        signals = {
            "reason": reading,
            "answered_by": answered_by,
            "follow_ups": len(follow_ups),
            "last_follow_up": clip(last),
        }
        if reading == "acknowledgement":
            return self.result(0.0, f"the user closed the thread: {clip(last, 60)!r}", signals=signals)
        return self.result(1.0, f"the user's last word keeps it open ({reading}): {clip(last, 60)!r}", signals=signals)


@metric(
    key="escalation",
    description="1.0 when a human agent answered in the thread (a person took over from the assistant), else 0.0.",
    required_fields=("conversation",),
    default_threshold=0.0,
    score_range=(0.0, 1.0),
    kind="heuristic",
    score_type="boolean",
    direction="lower_is_better",
)
class Escalation(BaseMetric):
    async def execute(self, item: DatasetItem) -> MetricResult:
        messages = _conversation(item)
        agents = [m for m in messages if m.role == "human_agent"]
        if not agents:
            return self.result(0.0, "no human agent in the thread", signals={"agent_messages": 0})
        first_user = next((m for m in messages if m.role == "user"), None)
        after = _seconds(agents[0].timestamp, first_user.timestamp if first_user else None)
        names = sorted({str(getattr(m, "user", None) or m.name or "") for m in agents} - {""})
        return self.result(
            1.0,
            f"a human agent answered ({len(agents)} message(s))",
            signals={"agent_messages": len(agents), "agents": names, "first_agent_after_s": after},
        )
