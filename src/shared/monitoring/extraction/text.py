"""Text out of the values frameworks write: answers, questions and chat messages.

Frameworks wrap text differently: a bare string, a chat message, `{"output": ...}` (LangChain
agents), `{"answer": ...}` (RAG chains), an OpenAI completion, a LangGraph state holding
`messages`. These helpers find the text a person reading the trace would call the answer or
the question, and say so when a slot is there but empty (`{"output": null}`, `"  "`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shared.traces import parse_jsonish

# A root output holding one of these keys declares its answer there; a null or blank value is an
# empty answer (the app answered nothing), not a reason to look elsewhere.
ANSWER_KEYS = ("answer", "output", "response", "content", "text", "completion", "final_answer", "reply")
# These carry an answer only when they hold text (`{"status": "ok", "result": null}` is a status object).
WEAK_ANSWER_KEYS = ("result", "message", "generation")
QUESTION_KEYS = ("question", "query", "input", "user_input", "prompt", "message", "text", "content")
ASSISTANT_ROLES = {"assistant", "ai", "aimessage", "aimessagechunk", "model", "bot"}
USER_ROLES = {"user", "human", "humanmessage"}
_MAX_DEPTH = 6


@dataclass(frozen=True)
class Found:
    """Text found in a value, and the key path it came from (for `evalmon inspect`)."""

    text: str | None  # None: the slot is there but empty
    where: str = ""

    def under(self, key: str) -> Found:
        return Found(self.text, f"{key}.{self.where}" if self.where else key)


def clean(text: str | None) -> str | None:
    """Blank text is no text."""
    return text if isinstance(text, str) and text.strip() else None


def content_text(content: Any) -> str | None:
    """A message's `content`: a string, or a list of parts (`{"type": "text", "text": ...}`)."""
    content = parse_jsonish(content) if isinstance(content, str) and content[:1] in "[{" else content
    if isinstance(content, str):
        return clean(content)
    if isinstance(content, list):
        parts = [p if isinstance(p, str) else p.get("text") for p in content if isinstance(p, str | Mapping)]
        return clean("\n".join(p for p in parts if isinstance(p, str) and p))
    if isinstance(content, Mapping):
        return content_text(content.get("text"))
    return None


def role_of(message: Mapping[str, Any]) -> str | None:
    """`role` of an OpenAI-style message, `type` of a LangChain message dump (`ai`, `human`)."""
    role = message.get("role")
    if role is None and "content" in message:
        role = message.get("type") or message.get("_type")
    if role is None and isinstance(message.get("id"), list) and message["id"]:  # LangChain serialised form
        role = str(message["id"][-1])
    return str(role).lower() if role is not None else None


def is_message(value: Any) -> bool:
    return isinstance(value, Mapping) and "content" in value and role_of(value) is not None


def is_message_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(is_message(m) or _is_kwargs_message(m) for m in value)


def _is_kwargs_message(value: Any) -> bool:
    """LangChain's `dumpd` form: `{"lc": 1, "id": [..., "AIMessage"], "kwargs": {"content": ...}}`."""
    return isinstance(value, Mapping) and isinstance(value.get("kwargs"), Mapping) and "content" in value["kwargs"]


def _message_content(message: Mapping[str, Any]) -> Any:
    return message["kwargs"].get("content") if _is_kwargs_message(message) else message.get("content")


def last_message(messages: Sequence[Any], roles: set[str]) -> tuple[int, Mapping[str, Any]] | None:
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if isinstance(message, Mapping) and (role_of(message) or "") in roles:
            return index, message
    return None


def answer_of(value: Any, depth: int = 0) -> Found | None:
    """The answer a value carries, `Found(None)` when its answer slot is empty, None when it
    carries no answer at all (a status object, a tool call, nothing)."""
    if depth > _MAX_DEPTH or value is None:
        return None
    if isinstance(value, str):
        parsed = parse_jsonish(value)
        if parsed is not value and isinstance(parsed, Mapping | list):
            return answer_of(parsed, depth + 1)
        if parsed is None:  # the text "null"
            return None
        return Found(clean(value))
    if isinstance(value, list):
        if is_message_list(value):
            last = last_message(value, ASSISTANT_ROLES)
            if last is None:
                return None
            index, message = last
            return Found(content_text(_message_content(message)), f"{index}.content")
        return None
    if not isinstance(value, Mapping):
        return None
    if is_message(value) or _is_kwargs_message(value):
        return Found(content_text(_message_content(value)), "content")
    for key in ANSWER_KEYS:
        if key in value:
            inner = value[key]
            if inner is None or (isinstance(inner, str) and not inner.strip()):
                return Found(None, key)
            found = answer_of(inner, depth + 1)
            if found is not None:
                return found.under(key)
    for key in WEAK_ANSWER_KEYS:
        found = answer_of(value.get(key), depth + 1)
        if found is not None and found.text:
            return found.under(key)
    for key in ("messages", "choices", "generations"):
        found = _nested_answer(value.get(key), depth)
        if found is not None:
            return found.under(key)
    return None


def _nested_answer(value: Any, depth: int) -> Found | None:
    """`messages` (LangGraph state), `choices` (OpenAI response), `generations` (LangChain LLMResult)."""
    if not isinstance(value, list) or not value:
        return None
    if is_message_list(value):
        return answer_of(value, depth + 1)
    first = value[0]
    if isinstance(first, list) and first:  # generations: [[{"text": ...}]]
        found = answer_of(first[0], depth + 1)
        return found.under("0.0") if found is not None else None
    if isinstance(first, Mapping):  # choices: [{"message": {...}}]
        found = answer_of(first.get("message") or first.get("text"), depth + 1)
        return found.under("0.message") if found is not None else None
    return None


def question_of(value: Any, depth: int = 0) -> Found | None:
    """The question a value carries: a string, `question`/`query`/`input` keys, or the last user
    message of a chat list."""
    if depth > _MAX_DEPTH or value is None:
        return None
    if isinstance(value, str):
        parsed = parse_jsonish(value)
        if parsed is not value and isinstance(parsed, Mapping | list):
            return question_of(parsed, depth + 1)
        return Found(clean(value)) if clean(value) else None
    if isinstance(value, list):
        if is_message_list(value):
            last = last_message(value, USER_ROLES)
            if last is None:
                return None
            index, message = last
            text = content_text(_message_content(message))
            return Found(text, f"{index}.content") if text else None
        return None
    if not isinstance(value, Mapping):
        return None
    if is_message(value) or _is_kwargs_message(value):
        text = content_text(_message_content(value))
        return Found(text, "content") if text else None
    for key in (*QUESTION_KEYS, "messages", "kwargs"):  # `kwargs`/`args`: what @observe records
        found = question_of(value.get(key), depth + 1)
        if found is not None and found.text:
            return found.under(key)
    args = value.get("args")
    if isinstance(args, list):
        for index, arg in enumerate(args):
            found = question_of(arg, depth + 1)
            if found is not None and found.text:
                return found.under(f"args.{index}")
    return None


def as_text(value: Any) -> str | None:
    """Text a metric can read: strings as-is, common message shapes unwrapped, the rest as JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    found = answer_of(value)
    if found is not None and found.text is not None:
        return found.text
    if isinstance(value, Mapping):
        for key in QUESTION_KEYS:
            inner = value.get(key)
            if isinstance(inner, str):
                return inner
    if found is not None:  # an answer slot that is empty ({"output": null, "steps": 3}): empty, not JSON
        return None
    return json.dumps(value, ensure_ascii=False, default=str)
