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


# The user's last word after an answer, as a person reads it.
CLOSING_FOLLOW_UPS = [
    "thanks!",
    "Thank you, that works",
    ":+1:",
    ":+1::skin-tone-3:",
    ":white_check_mark:",
    ":pray:",
    ":pray: :pray:",
    "\u2705",
    "\U0001f64f\U0001f64f",
    "got it \U0001f44d",
    "merci, \u00e7a marche",
    "Merci beaucoup !",
    "merci, pas de souci",
    "danke, hat geklappt",
    "Danke sch\u00f6n, passt!",
    "gracias, ya funciona",
    "\u00a1Muchas gracias! Funcion\u00f3",
    "obrigado, funcionou!",
    "valeu, resolvido",
    "grazie mille, ha funzionato",
    "bedankt, werkt!",
    "all good now, thanks",
    "that did it",
    "That did the trick :tada:",
    "works now, cheers",
    "sorted, ty",
    "no more errors, thanks!",
    "it doesn't crash anymore, thank you",
    "the error is gone \U0001f64f",
    "Awesome, thanks <@U123>!",
    "makes sense, will do",
    "we're good, thx",
    "Perfect, that's exactly what I needed.",
    "fixed, thanks for the quick help",
    "Thanks, that was it!",
]
OPEN_FOLLOW_UPS = [
    "thanks, but it still fails",
    "thanks, but how do I do it on mobile?",
    "it didn't work",
    "and for admins?",
    ":-1:",
    "\U0001f44e",
    "That's wrong, it is 30 days.",
    "merci, mais \u00e7a ne marche toujours pas",
    "danke, aber es funktioniert immer noch nicht",
    "gracias, pero sigue fallando",
    "valeu, mas ainda d\u00e1 erro",
    "grazie, ma non funziona",
    "thanks. one more question: can I export it?",
    "ok but the button is greyed out",
    "still broken :disappointed:",
    "Thanks! Could you also check staging",
    "thanks, same error",
    "I'll try that tomorrow",
    "no luck, thanks anyway",
    "tried it, still getting a 403",
    "hmm :thinking_face:",
    "ok, now I get a different error",
    "thank you, unfortunately it crashed again",
    "perfect. what about the EU region?",
]


@pytest.mark.parametrize("follow_up", CLOSING_FOLLOW_UPS)
def test_closings_in_any_form_resolve_the_thread(follow_up: str) -> None:
    item = _thread(("user", "q"), ("assistant", "Use the reset link."), ("user", follow_up))
    assert score("unresolved", item)[1] == 0.0, follow_up


@pytest.mark.parametrize("follow_up", OPEN_FOLLOW_UPS)
def test_complaints_and_questions_keep_the_thread_open(follow_up: str) -> None:
    item = _thread(("user", "q"), ("assistant", "Use the reset link."), ("user", follow_up))
    assert score("unresolved", item)[1] == 1.0, follow_up


def test_a_thread_a_human_agent_closed_is_resolved_and_escalated() -> None:
    taken_over = _thread(
        ("user", "My deploy fails with a 403."),
        ("assistant", "Check the token scopes."),
        ("user", "it didn't work"),
        ("human_agent", "I fixed the role on your account, try again."),
    )
    assert score("unresolved", taken_over)[1] == 0.0
    assert score("escalation", taken_over)[1] == 1.0
    only_agent = _thread(("user", "Can I get a bigger quota?"), ("human_agent", "Raised to 50 GB."))
    assert score("unresolved", only_agent)[1] == 0.0
    thanked = _thread(("user", "q"), ("human_agent", "Done."), ("user", "that did it, thanks"))
    assert score("unresolved", thanked)[1] == 0.0
    still = _thread(("user", "q"), ("human_agent", "Done."), ("user", "thanks, but it still fails"))
    assert score("unresolved", still)[1] == 1.0


def test_the_users_last_word_decides() -> None:
    answered = ("assistant", "Restart the worker.")
    recovered = _thread(("user", "q"), answered, ("user", "it broke again"), ("user", "nvm, works now, thanks"))
    assert score("unresolved", recovered)[1] == 0.0
    relapsed = _thread(("user", "q"), answered, ("user", "thanks!"), ("user", "wait, now it fails again"))
    assert score("unresolved", relapsed)[1] == 1.0


def test_a_teams_own_closing_phrases() -> None:
    item = _thread(("user", "q"), ("assistant", "a"), ("user", "LGTM"))
    assert score("unresolved", item)[1] == 1.0
    assert score("unresolved", item, acknowledgement_regex=r"(?i)^lgtm\b")[1] == 0.0


def test_follow_up_reading_agrees_with_the_labels() -> None:
    """The agreement the labelled sets above measure (every one of them, both ways)."""
    from shared.slack.followups import read_follow_up

    closes = [read_follow_up(t) == "acknowledgement" for t in CLOSING_FOLLOW_UPS]
    keeps_open = [read_follow_up(t) != "acknowledgement" for t in OPEN_FOLLOW_UPS]
    assert len(closes) >= 30 and len(keeps_open) >= 20
    assert all(closes) and all(keeps_open)
