"""The shared Slack metrics on labelled threads."""

from __future__ import annotations

import asyncio

import pytest
from fakes.slack_server import FakeSlack

from shared.errors import ConfigError
from shared.evaluation.item import DatasetItem, Message
from shared.evaluation.metric import MetricStatus, build_metric
from shared.slack.thread import thread_to_item

from .workspace import LABELS, labelled_threads, seed

SLACK_METRICS = ["response_latency", "negative_feedback", "unresolved", "escalation"]


def score(key: str, item: DatasetItem, **params: object) -> tuple[MetricStatus, float | None, bool | None]:
    metric = build_metric(key, params=dict(params))
    result = asyncio.run(metric.execute(item))
    return result.status, result.score, result.passed


@pytest.mark.parametrize("key", SLACK_METRICS)
def test_metric_matches_labels(key: str) -> None:
    state = FakeSlack()
    seed(state)
    for thread in labelled_threads(state):
        expected = LABELS[thread.item_id][key]
        status, value, _passed = score(key, thread_to_item(thread))
        if expected is None:
            assert status is MetricStatus.SKIPPED, thread.item_id
        else:
            assert status is MetricStatus.OK, thread.item_id
            assert value == pytest.approx(expected), thread.item_id


def test_pass_fail_follows_lower_is_better() -> None:
    state = FakeSlack()
    seed(state)
    items = {t.item_id: thread_to_item(t) for t in labelled_threads(state)}
    refund = next(i for k, i in items.items() if LABELS[k]["negative_feedback"] == 1.0)
    assert score("negative_feedback", refund)[2] is False
    assert score("response_latency", refund)[2] is True  # 30 s is within the default 60 s
    metric = build_metric("response_latency", threshold=10.0)
    assert asyncio.run(metric.execute(refund)).passed is False


def _thread(*turns: tuple[str, str]) -> DatasetItem:
    return DatasetItem(id="C:1", conversation=[Message(role=role, content=text) for role, text in turns])  # type: ignore[arg-type]


def test_unresolved_ignores_acknowledgements_but_not_questions() -> None:
    answered = ("assistant", "Use the reset link.")
    for ack in ["thanks!", "Thank you, that works", "ok", "got it 👍", "perfect"]:
        assert score("unresolved", _thread(("user", "q"), answered, ("user", ack)))[1] == 0.0, ack
    for follow_up in ["thanks, but how do I do it on mobile?", "it didn't work", "and for admins?"]:
        assert score("unresolved", _thread(("user", "q"), answered, ("user", follow_up)))[1] == 1.0, follow_up
    assert score("unresolved", _thread(("user", "q")), no_answer_is_unresolved=False)[0] is MetricStatus.SKIPPED


def test_negative_reactions_are_configurable() -> None:
    item = _thread(("user", "q"), ("assistant", "a"))
    assert item.conversation is not None
    item.conversation[1] = Message(role="assistant", content="a", reactions={"eyes": 2})
    assert score("negative_feedback", item)[1] == 0.0
    assert score("negative_feedback", item, negative_reactions=["eyes"])[1] == 1.0
    with pytest.raises(ConfigError, match="acknowledgement_regex"):
        build_metric("unresolved", params={"acknowledgement_regex": "("})
